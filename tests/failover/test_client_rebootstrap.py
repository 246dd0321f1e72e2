"""Which clients follow the discovery address to the new active cluster without a restart:
kafkajs, sarama and kafka-python, the client families the other failover tests do not run (the
Java client and librdkafka follow, as ``test_active_standby.py`` shows). Each producer bootstraps
through the discovery address only and sends one record at a time, acks=all.

Two moments are measured, printed, and written into the README (not asserted: they describe the
clients, not Strata):
- a planned flip: the fenced side refuses writes and answers Metadata v13 with
  REBOOTSTRAP_REQUIRED (KIP-1102), older Metadata versions with its own brokers;
- the active cluster killed -9 (automatic failover): no known broker answers any more.

Asserted: after each failover a producer started anew through the discovery address writes to
the new active cluster, so a client that does not follow needs a restart and nothing more.
"""
import json
import subprocess
import threading
import time
from pathlib import Path

from harness.data import create_topic, topic_partitions
from harness.failover import EXEMPT_CLIENT, ActiveStandby
from harness.util import wait_until
from harness.replication import record_figure

TOPIC = "events"
PARTITIONS = 3
RATE = 20  # records/s per client
FOLLOW_WINDOW = 45  # seconds after discovery moved in which a client must write again to "follow"
ROOT = Path(__file__).resolve().parents[2]
JS_DRIVER = ROOT / "tests/compat/js/driver.js"


class SteadyProducer:
    """Acknowledgement and error times of one producer client, filled by a thread."""

    def __init__(self, name):
        self.name = name
        self.acks = []  # wall-clock seconds of each acknowledgement
        self.errors = []  # (seconds, error name)
        self.lock = threading.Lock()

    def acked_since(self, t):
        with self.lock:
            return sum(1 for a in self.acks if a >= t)

    def last_error_since(self, t):
        with self.lock:
            errs = [e for s, e in self.errors if s >= t]
        return errs[-1] if errs else None


class DriverProducer(SteadyProducer):
    """The ``produce-steady`` command of a compatibility driver (kafkajs's, sarama's)."""

    def __init__(self, name, argv):
        super().__init__(name)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                if ev.get("ev") == "ack":
                    self.acks.append(ev["t"] / 1000)
                elif ev.get("ev") == "error":
                    self.errors.append((ev["t"] / 1000, ev["error"]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def kafkajs(bootstrap):
    return DriverProducer("kafkajs", ["node", str(JS_DRIVER), "produce-steady", "--bootstrap", bootstrap,
                                      "--topic", TOPIC, "--rate", str(RATE), "--client-id", "rebootstrap-kafkajs",
                                      "--log-level", "NOTHING"])


def sarama(bootstrap):
    return DriverProducer("sarama", [install("sarama"), "produce-steady", "--bootstrap", bootstrap, "--topic", TOPIC,
                                     "--rate", str(RATE), "--client-id", "rebootstrap-sarama"])


def install(name):
    """Runs tests/env/install/<name>.sh (idempotent); returns the last line it printed."""
    proc = subprocess.run(["bash", str(ROOT / f"tests/env/install/{name}.sh")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"tests/env/install/{name}.sh failed:\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


class KafkaPythonProducer(SteadyProducer):
    def __init__(self, bootstrap):
        super().__init__("kafka-python")
        from kafka import KafkaProducer
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="rebootstrap-kafka-python",
                                      request_timeout_ms=10000, retries=5, max_block_ms=10000)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        while not self.stopping.is_set():
            t = time.time()
            try:
                self.producer.send(TOPIC, key=b"k%d" % i, value=b"v%d" % i).get(timeout=15)
                with self.lock:
                    self.acks.append(time.time())
            except Exception as e:  # every failed send is counted; the loop goes on
                with self.lock:
                    self.errors.append((time.time(), type(e).__name__))
            i += 1
            self.stopping.wait(max(0.0, 1 / RATE - (time.time() - t)))

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=60)
        from kafka.errors import KafkaTimeoutError
        try:
            self.producer.close(timeout=5)
        except KafkaTimeoutError:
            pass  # a stuck producer's unsent records are dropped: they were never acknowledged


CLIENTS = {"kafkajs": kafkajs, "sarama": sarama, "kafka-python": KafkaPythonProducer}


def start_all(bootstrap):
    clients = {name: make(bootstrap) for name, make in CLIENTS.items()}
    t0 = time.time()
    for c in clients.values():
        wait_until(lambda: c.acked_since(t0) >= 5, 60, f"{c.name} writing through discovery")
    return clients


def measure(clients, moved_at, what):
    """Waits up to FOLLOW_WINDOW for each client to write again after discovery moved; records
    and returns {client: "follows after N s" or "stuck (last error)"}."""
    deadline = moved_at + FOLLOW_WINDOW
    while time.time() < deadline and not all(c.acked_since(moved_at) >= 5 for c in clients.values()):
        time.sleep(0.5)
    verdicts = {}
    for name, c in clients.items():
        with c.lock:
            after = [a for a in c.acks if a >= moved_at]
        if len(after) >= 5:
            verdicts[name] = f"follows ({after[0] - moved_at:.1f} s to its first ack)"
        else:
            verdicts[name] = f"needs a restart (no ack in {FOLLOW_WINDOW} s; last error {c.last_error_since(moved_at)})"
        record_figure("client rebootstrap", f"{name}, {what}", verdicts[name])
    return verdicts


def restart_stuck(clients, verdicts, bootstrap):
    """Restarts every client that did not follow, through discovery; each must write at once."""
    for name, verdict in verdicts.items():
        if verdict.startswith("follows"):
            continue
        clients[name].stop()
        clients[name] = CLIENTS[name](bootstrap)
        t0 = time.time()
        wait_until(lambda: clients[name].acked_since(t0) >= 5, 60,
                   f"{name}, restarted through discovery, writing to the new active cluster")


def test_which_clients_follow_the_discovery_address(pair, tmp_path):
    install("node")
    install("sarama")
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap(), automatic=True).start()
    clients = {}
    try:
        runner.wait_mirroring("source")
        create_topic(runner.discovery, TOPIC, PARTITIONS)
        wait_until(lambda: topic_partitions(pair.standby.bootstrap(), TOPIC, extra=EXEMPT_CLIENT) == PARTITIONS,
                   60, f"{TOPIC} mirrored to the standby")
        clients = start_all(runner.discovery)

        _, _, state = runner.failover("standby")
        last = state["last"]
        planned = measure(clients, (last["startedMs"] + last["durationMs"]) / 1000, "planned flip")
        restart_stuck(clients, planned, runner.discovery)

        runner.wait_mirroring("target", timeout=120)
        pair.standby.kill9(1)
        state = runner.wait_state(lambda s: s.get("active") == "source" and "operation" not in s, 120,
                                  "automatic failover back to the primary")
        last = state["last"]
        assert last["reason"] == "ProbeFailed", last
        unplanned = measure(clients, (last["startedMs"] + last["durationMs"]) / 1000, "active cluster killed")
        restart_stuck(clients, unplanned, runner.discovery)
        print(f"planned flip: {planned}; active killed: {unplanned}")
    finally:
        for c in clients.values():
            c.stop()
        runner.stop()

