"""The strata-mirror binary under test: flow configurations with test-friendly intervals, one
mirror process with its log and metrics endpoint, and figures recorded for the report.

    cfg = flow_config("a", a.bootstrap, "b", b.bootstrap, naming="Identity")
    with MirrorProcess(work_dir, cfg) as m:      # started, /healthz answered
        wait_mirrored(...)
        m.metric("strata_mirror_records_lag", topic="t", partition=0)

A mirror process runs in a session of its own and is watched like the brokers: it dies with the
test process that started it.
"""
import copy
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from .brokers import REPO_ROOT
from .metrics import metric_sum, scrape
from .process import STOP_TIMEOUT, ManagedProcess
from .util import free_port

START_TIMEOUT = 90.0  # seconds until /healthz answers (topic sync runs before it is served)

FIGURES_PATH = Path(os.environ.get("STRATA_MIRROR_FIGURES") or REPO_ROOT / "tests" / ".work" / "mirror-figures.jsonl")


class MirrorStartError(AssertionError):
    """A mirror did not become ready; the message carries the tail of its log."""


def strata_mirror_bin():
    """Path of the mirror binary: $STRATA_MIRROR_BIN or <repo>/target/release/strata-mirror."""
    return Path(os.environ.get("STRATA_MIRROR_BIN") or REPO_ROOT / "target" / "release" / "strata-mirror")


def deep_merge(base, overrides):
    """``base`` with ``overrides`` merged in, dictionaries recursively (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def flow_config(source_alias, source_bootstrap, target_alias, target_bootstrap, **overrides):
    """A flow (the YAML shape of ``strata-mirror --config``) with intervals short enough for tests;
    ``overrides`` are merged in depth, e.g. ``naming="Identity"``, ``mirror={"offsetLagMax": 10}``."""
    base = {
        "source": {"alias": source_alias, "bootstrapServers": source_bootstrap},
        "target": {"alias": target_alias, "bootstrapServers": target_bootstrap},
        "naming": "Prefixed",
        "offsets": "Translate",
        "sync": {"topicConfigs": True, "groupOffsets": True,
                 "checkpointIntervalSeconds": 1, "heartbeatIntervalSeconds": 1},
        "tuning": {"lingerMs": 5, "fetchMaxWaitMs": 100},
        "mirror": {"refreshTopicsIntervalSeconds": 1, "offsetLagMax": 100,
                   "progressCommitIntervalMs": 1000},
    }
    return deep_merge(base, overrides)


def remote_topic(config, topic):
    """Name of ``topic`` on the target of flow ``config``."""
    if config.get("naming", "Prefixed") == "Identity":
        return topic
    return f"{config['source']['alias']}.{topic}"


class MirrorProcess(ManagedProcess):
    """One ``strata-mirror`` process. ``config`` (a dict) is written to ``work_dir/flow.yaml``
    (as JSON, which YAML reads); or ``mm2_properties`` (text) to ``work_dir/mm2.properties`` with
    ``source``/``target`` naming the flow. The log (stderr) goes to ``work_dir/mirror.log``, kept
    across restarts."""

    what = "strata-mirror"

    def __init__(self, work_dir, config=None, *, mm2_properties=None, source=None, target=None,
                 ordinal=0, replicas=1, binary=None, env=None):
        if (config is None) == (mm2_properties is None):
            raise ValueError("give exactly one of config and mm2_properties")
        if mm2_properties is not None and not (source and target):
            raise ValueError("mm2_properties needs source and target")
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config = copy.deepcopy(config)
        self.mm2_properties = mm2_properties
        self.source, self.target = source, target
        self.ordinal, self.replicas = ordinal, replicas
        self.binary = Path(binary) if binary else strata_mirror_bin()
        self.env = dict(env or {})
        super().__init__(self.work_dir / "mirror.log")
        self.metrics_port = None

    # --- lifecycle --------------------------------------------------------------------------

    def command(self):
        """The command line of the next start (without --metrics-addr)."""
        cmd = [str(self.binary)]
        if self.config is not None:
            path = self.work_dir / "flow.yaml"
            path.write_text(json.dumps(self.config, indent=2) + "\n")
            cmd += ["--config", str(path)]
        else:
            path = self.work_dir / "mm2.properties"
            path.write_text(self.mm2_properties)
            cmd += ["--mm2-properties", str(path), "--source", self.source, "--target", self.target]
        if self.replicas != 1 or self.ordinal != 0:
            cmd += ["--ordinal", str(self.ordinal), "--replicas", str(self.replicas)]
        return cmd

    def start(self, timeout=START_TIMEOUT):
        """Starts the process and waits (deadline ``timeout``) until ``/healthz`` answers; a
        process that exits or never answers raises MirrorStartError with its log tail."""
        if self.running():
            raise AssertionError(f"{self!r} already runs")
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise MirrorStartError(f"strata-mirror binary not found at {self.binary}: build it with "
                                   f"`cargo build --release` or point STRATA_MIRROR_BIN at it")
        self.metrics_port = free_port()
        cmd = self.command() + ["--metrics-addr", f"127.0.0.1:{self.metrics_port}"]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start: {' '.join(cmd)}\n".encode())
        self._popen(cmd, cwd=self.work_dir, env=env)

        def healthy():
            if self._proc.poll() is not None:
                raise MirrorStartError(
                    f"strata-mirror exited with status {self._proc.returncode} before it was ready; "
                    f"tail of {self.log_path}:\n{self.log_tail()}")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as r:
                return r.status == 200

        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if healthy():
                        return self
                except MirrorStartError:
                    raise
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise MirrorStartError(f"strata-mirror did not answer /healthz within {timeout}s; "
                                           f"tail of {self.log_path}:\n{self.log_tail()}")
                time.sleep(0.1)  # poll interval of the deadline loop
        except BaseException:
            self.kill9()
            raise

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (graceful: in-flight records acknowledged, progress committed), wait up to
        ``timeout`` seconds, then SIGKILL. True when it exited in time; idempotent."""
        return super().stop(timeout)

    def restart(self):
        """Graceful stop, then start with the same configuration (a new metrics port)."""
        self.stop()
        return self.start()


    # --- observation ------------------------------------------------------------------------

    @property
    def metrics_url(self):
        return None if self.metrics_port is None else f"http://127.0.0.1:{self.metrics_port}/metrics"

    def scrape(self, timeout=5):
        """Every sample of ``/metrics``: [(name, labels, value)]."""
        return scrape(self.metrics_url, timeout)

    def metric(self, name, **labels):
        """Sum of the samples of ``name`` whose labels include ``labels`` (values compared as
        strings); None when no sample matches."""
        return metric_sum(self.scrape(), name, **labels)


def record_figure(test, name, value, path=FIGURES_PATH):
    """Prints a measured figure and appends it as a JSON line to ``path`` (default
    tests/.work/mirror-figures.jsonl)."""
    print(f"FIGURE {test} {name} = {value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"test": test, "name": name, "value": value,
                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


def preserve_refusal(work_dir):
    """The error the binary gives for ``offsets: Preserve`` when it refuses the mode outright
    (configuration check, before any connection), or None when it accepts the configuration."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cfg = flow_config("a", "127.0.0.1:1", "b", "127.0.0.1:1", offsets="Preserve", naming="Identity")
    path = work_dir / "preserve-probe.yaml"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen([str(strata_mirror_bin()), "--config", str(path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # it went on to connect: the configuration was accepted
        proc.kill()
        proc.communicate()
        return None
    text = out.decode(errors="replace")
    for line in text.splitlines():
        if "Preserve" in line and "not yet supported" in line:
            return line.strip()
    return None


def skip_unless_preserve_accepted(work_dir):
    """Skips the calling test (with the binary's own message) while strata-mirror refuses
    ``offsets: Preserve``."""
    refusal = preserve_refusal(Path(work_dir) / "preserve-probe")
    if refusal:
        import pytest

        pytest.skip(f"strata-mirror refuses offsets: Preserve: {refusal}")


def print_figures(path=FIGURES_PATH):
    """Prints the figures recorded by this run as a markdown table (test, figure, value)."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return
    print("| test | figure | value |\n| --- | --- | --- |")
    for line in lines:
        f = json.loads(line)
        print(f"| {f['test']} | {f['name']} | {f['value']} |")
