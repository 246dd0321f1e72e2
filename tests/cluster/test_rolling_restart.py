"""A rolling restart as an operator does it: every node, one at a time, stopped with SIGTERM
(controlled shutdown: its leaderships move away first), started again, and the next one only
once every partition is fully in sync again — under acks=all load from two idempotent clients.
No send fails (the clients' retries are never exhausted), nothing acknowledged is lost or
written twice, and afterwards the automatic leader rebalance has put every partition's
leadership back on its preferred replica. The controller voters (nodes 1-3) restart too."""
import pytest

from harness import unique_topic
from harness.replication import (
    ConfluentLoad,
    VerifiableProducer,
    check_records,
    read_back,
    record_figure,
    replicas_equal,
)

PARTITIONS = 6
RATE = 100
PROGRESS = 20


@pytest.mark.timeout(1200)
def test_rolling_restart_by_sigterm_under_acks_all_load(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    topic = unique_topic("rolling")
    c.create_topic(topic, partitions=PARTITIONS)
    vp = VerifiableProducer(tmp_path, c.bootstrap(), topic, prefix=1, throughput=RATE).start()
    cl = ConfluentLoad(c.bootstrap(), topic, PARTITIONS, prefix=2, rate=RATE).start()
    graceful = []
    try:
        vp.log.wait_acked(PROGRESS, 90, "before the restarts")
        cl.log.wait_acked(PROGRESS, 90, "before the restarts")
        for node in sorted(c.nodes):
            graceful.append(c.stop_node(node))
            c.start_node(node)
            c.wait_isr_full(topic)
            vp.log.wait_more(PROGRESS, 90, f"from kafka-verifiable-producer after node {node} restarted")
            cl.log.wait_more(PROGRESS, 90, f"from confluent-kafka after node {node} restarted")
    finally:
        vp.stop()
        cl.stop()
    record_figure("rolling restart", f"{target_kind} nodes stopped within the grace period",
                  f"{sum(graceful)}/{len(graceful)}")
    assert all(graceful), f"{target_kind}: SIGTERM did not stop every node in time: {graceful}"
    for load in (vp, cl):
        assert not load.log.errors, \
            f"{target_kind}: {type(load).__name__} sends failed: {dict(load.log.errors)} {load.log.error_examples[:3]}"
    res = check_records(vp.acked + cl.acked, read_back(c.healthy_bootstrap(), topic))
    record_figure("rolling restart", f"{target_kind} records", str(res))
    assert res.ok, f"{target_kind}: {res}"
    c.wait_partitions(topic, lambda ps: all(p.leader == p.replicas[0] for p in ps.values()),
                      "every partition led by its preferred replica again", timeout=90)
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)
