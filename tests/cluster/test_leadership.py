"""Leadership on request and by itself, with Kafka's tools: ``kafka-leader-election`` elects an
out-of-sync replica of an offline partition when asked for an unclean election (the topic
forbids unclean elections, so the controller alone never does), refuses a preferred election
while the preferred replica is down (PreferredLeaderNotAvailable), and moves leadership back to
the preferred replica once it is in sync; with ``auto.leader.rebalance.enable`` (checked every
5 s in this cluster) leadership returns to a restarted preferred replica without any tool.

The topics live on the broker-only nodes 4, 5, 6, so that stopping them leaves the controller
quorum (nodes 1-3) whole."""
import pytest

from harness import unique_topic
from harness.replication import check_records, produce_sync, read_back, replicas_equal

REPLICAS = [4, 5, 6]  # 4 is the preferred leader


def elect(c, kind, topic, check=True):
    return c.tool("leader-election", "--election-type", kind, "--topic", topic, "--partition", "0",
                  timeout=120, check=check)


@pytest.mark.timeout(600)
def test_unclean_and_preferred_elections_with_kafka_leader_election(healthy_cluster, target_kind):
    c = healthy_cluster
    topic = unique_topic("elect")
    c.create_topic(topic, assignment=[REPLICAS], configs={"unclean.leader.election.enable": "false"})
    acks, errors = produce_sync(c.healthy_bootstrap(), topic, [f"1.{i}" for i in range(50)], idempotent=True)
    assert not errors and len(acks) == 50, errors

    # 1. The whole ISR goes down, 5 and 6 first: the partition is offline with ISR {4}.
    c.kill9(6)
    c.kill9(5)
    c.wait_partitions(topic, lambda ps: ps[0].leader == 4 and set(ps[0].isr) == {4}, "ISR {4}", timeout=90)
    c.kill9(4)
    c.wait_partitions(topic, lambda ps: ps[0].leader == -1, "no leader once 4, 5 and 6 are down")

    # 2. Node 6 (out of sync) returns: no leader until an unclean election is asked for.
    c.start_node(6)
    assert c.partitions(topic)[0].leader == -1, f"{target_kind}: elected without being asked"
    out = elect(c, "unclean", topic).stdout
    assert f"Successfully completed leader election (UNCLEAN) for partitions {topic}-0" in out, out
    c.wait_partitions(topic, lambda ps: ps[0].leader == 6, "node 6 elected unclean")

    # 3. The preferred replica 4 is down: a preferred election is refused and changes nothing.
    proc = elect(c, "preferred", topic, check=False)
    assert proc.returncode != 0 and "PreferredLeaderNotAvailable" in proc.stdout + proc.stderr, \
        f"{target_kind}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert c.partitions(topic)[0].leader == 6

    # 4. 4 and 5 return and catch up: leadership goes back to 4, by the tool or by the
    #    automatic rebalance, whichever comes first (the tool says which).
    c.start_node(4, wait=False)
    c.start_node(5, wait=False)
    c.wait_registered()
    c.wait_isr_full(topic)
    out = elect(c, "preferred", topic).stdout
    assert (f"Successfully completed leader election (PREFERRED) for partitions {topic}-0" in out
            or f"Valid replica already elected for partitions {topic}-0" in out), out
    c.wait_partitions(topic, lambda ps: ps[0].leader == 4, "leadership back on the preferred replica 4")
    res = check_records(acks, read_back(c.healthy_bootstrap(), topic, acked=acks))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)


@pytest.mark.timeout(300)
def test_automatic_leader_rebalance_after_the_preferred_replica_returns(healthy_cluster, target_kind):
    c = healthy_cluster
    topic = unique_topic("rebalance")
    c.create_topic(topic, assignment=[[5, 6, 4]])
    c.stop_node(5)
    c.wait_partitions(topic, lambda ps: ps[0].leader in (6, 4), "leadership moved off the stopped node 5")
    c.start_node(5)
    c.wait_partitions(topic, lambda ps: ps[0].leader == 5 and set(ps[0].isr) == {4, 5, 6},
                      "leadership back on node 5 without any tool", timeout=90)
