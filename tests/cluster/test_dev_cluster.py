"""``strata dev --brokers 6 --racks a,b,c`` as the replicated-cluster issue's "done" asks: one
``strata`` process whose six brokers form ONE cluster that Kafka's own tools show correctly.

1. ``strata dev`` starts and prints its banner: six brokers, racks a, b, c round-robin, brokers
   1-3 controller voters.
2. ``kafka-metadata-quorum describe --status``: one leader among the voters 1, 2, 3, the voters
   1, 2, 3 and the observers 4, 5, 6 (six brokers in one quorum).
3. ``kafka-topics --create`` of six partitions takes the dev cluster's replication factor 3;
   ``kafka-topics --describe`` lists every partition with three replicas on three racks, all in
   the ISR, and the leaderships spread over all six brokers.
4. SIGTERM stops the process within its grace period.

Strata only: ``strata dev`` is Strata's command (the Kafka reference of this suite is
started by the harness, node by node). Needs no shared cluster; about 10 s.
"""
import re
import socket
import time

import pytest

from harness import unique_topic, wait_until
from harness.brokers import kafka_tool, strata_cli_bin
from harness.cluster import parse_quorum_status
from harness.process import ManagedProcess

from .conftest import CLUSTER_TARGETS

BROKERS = 6
RACKS = ["a", "b", "c"]
START_TIMEOUT = 120.0  # the dev command's own limit for the brokers to form the cluster

pytestmark = pytest.mark.skipif("strata" not in CLUSTER_TARGETS,
                                reason="strata dev is Strata's command; the Kafka reference has none")


def free_port_block():
    """A client port such that the next five and the three 100 above are free too."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 65535 - 110:
            continue
        held = []
        try:
            for p in [base + i for i in range(BROKERS)] + [base + 100 + i for i in range(3)]:
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                held.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no free block of ports")


class StrataDev(ManagedProcess):
    what = "strata dev"

    def __init__(self, work_dir, port):
        super().__init__(work_dir / "strata-dev.log")
        self.cmd = [str(strata_cli_bin()), "dev", "--brokers", str(BROKERS), "--racks", ",".join(RACKS),
                    "--port", str(port), "--data-dir", str(work_dir / "data")]

    def start(self):
        self._popen(self.cmd)
        return self

    def banner(self):
        """The lines printed before "Press Ctrl-C", once it printed them."""
        text = self.log_text()
        if "Press Ctrl-C" not in text:
            if not self.running():
                raise AssertionError(f"strata dev exited:\n{self.log_tail(40)}")
            return None
        return text.split("Press Ctrl-C", 1)[0]


@pytest.mark.timeout(300)
def test_strata_dev_six_brokers_three_racks_is_one_cluster(tmp_path):
    if not strata_cli_bin().is_file():
        pytest.fail(f"the strata command is not built: {strata_cli_bin()}")
    port = free_port_block()
    dev = StrataDev(tmp_path, port).start()
    try:
        # 1. The banner: six brokers, racks round-robin, voters 1-3.
        banner = wait_until(dev.banner, START_TIMEOUT, "strata dev's banner")
        assert f"{BROKERS} brokers, cluster.id" in banner, banner
        racks = {int(i): r for i, r in re.findall(r"broker (\d+)\s+= \S+ rack (\w)", banner)}
        assert racks == {i: RACKS[(i - 1) % 3] for i in range(1, BROKERS + 1)}, banner
        voters = sorted(int(i) for i in re.findall(r"broker (\d+)\s+= .*controller voter", banner))
        assert voters == [1, 2, 3], banner
        bootstrap = ",".join(f"127.0.0.1:{port + i}" for i in range(BROKERS))

        # 2. One quorum: a leader among the voters, the other brokers observers.
        status = parse_quorum_status(kafka_tool("metadata-quorum", "--bootstrap-server", bootstrap,
                                                "describe", "--status", timeout=60).stdout)
        assert status["LeaderId"] in voters, status
        assert sorted(status["CurrentVoters"]) == voters, status
        assert sorted(status["CurrentObservers"]) == [4, 5, 6], status

        # 3. A topic over the six brokers: RF 3 on three racks, all in sync, leaders spread.
        topic = unique_topic("dev-six")
        kafka_tool("topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
                   "--partitions", str(BROKERS), timeout=60)

        def described():
            out = kafka_tool("topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic,
                             timeout=60).stdout
            rows = re.findall(r"Partition: (\d+)\s+Leader: (-?\d+)\s+Replicas: ([\d,]+)\s+Isr: ([\d,]*)", out)
            parts = {int(p): (int(leader), [int(r) for r in replicas.split(",")],
                              [int(r) for r in isr.split(",") if r]) for p, leader, replicas, isr in rows}
            if len(parts) == BROKERS and all(set(isr) == set(replicas) for _, replicas, isr in parts.values()):
                return out, parts
            return None

        out, parts = wait_until(described, 60, f"{topic}: six partitions with full ISRs in kafka-topics")
        assert "ReplicationFactor: 3" in out, out
        for p, (leader, replicas, _) in parts.items():
            assert len(replicas) == 3 and {racks[r] for r in replicas} == set(RACKS), f"partition {p}: {out}"
            assert leader in replicas, f"partition {p}: {out}"
        assert sorted(leader for leader, _, _ in parts.values()) == list(range(1, BROKERS + 1)), out
    finally:
        # 4. Ctrl-C's sibling: SIGTERM stops every broker, the voters last.
        started = time.monotonic()
        clean = dev.stop(timeout=60)
    assert clean, f"strata dev did not stop on SIGTERM within 60 s:\n{dev.log_tail(30)}"
    print(f"strata dev stopped in {time.monotonic() - started:.1f} s")
