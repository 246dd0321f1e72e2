"""Faults below the protocol: 10% of the packets between the brokers dropped at random for 60 s
(nftables on the cluster's bridge; clients untouched) under acks=all load, and a follower whose
log ends in a torn batch (killed, the tail of its active segment cut mid-batch, restarted). No
acknowledged record is lost or written twice, and the replicas end equal."""
import time

import pytest

from harness import unique_topic
from harness.replication import (
    ConfluentLoad,
    VerifiableProducer,
    check_records,
    produce_sync,
    read_back,
    record_figure,
    replicas_equal,
)

PARTITIONS = 3
RATE = 100
PROGRESS = 20
LOSS_PERCENT = 10
LOSS_SECONDS = 60


@pytest.mark.timeout(600)
def test_packet_loss_between_brokers_under_load(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    if c.network is None:
        pytest.skip(f"network namespaces unavailable here: {c.network_unavailable}")
    topic = unique_topic("loss")
    c.create_topic(topic, partitions=PARTITIONS)
    vp = VerifiableProducer(tmp_path, c.bootstrap(), topic, prefix=1, throughput=RATE).start()
    cl = ConfluentLoad(c.bootstrap(), topic, PARTITIONS, prefix=2, rate=RATE).start()
    try:
        vp.log.wait_acked(PROGRESS, 90, "before the packet loss")
        cl.log.wait_acked(PROGRESS, 90, "before the packet loss")
        before = (vp.log.acked_count, cl.log.acked_count)
        c.packet_loss(LOSS_PERCENT)
        try:
            time.sleep(LOSS_SECONDS)  # the fault's duration, not a synchronisation
        finally:
            c.heal()
        during = (vp.log.acked_count - before[0], cl.log.acked_count - before[1])
        record_figure("packet loss", f"{target_kind} acks during {LOSS_SECONDS} s of {LOSS_PERCENT}% loss",
                      f"verifiable-producer {during[0]}, confluent-kafka {during[1]}")
        assert min(during) > 0, f"{target_kind}: no acknowledged write during the packet loss: {during}"
        c.wait_isr_full(topic)
        vp.log.wait_more(PROGRESS, 90, "after the packet loss")
        cl.log.wait_more(PROGRESS, 90, "after the packet loss")
    finally:
        vp.stop()
        cl.stop()
    res = check_records(vp.acked + cl.acked, read_back(c.healthy_bootstrap(), topic, acked=vp.acked + cl.acked))
    record_figure("packet loss", f"{target_kind} records", str(res))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)


@pytest.mark.timeout(300)
def test_follower_with_a_torn_tail_recovers_and_catches_up(healthy_cluster, target_kind):
    c = healthy_cluster
    topic = unique_topic("torn")
    c.create_topic(topic, assignment=[[4, 5, 6]])
    acks, errors = produce_sync(c.healthy_bootstrap(), topic, [f"1.{i}" for i in range(500)], idempotent=True)
    assert not errors and len(acks) == 500, errors
    c.kill9(6)
    segments = sorted(c.partition_dir(6, topic, 0).glob("*.log"))
    assert segments, f"{target_kind}: no segment of {topic}-0 on node 6"
    active = segments[-1]
    size = active.stat().st_size
    assert size > 200, f"{target_kind}: segment {active} holds {size} bytes"
    with open(active, "r+b") as f:
        f.truncate(size - 37)  # mid-batch: the last batch is torn
    more, errors = produce_sync(c.healthy_bootstrap(), topic, [f"2.{i}" for i in range(200)], idempotent=True)
    assert not errors and len(more) == 200, errors
    c.start_node(6)
    c.wait_isr_full(topic)
    res = check_records(acks + more, read_back(c.healthy_bootstrap(), topic, acked=acks + more))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)
