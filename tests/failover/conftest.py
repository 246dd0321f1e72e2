"""Fixtures of the failover suite (tests/failover): two single-node Strata clusters, a primary
and a standby, each its own process (so one can be killed, stopped or restarted alone), and
``strata active-standby`` between them with its discovery address. Clients bootstrap through
the discovery address only. Strata only: the write fence, the mandate and tail truncation are
Strata's extensions (a foreign Kafka side is covered by the engine's rules, not here).

Figures (RTO, records at risk) are printed as they are measured and written to
tests/.work/cluster-figures.jsonl with the replicated-cluster suite's (which prints them all at
the end of the run it shares with this suite).
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.pytest_plugin import *  # noqa: E402,F401,F403  (hooks: outcome recording)
from harness.cluster import make_cluster  # noqa: E402

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


class Pair:
    """The primary and the standby cluster (``harness.cluster.Cluster`` of one node each)."""

    def __init__(self, work_dir):
        self.primary = make_cluster("strata", work_dir / "primary", brokers=1, voters=1, props=SINGLE_PROPS)
        self.standby = make_cluster("strata", work_dir / "standby", brokers=1, voters=1, props=SINGLE_PROPS)

    def start(self):
        self.primary.start()
        self.standby.start()
        return self

    def close(self):
        self.primary.close()
        self.standby.close()


@pytest.fixture
def pair(tmp_path):
    p = Pair(tmp_path)
    try:
        p.start()
        yield p
    finally:
        p.close()

