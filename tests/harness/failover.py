"""``strata active-standby`` as a managed process: the failover engine and discovery relay of
two clusters run elsewhere (the operator's MirrorFlow without Kubernetes), driven the way a user
drives it: ``strata failover --to primary|standby`` writes the desired side and waits.

    runner = ActiveStandby(work_dir, primary="127.0.0.1:9092", standby="127.0.0.1:9192").start()
    runner.wait_mirroring("source")       # the engine has set the pair up
    runner.failover("standby")            # returns the saved state once the standby is active
    runner.state()["last"]["durationMs"]  # the failover's RTO as the engine measured it

Reading a fenced cluster directly needs a client id the fence lets through
(:data:`EXEMPT_CLIENT`): ordinary clients are sent back to the discovery address.
"""
import json
import subprocess
from pathlib import Path

from .brokers import strata_cli_bin
from .cluster import make_cluster
from .process import ManagedProcess
from .util import free_ports, tail, wait_until

# A client id the write fence exempts from REBOOTSTRAP_REQUIRED (for checks that read a fenced
# cluster directly).
EXEMPT_CLIENT = {"client.id": "strata-failover-check"}

# The exit status of `strata active-standby` crashing where STRATA_FAILOVER_CRASH_BEFORE_SAVING
# says.
CRASH_EXIT_STATUS = 86

# One node, every internal topic with replication factor 1; topics are created explicitly.
SINGLE_PROPS = {
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "num.partitions": "3",
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}


def fence_drained(bootstrap):
    """Each broker's ``strata.write.fence.drained`` (the fence's failover id once nothing written
    before it is still in flight or unreplicated there; empty before), asked by name of that
    broker with kafka-python's admin client, as the failover engine asks it: {broker id: value}."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=EXEMPT_CLIENT["client.id"])
    try:
        ids = [b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")]
        resources = [ConfigResource(ConfigResourceType.BROKER, str(i), configs={"strata.write.fence.drained": None})
                     for i in ids]
        found = admin.describe_configs(resources, config_filter="all").get("broker", {})
        return {int(i): (entries.get("strata.write.fence.drained") or {}).get("value") for i, entries in found.items()}
    finally:
        admin.close()


class Pair:
    """The primary and the standby cluster (``harness.cluster.Cluster`` of one node each; the
    standby a Strata or, for ``Translate`` flows, an Apache Kafka node). ``sasl``: both also
    serve SASL_PLAINTEXT (``cluster.sasl_bootstrap()``); ``standby_props``: more server
    properties of the standby."""

    def __init__(self, work_dir, standby_kind="strata", sasl=False, standby_props=None):
        self.primary = make_cluster("strata", work_dir / "primary", brokers=1, voters=1, props=SINGLE_PROPS,
                                    sasl=sasl)
        self.standby = make_cluster(standby_kind, work_dir / "standby", brokers=1, voters=1,
                                    props={**SINGLE_PROPS, **(standby_props or {})}, sasl=sasl)

    def start(self):
        self.primary.start()
        self.standby.start()
        return self

    def close(self):
        self.primary.close()
        self.standby.close()


class ActiveStandby(ManagedProcess):
    what = "strata active-standby"

    def __init__(self, work_dir, primary, standby, *, automatic=False, keep_divergent_tail=False,
                 offsets="preserve", uid=None, extra_args=()):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.work_dir / "active-standby.log")
        self.data_dir = self.work_dir / "failover"
        self.primary, self.standby = primary, standby
        self.discovery = f"127.0.0.1:{free_ports(1)[0]}"
        self.args = ["--primary", primary, "--standby", standby, "--discovery", self.discovery,
                     "--data-dir", str(self.data_dir), "--offsets", offsets]
        if automatic:
            self.args.append("--automatic-failover")
        if keep_divergent_tail:
            self.args.append("--keep-divergent-tail")
        self.args += [str(a) for a in extra_args]
        # Run as this user id (so packet filters can tell the engine's and the mirror's
        # connections from the clients'); the work folder must be writable by it.
        self.uid = uid

    def start(self, crash_before=None):
        """Starts the engine (again, on the same data folder and discovery address).
        ``crash_before``: a point of the flow (``Promote``, ``RejoinQuarantine``, …) at which
        it exits at once with :data:`CRASH_EXIT_STATUS`, before saving the state that reaches
        it (``STRATA_FAILOVER_CRASH_BEFORE_SAVING``)."""
        as_user = [] if self.uid is None else ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}",
                                                "--clear-groups"]
        env = {"RUST_LOG": "info,openraft=warn", "PATH": "/usr/bin:/bin"}
        if crash_before is not None:
            env["STRATA_FAILOVER_CRASH_BEFORE_SAVING"] = crash_before
        self._popen([*as_user, str(strata_cli_bin()), "active-standby", *self.args], env=env)
        return self

    def state(self):
        """The engine's saved state (``failover.json``), or None before the first save."""
        try:
            return json.loads((self.data_dir / "failover.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def wait_state(self, pred, timeout, what):
        def check():
            assert self.running(), f"strata active-standby exited:\n{tail(self.log_path, 40)}"
            s = self.state()
            return s if s is not None and pred(s) else None
        return wait_until(check, timeout, what, interval=0.2)

    def wait_mirroring(self, active, timeout=60):
        """Waits until ``active`` ("source" or "target") is active and mirrored, nothing pending."""
        return self.wait_state(lambda s: s.get("active") == active and s.get("mirrorFrom") == active
                               and "operation" not in s and "rejoin" not in s, timeout,
                               f"{active} active and mirrored")

    def planned_flip(self, to, loads, progress):
        """A planned failover to ``to`` ("standby" or "primary") under ``loads``: the old side's
        fence is confirmed and nothing is at risk (drained), then every load acknowledges
        ``progress`` more records through discovery. Returns the engine's RTO in ms."""
        side = {"standby": "target", "primary": "source"}[to]
        _, text, state = self.failover(to)
        last = state["last"]
        assert last["to"] == side and last["fenceConfirmed"], text
        assert last["recordsAtRisk"] == 0 and last["recordsAtRiskExact"], last
        for load in loads:
            load.log.wait_more(progress, 90, f"through discovery after the failover to the {to}")
        return last["durationMs"]

    def failover(self, to, timeout=120, check=True):
        """Runs ``strata failover --to <to>``; returns (exit code, output, saved state)."""
        out = subprocess.run([str(strata_cli_bin()), "failover", "--to", to, "--data-dir", str(self.data_dir),
                              "--timeout", str(timeout)], capture_output=True, text=True, timeout=timeout + 30)
        text = out.stdout + out.stderr
        if check:
            assert out.returncode == 0, f"strata failover --to {to}: {text}\n{tail(self.log_path, 40)}"
        return out.returncode, text, self.state()

    def request_failover(self, to, timeout=120):
        """Starts ``strata failover --to <to>`` without waiting for it (a user's request that
        outlives an engine crash); returns the process."""
        return subprocess.Popen([str(strata_cli_bin()), "failover", "--to", to, "--data-dir", str(self.data_dir),
                                 "--timeout", str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
