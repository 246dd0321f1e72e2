"""A whole rack lost (kill -9 of both of its brokers, one of them a controller voter) under acks=all
load, each rack in turn: every partition keeps a leader from the two other racks, writes go on
with min.insync.replicas 2, nothing acknowledged is lost and the replicas agree afterwards."""
import pytest

from harness import unique_topic
from harness.replication import ConfluentLoad, VerifiableProducer, check_records, read_back, record_figure, replicas_equal

PARTITIONS = 6
RATE = 200
PROGRESS = 60
# Each rack loss restarts two nodes: 35 s on Kafka here (two JVMs), so Kafka loses one rack, the
# reference for the expectations; Strata loses each of the three in turn.
RACKS_LOST = {"strata": ("a", "b", "c"), "kafka": ("a",)}


@pytest.mark.timeout(900)
def test_rack_loss_keeps_leaders_and_acks(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    topic = unique_topic("racks")
    c.create_topic(topic, partitions=PARTITIONS)
    for p, part in c.partitions(topic).items():
        assert {c.rack_of(r) for r in part.replicas} == {"a", "b", "c"}, f"partition {p}: {part.replicas}"
    vp = VerifiableProducer(tmp_path, c.bootstrap(), topic, prefix=1, throughput=RATE).start()
    cl = ConfluentLoad(c.bootstrap(), topic, PARTITIONS, prefix=2, rate=RATE).start()
    try:
        vp.log.wait_acked(PROGRESS, 90, "before any fault")
        cl.log.wait_acked(PROGRESS, 90, "before any fault")
        for rack in RACKS_LOST[target_kind]:
            down = c.nodes_in_rack(rack)
            for n in down:
                c.kill9(n)
            c.wait_partitions(
                topic, lambda ps: all(p.leader >= 0 and p.leader not in down and not set(p.isr) & set(down)
                                      and len(p.isr) >= 2 for p in ps.values()),
                f"rack {rack} ({down}) down: every partition led from the other racks with ISR >= 2", timeout=90)
            vp.log.wait_more(PROGRESS, 120, f"from kafka-verifiable-producer with rack {rack} down")
            cl.log.wait_more(PROGRESS, 120, f"from confluent-kafka with rack {rack} down")
            for n in down:
                c.start_node(n, wait=False)
            c.wait_registered(down)
            c.wait_isr_full(topic)
    finally:
        vp.stop()
        cl.stop()
    records = read_back(c.healthy_bootstrap(), topic, acked=vp.acked + cl.acked)
    res = check_records(vp.acked + cl.acked, records)
    record_figure("rack loss", f"{target_kind} records", str(res))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)
