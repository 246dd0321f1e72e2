"""What the Kafka tools show of a 6-broker, 3-rack cluster: ``kafka-topics --describe`` (replicas
spread over the racks, leaders spread over the brokers, full ISR), ``kafka-metadata-quorum
describe --status`` and ``--replication`` (3 voters, one leader among them, the 3 other brokers
as observers), Metadata and DescribeCluster (6 brokers with their racks)."""
import re
from collections import Counter

from harness import unique_topic


def parse_topics_describe(text):
    """{partition: (leader, replicas, isr)} from ``kafka-topics --describe`` output."""
    out = {}
    for m in re.finditer(r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+|none)\s+Replicas:\s*([\d,]*)\s+Isr:\s*([\d,]*)", text):
        p, leader, replicas, isr = m.groups()
        out[int(p)] = (-1 if leader == "none" else int(leader),
                       [int(x) for x in replicas.split(",") if x], [int(x) for x in isr.split(",") if x])
    return out


def test_brokers_and_racks_in_metadata_and_describe_cluster(healthy_cluster):
    c = healthy_cluster
    for node in c.healthy():  # every node's own view
        brokers = c.brokers(node)
        assert sorted(brokers) == [1, 2, 3, 4, 5, 6], f"node {node} lists {sorted(brokers)}"
        assert {i: b.rack for i, b in brokers.items()} == {i: c.rack_of(i) for i in c.nodes}
        assert {(b.host, b.port) for b in brokers.values()} == {(n.host, n.port) for n in c.nodes.values()}
    admin = c.admin()
    desc = admin.describe_cluster(request_timeout=30).result(60)
    assert sorted(n.id for n in desc.nodes) == [1, 2, 3, 4, 5, 6]
    assert Counter(n.rack for n in desc.nodes) == {"a": 2, "b": 2, "c": 2}
    assert desc.controller is not None and desc.controller.id in c.nodes


def test_topics_describe_spreads_replicas_over_racks(healthy_cluster):
    c = healthy_cluster
    topic = unique_topic("describe")
    c.create_topic(topic, partitions=6)
    out = c.tool("topics", "--describe", "--topic", topic).stdout
    assert re.search(rf"Topic:\s*{topic}\s+TopicId:\s*\S+\s+PartitionCount:\s*6\s+ReplicationFactor:\s*3", out), out
    assert "min.insync.replicas=2" in out, out
    parts = parse_topics_describe(out)
    assert sorted(parts) == list(range(6)), out
    for p, (leader, replicas, isr) in parts.items():
        assert len(replicas) == 3 and len(set(replicas)) == 3, f"partition {p}: {replicas}\n{out}"
        assert {c.rack_of(r) for r in replicas} == {"a", "b", "c"}, f"partition {p} racks of {replicas}\n{out}"
        assert leader == replicas[0], f"partition {p}: leader {leader} is not the preferred replica\n{out}"
        assert sorted(isr) == sorted(replicas), f"partition {p}: isr {isr}\n{out}"
    leaders = Counter(leader for leader, _, _ in parts.values())
    counts = [leaders.get(b, 0) for b in c.nodes]
    assert max(counts) - min(counts) <= 1, f"leaders not spread over the 6 brokers: {dict(leaders)}\n{out}"


def test_metadata_quorum_describe(healthy_cluster):
    c = healthy_cluster
    status = c.quorum_status()
    assert sorted(status["CurrentVoters"]) == [1, 2, 3], status
    assert status["LeaderId"] in (1, 2, 3), status
    assert status["LeaderEpoch"] >= 1 and status["HighWatermark"] > 0, status
    assert {4, 5, 6} <= set(status["CurrentObservers"]), status
    assert not set(status["CurrentObservers"]) & {1, 2, 3}, status
    rep = c.tool("metadata-quorum", "describe", "--replication").stdout
    rows = {}
    for line in rep.splitlines()[1:]:
        cols = line.split()
        if cols and cols[0].isdigit():
            rows[int(cols[0])] = cols
    assert sorted(rows) == [1, 2, 3, 4, 5, 6], rep
    roles = {i: cols[-1] for i, cols in rows.items()}
    assert roles[status["LeaderId"]] == "Leader", rep
    assert sorted(i for i, r in roles.items() if r == "Follower") == sorted({1, 2, 3} - {status["LeaderId"]}), rep
    assert sorted(i for i, r in roles.items() if r == "Observer") == [4, 5, 6], rep
