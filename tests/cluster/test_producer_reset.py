"""The producer reset of a failover promotion (Strata-only: ``strata.producer.reset``, see
crates/strata-broker/src/write_fence.rs) reaches a replica that was down when it was ordered:
set with Kafka's ``kafka-configs`` on the cluster default, it makes the leader forget a
producer's sequence (not its batches: a retry is still a duplicate), and the preferred replica,
stopped before and restarted after, judges the producer's next batches the same way once it
leads again (its log rebuilt the old state on start; the partition's metadata carries the
reset).

Runs on the suite's cluster (topics on the broker-only nodes 4, 5, 6, so the controller quorum
stays whole); the producer is the raw client of ``harness.raw_producer``, which chooses producer
ids and sequences. Apache Kafka has no such action: the reference target is skipped.
"""
import time

import pytest

from harness import unique_topic
from harness.raw_producer import NONE, OUT_OF_ORDER_SEQUENCE_NUMBER, init_producer_id, produce_idempotent

RESET = "strata.producer.reset"
REPLICAS = [4, 5, 6]  # 4 is the preferred leader


@pytest.mark.timeout(600)
def test_a_replica_down_during_the_producer_reset_forgets_too(healthy_cluster, target_kind):
    if target_kind != "strata":
        pytest.skip("strata.producer.reset is Strata's failover extension")
    c = healthy_cluster
    topic = unique_topic("producer-reset")
    c.create_topic(topic, assignment=[REPLICAS])
    c.wait_isr_full(topic)
    c.wait_partitions(topic, lambda ps: ps[0].leader == 4, "node 4 leading")

    # 1. Producers P and Q write on leader 4 (sequences 0-4 each).
    p, p_epoch = init_producer_id(c.healthy_bootstrap())
    q, q_epoch = init_producer_id(c.healthy_bootstrap())
    assert produce_idempotent(c.node(4).bootstrap, topic, p, p_epoch, 0, 5) == (NONE, 0)
    assert produce_idempotent(c.node(4).bootstrap, topic, q, q_epoch, 0, 5) == (NONE, 5)

    # 2. Node 4 stops; 5 or 6 leads with the same state.
    c.stop_node(4)
    c.wait_partitions(topic, lambda ps: ps[0].leader in (5, 6) and 4 not in ps[0].isr, "4 out, a new leader")
    leader = c.leader(topic)
    assert produce_idempotent(c.node(leader).bootstrap, topic, p, p_epoch, 50, 5)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    epoch_before = c.partitions(topic)[0].epoch

    # 3. The producer reset, as a promotion orders it (through any broker: forwarded to the
    #    active controller). P goes on at sequence 50.
    floor = int(time.time() * 1000) * 1024
    c.tool("configs", "--entity-type", "brokers", "--entity-default", "--alter", "--add-config", f"{RESET}={floor}")
    c.wait_partitions(topic, lambda ps: ps[0].epoch > epoch_before, "a new leader epoch for the reset")
    leader = c.leader(topic)
    assert produce_idempotent(c.node(leader).bootstrap, topic, p, p_epoch, 50, 5) == (NONE, 10)
    assert init_producer_id(c.healthy_bootstrap())[0] >= floor

    # 4. Node 4 returns (its log rebuilds P's and Q's old state), catches up and leads again
    #    (the automatic rebalance or the tool).
    c.start_node(4)
    c.wait_isr_full(topic)
    c.tool("leader-election", "--election-type", "preferred", "--topic", topic, "--partition", "0", check=False)
    c.wait_partitions(topic, lambda ps: ps[0].leader == 4, "node 4 leading again", timeout=120)

    # 5. On node 4: Q, known only from before the reset, may start anywhere, though a retry of
    #    its batch from before is answered with the original offset; P continues after the batch
    #    it fetched from the leader after the reset, and a retry of that batch is a duplicate.
    assert produce_idempotent(c.node(4).bootstrap, topic, q, q_epoch, 0, 5) == (NONE, 5)
    assert produce_idempotent(c.node(4).bootstrap, topic, q, q_epoch, 100, 1) == (NONE, 15)
    assert produce_idempotent(c.node(4).bootstrap, topic, p, p_epoch, 50, 5) == (NONE, 10)
    error, _ = produce_idempotent(c.node(4).bootstrap, topic, p, p_epoch, 5, 1)
    assert error == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_idempotent(c.node(4).bootstrap, topic, p, p_epoch, 55, 1) == (NONE, 16)
