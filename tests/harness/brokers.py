"""Brokers under test behind one interface: the Strata broker binary and the reference Apache Kafka
(run through tests/env/kafka/kafka.sh). Both listen on 127.0.0.1 only, keep their data and log in
their work directory, and are stopped by PID.

    with make_broker("kafka", work_dir, {"num.partitions": "3"}) as b:
        produce_to(b.bootstrap)
        b.restart()   # same data directory, same port
"""
import os
import subprocess
import time
from pathlib import Path

from .process import ManagedProcess
from .util import free_ports, port_accepts, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO_ROOT / "tests" / "env" / "kafka" / "kafka.sh"

START_TIMEOUT = 30.0  # seconds for a Strata broker to serve Metadata
KAFKA_START_TIMEOUT = 120.0  # the JVM on a busy 2-core machine


class BrokerStartError(AssertionError):
    """A broker did not become ready; the message carries the tail of its log."""


def strata_broker_bin():
    """Path of the Strata broker binary: $STRATA_BROKER_BIN or <repo>/target/release/strata-broker."""
    return Path(os.environ.get("STRATA_BROKER_BIN") or REPO_ROOT / "target" / "release" / "strata-broker")


def strata_fuzz_bin():
    """Path of ``strata-fuzz``: $STRATA_FUZZ_BIN or next to the broker binary."""
    return Path(os.environ.get("STRATA_FUZZ_BIN") or strata_broker_bin().parent / "strata-fuzz")


def strata_cli_bin():
    """Path of the ``strata`` command: $STRATA_CLI_BIN or next to the broker binary."""
    return Path(os.environ.get("STRATA_CLI_BIN") or strata_broker_bin().parent / "strata")


def kafka_tool(name, *args, timeout=180, check=True, input=None, wrap=None):
    """Runs a Kafka command-line tool (``kafka.sh tool NAME ARGS``) to completion.

    Returns the CompletedProcess (text stdout/stderr). With ``check``, a non-zero exit raises an
    AssertionError that shows the command and both outputs. ``wrap`` turns the command line into
    the one to run (e.g. ``ControlPlane.cluster_dns_command``).
    """
    cmd = [str(KAFKA_SH), "tool", name, *[str(a) for a in args]]
    if wrap is not None:
        cmd = wrap(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kafka tool {name} exited {proc.returncode}: {' '.join(cmd)}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def kafka_classpath():
    """Classpath of the reference Kafka jars (kafka-clients included), for Java client tests."""
    out = subprocess.run([str(KAFKA_SH), "classpath"], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def _props_text(props):
    return "".join(f"{k}={v}\n" for k, v in props.items())


class BrokerBase(ManagedProcess):
    """One broker process on 127.0.0.1 with its work directory.

    ``props`` are Kafka server properties applied on top of what the harness sets (node id,
    listeners, log dirs). ``port`` and ``advertised_port`` default to a free port and to ``port``;
    both are kept across restarts.
    """

    kind = None

    def __init__(self, work_dir, props=None, port=None, advertised_port=None):
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.work_dir / "broker.log")
        self.props = {k: str(v) for k, v in (props or {}).items()}
        self.port = port or free_ports(1)[0]
        self.advertised_port = advertised_port or self.port

    @property
    def what(self):
        return f"{self.kind} broker"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self):
        return self.work_dir / "data"

    def start(self):
        raise NotImplementedError

    def restart(self):
        """Stop (gracefully) and start again with the same data directory and port."""
        self.stop()
        self.start()
        return self

    def __repr__(self):
        return f"<{type(self).__name__} {self.bootstrap} pid={self.pid} dir={self.work_dir}>"


class StrataBroker(BrokerBase):
    """The Strata broker binary, run as ``strata-broker --config <work_dir>/server.properties``.

    A missing binary fails the start, unless STRATA_ALLOW_MISSING_BROKER=1 asks to skip the tests
    that need it.
    """

    kind = "strata"

    def __init__(self, work_dir, props=None, port=None, advertised_port=None, binary=None):
        super().__init__(work_dir, props, port, advertised_port)
        self.binary = Path(binary) if binary else strata_broker_bin()
        self.config_path = self.work_dir / "server.properties"

    def write_config(self):
        base = {
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.advertised_port}",
            "log.dirs": str(self.data_dir),
        }
        base.update(self.props)
        self.config_path.write_text(_props_text(base))

    def start(self):
        if self.running():
            raise AssertionError(f"{self!r} already runs")
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            msg = (f"Strata broker binary not found at {self.binary}: build it with "
                   f"`cargo build --release` or point STRATA_BROKER_BIN at it")
            if os.environ.get("STRATA_ALLOW_MISSING_BROKER") == "1":
                import pytest
                pytest.skip(msg + " (skipped: STRATA_ALLOW_MISSING_BROKER=1)")
            raise BrokerStartError(msg)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        self._popen([str(self.binary), "--config", str(self.config_path)], cwd=self.work_dir, env=env)
        try:
            self._wait_ready(START_TIMEOUT)
        except BaseException:
            self.kill9()
            raise
        return self

    def _wait_ready(self, timeout):
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout

        def fail(reason):
            raise BrokerStartError(
                f"strata broker at {self.bootstrap} {reason}; tail of {self.log_path}:\n{self.log_tail()}")

        def exited():
            if self._proc.poll() is not None:
                fail(f"exited with status {self._proc.returncode} before it was ready")

        # (wait_until retries a predicate that raises: an exit is checked outside of it, so a
        # broker that refuses its configuration fails the start at once)
        try:
            wait_until(lambda: self._proc.poll() is not None or port_accepts(self.port), timeout,
                       f"strata broker to accept on {self.bootstrap}", interval=0.05)
        except AssertionError:
            fail(f"did not accept connections within {timeout}s")
        exited()
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})

        def metadata():
            if self._proc.poll() is not None:
                return True
            left = max(1.0, deadline - time.monotonic())
            md = admin.list_topics(timeout=min(5.0, left))
            return len(md.brokers) >= 1

        try:
            wait_until(metadata, max(1.0, deadline - time.monotonic()), "strata broker metadata", interval=0.2)
        except AssertionError as e:
            fail(f"did not answer Metadata within {timeout}s ({e})")
        exited()


class KafkaBroker(BrokerBase):
    """The reference Apache Kafka: one KRaft combined-mode node started by
    ``tests/env/kafka/kafka.sh start-broker`` (which formats the storage on first start)."""

    kind = "kafka"

    def __init__(self, work_dir, props=None, port=None, advertised_port=None):
        super().__init__(work_dir, props, port, advertised_port)
        self.controller_port = free_ports(1)[0]
        while self.controller_port in (self.port, self.advertised_port):
            self.controller_port = free_ports(1)[0]

    @property
    def config_path(self):
        return self.work_dir / "server.properties"

    def start(self):
        if self.running():
            raise AssertionError(f"{self!r} already runs")
        cmd = [str(KAFKA_SH), "start-broker", str(self.work_dir), "--port", str(self.port),
               "--controller-port", str(self.controller_port),
               "--advertised-port", str(self.advertised_port)]
        for k, v in self.props.items():
            cmd += ["--prop", f"{k}={v}"]
        env = dict(os.environ, KAFKA_START_TIMEOUT=str(int(KAFKA_START_TIMEOUT)))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                  timeout=KAFKA_START_TIMEOUT + 60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            self._adopt_pid()
            self.kill9()
            raise BrokerStartError(f"kafka.sh start-broker timed out; tail of {self.log_path}:\n{self.log_tail()}")
        if proc.returncode != 0:
            self._adopt_pid()
            self.kill9()
            raise BrokerStartError(f"kafka.sh start-broker failed ({proc.returncode}):\n{proc.stderr}")
        self._adopt_pid()
        return self

    def _adopt_pid(self):
        """Takes charge of the JVM whose PID kafka.sh wrote, if it wrote one."""
        try:
            pid = int((self.work_dir / "pid").read_text().strip())
        except (OSError, ValueError):
            self.pid = None
            return
        self._adopt(pid)

    def _reap(self):
        try:
            (self.work_dir / "pid").unlink()
        except FileNotFoundError:
            pass


BROKER_KINDS = {"strata": StrataBroker, "kafka": KafkaBroker}


def make_broker(kind, work_dir, props=None, port=None, advertised_port=None):
    """A (not yet started) broker of ``kind`` ("strata" or "kafka")."""
    try:
        cls = BROKER_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown broker kind {kind!r}; known: {sorted(BROKER_KINDS)}") from None
    return cls(work_dir, props, port=port, advertised_port=advertised_port)
