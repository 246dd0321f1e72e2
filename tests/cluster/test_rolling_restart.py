"""A rolling restart as an operator does it: every node, one at a time, stopped with SIGTERM
(controlled shutdown: its leaderships move away first), started again, and the next one only
once every partition is fully in sync again — under acks=all load from two idempotent clients
and a third client that never retries. No send of the idempotent clients fails (their retries
are never exhausted), nothing acknowledged is lost or written twice, and afterwards the
automatic leader rebalance has put every partition's leadership back on its preferred replica.
The controller voters (nodes 1-3) restart too.

Retried errors are invisible to the idempotent clients, so "no acks=all request failed" is
shown where it can be seen: on both targets the client without retries reports every error a
broker answered to one of its requests, and none may be NOT_ENOUGH_REPLICAS,
NOT_ENOUGH_REPLICAS_AFTER_APPEND or REQUEST_TIMED_OUT (a NOT_LEADER_OR_FOLLOWER while a
leadership moves is what clients retry by design, so it may appear); on Strata the brokers'
own count of the error codes they answered to Produce requests from all three clients
(``strata_broker_request_errors_total``, followed across the restarts) must not show those
three either. The client without retries is not idempotent either: its records are checked for
loss only (a request whose connection closes unanswered may be written twice)."""
import pytest

from harness import unique_topic
from harness.metrics import CounterWatch
from harness.replication import (
    ConfluentLoad,
    VerifiableProducer,
    check_records,
    read_back,
    record_figure,
    replicas_equal,
    value_parts,
)

PARTITIONS = 6
RATE = 100
PROGRESS = 20
# Answers to an acks=all Produce that a controlled shutdown must never cause.
REFUSALS = ("NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "REQUEST_TIMED_OUT")


def producer_of(record):
    """The producer prefix of a record read back (its value is "<producer>.<seq>")."""
    value = record.value if hasattr(record, "value") else record[1]
    parts = value_parts(value.split(b" ", 1)[0] if isinstance(value, bytes) else value)
    return parts[0] if parts else None


def produce_refusals(c):
    """A watch of the Produce refusals every Strata node answers (a no-op on Kafka)."""
    if c.kind != "strata":
        return None
    targets = {i: (n.metrics_url("/metrics"), lambda n=n: n.pid) for i, n in c.nodes.items()}
    return CounterWatch(targets, "strata_broker_request_errors_total",
                        lambda labels: labels.get("api") == "Produce" and labels.get("error") in REFUSALS)


@pytest.mark.timeout(1200)
def test_rolling_restart_by_sigterm_under_acks_all_load(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    topic = unique_topic("rolling")
    c.create_topic(topic, partitions=PARTITIONS)
    watch = produce_refusals(c)
    vp = VerifiableProducer(tmp_path, c.bootstrap(), topic, prefix=1, throughput=RATE).start()
    cl = ConfluentLoad(c.bootstrap(), topic, PARTITIONS, prefix=2, rate=RATE).start()
    # No retries: every error a broker answers reaches its delivery report.
    plain = ConfluentLoad(c.bootstrap(), topic, PARTITIONS, prefix=3, rate=RATE, idempotent=False).start()
    graceful = []
    try:
        vp.log.wait_acked(PROGRESS, 90, "before the restarts")
        cl.log.wait_acked(PROGRESS, 90, "before the restarts")
        if watch is not None:
            watch.__enter__()
        for node in sorted(c.nodes):
            if watch is not None:
                watch.scrape(node)  # what it counted, as late as can be before it stops
            graceful.append(c.stop_node(node))
            c.start_node(node)
            c.wait_isr_full(topic)
            vp.log.wait_more(PROGRESS, 90, f"from kafka-verifiable-producer after node {node} restarted")
            cl.log.wait_more(PROGRESS, 90, f"from confluent-kafka after node {node} restarted")
    finally:
        if watch is not None:
            watch.__exit__(None, None, None)
        vp.stop()
        cl.stop()
        plain.stop()
    record_figure("rolling restart", f"{target_kind} nodes stopped within the grace period",
                  f"{sum(graceful)}/{len(graceful)}")
    assert all(graceful), f"{target_kind}: SIGTERM did not stop every node in time: {graceful}"
    for load in (vp, cl):
        assert not load.log.errors, \
            f"{target_kind}: {type(load).__name__} sends failed: {dict(load.log.errors)} {load.log.error_examples[:3]}"
    record_figure("rolling restart", f"{target_kind} client without retries: acks / errors",
                  f"{plain.log.acked_count} / {dict(plain.log.errors) or 0}")
    refused = {e: n for e, n in plain.log.errors.items() if e in REFUSALS}
    assert not refused, f"{target_kind}: acks=all sends refused during the roll: {refused} {plain.log.error_examples[:3]}"
    if watch is not None:
        counted = {k: v for k, v in watch.series.items() if v}
        record_figure("rolling restart", "strata Produce answers NOT_ENOUGH_REPLICAS(_AFTER_APPEND) / "
                      "REQUEST_TIMED_OUT, all brokers, during the roll", f"{watch.moved():.0f}")
        assert watch.moved() == 0, f"strata: brokers answered Produce with {REFUSALS} during the roll: {counted}"
    records = read_back(c.healthy_bootstrap(), topic, acked=vp.acked + cl.acked + plain.acked)
    # The client without retries and without idempotence may write a record twice (librdkafka
    # resends a request whose connection closed before it was answered); its records are
    # checked for loss apart, and kept out of the exactly-once check of the other two.
    plain_records = {p: [r for r in recs if producer_of(r) == "3"] for p, recs in records.items()}
    records = {p: [r for r in recs if producer_of(r) != "3"] for p, recs in records.items()}
    res = check_records(vp.acked + cl.acked, records)
    record_figure("rolling restart", f"{target_kind} records", str(res))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    res_plain = check_records(plain.acked, plain_records)
    record_figure("rolling restart", f"{target_kind} records of the client without retries", str(res_plain))
    assert not res_plain.lost and not res_plain.conflicts, f"{target_kind}: {res_plain}"
    c.wait_partitions(topic, lambda ps: all(p.leader == p.replicas[0] for p in ps.values()),
                      "every partition led by its preferred replica again", timeout=90)
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)
