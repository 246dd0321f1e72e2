"""The in-sync replica set at work: followers frozen by SIGSTOP leave the ISR and writes go on while
it holds min.insync.replicas (2); below it both clients get NOT_ENOUGH_REPLICAS; SIGCONT brings
the ISR back to full. Then unclean leader election: with it off a partition whose in-sync
replicas are all down stays offline and loses nothing; with it on an out-of-sync replica is
elected and the acknowledged records it lacked are lost (counted and reported; on Strata the
brokers' ``strata_broker_unclean_leader_elections_total`` counts the election).

The topics of these scenarios live on the broker-only nodes 4, 5, 6 (explicit assignment), so that
stopping two or three of them leaves the controller quorum (nodes 1-3) whole."""
import pytest

from harness import unique_topic, wait_until
from harness.metrics import metric_sum, scrape
from harness.replication import (
    ConfluentLoad,
    VerifiableProducer,
    check_records,
    produce_sync,
    read_back,
    record_figure,
    replicas_equal,
)

PROGRESS = 40
RATE = 200
REPLICAS = [4, 5, 6]  # leader 4 (the preferred replica), followers 5 and 6


def isr_is(c, topic, want, what):
    return c.wait_partitions(topic, lambda ps: set(ps[0].isr) == set(want) and ps[0].leader == REPLICAS[0],
                             f"{what}: ISR {sorted(want)} with leader {REPLICAS[0]}", timeout=90)


@pytest.mark.timeout(600)
def test_follower_sigstop_shrinks_isr_then_not_enough_replicas(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    topic = unique_topic("sigstop")
    c.create_topic(topic, assignment=[REPLICAS])
    vp = VerifiableProducer(tmp_path, c.bootstrap(), topic, prefix=1, throughput=RATE).start()
    cl = ConfluentLoad(c.bootstrap(), topic, 1, prefix=2, rate=RATE).start()
    try:
        vp.log.wait_acked(PROGRESS, 90, "before any fault")
        cl.log.wait_acked(PROGRESS, 90, "before any fault")

        # 1. One follower frozen: it leaves the ISR, acks=all writes go on with ISR = 2.
        c.sigstop(5)
        isr_is(c, topic, [4, 6], "follower 5 stopped")
        vp.log.wait_more(PROGRESS, 90, "from kafka-verifiable-producer with ISR {4, 6}")
        cl.log.wait_more(PROGRESS, 90, "from confluent-kafka with ISR {4, 6}")

        # 2. The second follower frozen: ISR = 1 < min.insync.replicas, both clients are refused.
        c.sigstop(6)
        isr_is(c, topic, [4], "followers 5 and 6 stopped")
        _, errors = produce_sync(c.healthy_bootstrap(), topic, [f"3.{i}" for i in range(5)])
        assert errors and set(errors) == {"NOT_ENOUGH_REPLICAS"}, \
            f"{target_kind}: confluent-kafka (acks=all, no retries) got {errors}"
        java = VerifiableProducer(tmp_path, c.healthy_bootstrap(), topic, prefix=4, throughput=-1, max_messages=5,
                                  idempotent=False, name="verifiable-producer-no-retries").start()
        java.wait_done(120)
        assert java.log.errors == {"NotEnoughReplicasException": 5}, \
            f"{target_kind}: kafka-verifiable-producer (acks=all, retries=0) got {dict(java.log.errors)}: " \
            f"{java.log.error_examples}"

        # 3. Both back: the ISR is full again and the idempotent loads go on.
        c.sigcont(5)
        c.sigcont(6)
        c.wait_isr_full(topic)
        vp.log.wait_more(PROGRESS, 150, "from kafka-verifiable-producer after SIGCONT")
        cl.log.wait_more(PROGRESS, 150, "from confluent-kafka after SIGCONT")
    finally:
        vp.stop()
        cl.stop()
    records = read_back(c.healthy_bootstrap(), topic, acked=vp.acked + cl.acked)
    res = check_records(vp.acked + cl.acked, records)
    record_figure("follower SIGSTOP", f"{target_kind} records", str(res))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)


@pytest.mark.timeout(600)
def test_unclean_leader_election_off_and_on(healthy_cluster, target_kind):
    c = healthy_cluster
    off, on = unique_topic("unclean-off"), unique_topic("unclean-on")
    c.create_topic(off, assignment=[REPLICAS], configs={"unclean.leader.election.enable": "false"})
    c.create_topic(on, assignment=[REPLICAS], configs={"unclean.leader.election.enable": "true"})
    acked = {off: [], on: []}

    def unclean_elections():
        """Strata's count of unclean elections as node 1 (alive throughout) exports it."""
        if target_kind != "strata":
            return None
        return metric_sum(scrape(c.node(1).metrics_url()), "strata_broker_unclean_leader_elections_total")

    elections_before = unclean_elections()

    def write(batch):
        for t in (off, on):
            acks, errors = produce_sync(c.healthy_bootstrap(), t, [f"5.{i}" for i in batch], idempotent=True)
            assert not errors and len(acks) == len(batch), f"{target_kind}: writing {t}: {errors}"
            acked[t] += acks

    # A: on all three replicas. Then node 6 goes down; B: on 4 and 5 only.
    write(range(0, 100))
    c.kill9(6)
    for t in (off, on):
        c.wait_partitions(t, lambda ps: set(ps[0].isr) == {4, 5}, "node 6 out of the ISR")
    write(range(100, 200))
    # The in-sync replicas go down, 5 then 4: both partitions lose their leader.
    c.kill9(5)
    for t in (off, on):
        c.wait_partitions(t, lambda ps: ps[0].leader == 4 and 5 not in ps[0].isr, "node 5 out of the ISR")
    c.kill9(4)
    for t in (off, on):
        c.wait_partitions(t, lambda ps: ps[0].leader == -1, "no leader once 4, 5 and 6 are down")

    # Only the out-of-sync replica 6 comes back.
    c.start_node(6)
    c.wait_partitions(on, lambda ps: ps[0].leader == 6, "unclean election on: node 6 elected", timeout=90)
    view = c.partitions(off)  # taken after the controller elected 6 for the other topic
    assert view[0].leader == -1, f"{target_kind}: unclean election off, yet {off} has leader {view[0].leader}"
    if target_kind == "strata":  # Kafka counts it in a JMX meter (UncleanLeaderElectionsPerSec)
        wait_until(lambda: unclean_elections() == elections_before + 1, 10,
                   "strata_broker_unclean_leader_elections_total counting the one unclean election")

    # The in-sync replicas come back: the 'off' partition is whole; on the 'on' one they follow
    # node 6 and truncate B (Kafka serves no offsets there before: its high watermark waits for
    # min.insync.replicas).
    c.start_node(4, wait=False)
    c.start_node(5, wait=False)
    c.wait_registered()
    for t in (off, on):
        c.wait_isr_full(t)
    res_off = check_records(acked[off], read_back(c.healthy_bootstrap(), off, acked=acked[off]))
    record_figure("unclean election", f"{target_kind} off: records", str(res_off))
    assert res_off.ok and res_off.read == 200, f"{target_kind}: unclean election off lost records: {res_off}"
    res_on = check_records(acked[on], read_back(c.healthy_bootstrap(), on))
    record_figure("unclean election", f"{target_kind} on: acknowledged records lost", len(res_on.lost))
    assert sorted(int(a.value.split(".")[1]) for a in res_on.lost) == list(range(100, 200)), \
        f"{target_kind}: unclean election on should lose exactly B (100-199): {res_on}"
    write(range(200, 300))  # C: lands where B was, on every replica of the 'on' topic
    res_on = check_records(acked[on], read_back(c.healthy_bootstrap(), on))
    record_figure("unclean election", f"{target_kind} on: records after rejoin", str(res_on))
    assert len(res_on.lost) == 100 and not res_on.duplicates and not res_on.reordered, f"{target_kind}: {res_on}"
    for t in (off, on):
        diffs = replicas_equal(c, t)
        assert not diffs, f"{target_kind} {t}:\n" + "\n".join(diffs)
