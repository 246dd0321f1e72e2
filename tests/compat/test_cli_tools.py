"""Apache Kafka's own command-line tools (kafka-topics, kafka-configs, kafka-consumer-groups,
kafka-get-offsets, the perf tests, kafka-broker-api-versions) against each target broker.

Each test runs the real tool class from the reference Kafka jars (tests/env/kafka/kafka.sh tool),
asserts it exits 0 and that its output says what it says against Apache Kafka.
"""
import re

from confluent_kafka import Consumer, Producer

from harness import kafka_tool, unique_topic, wait_until

TOOL_TIMEOUT = 180


def tool(broker, name, *args, check=True):
    return kafka_tool(name, "--bootstrap-server", broker.bootstrap, *args, timeout=TOOL_TIMEOUT, check=check)


def describe_topic(broker, topic):
    """PartitionCount and the {partition: leader} map of `kafka-topics --describe`."""
    out = tool(broker, "topics", "--describe", "--topic", topic).stdout
    m = re.search(r"Topic:\s*%s\s+TopicId:\s*\S+\s+PartitionCount:\s*(\d+)\s+ReplicationFactor:\s*(\d+)"
                  % re.escape(topic), out)
    assert m, f"no topic summary line in:\n{out}"
    parts = {int(p): int(leader) for p, leader in
             re.findall(r"Topic:\s*%s\s+Partition:\s*(\d+)\s+Leader:\s*(-?\d+)" % re.escape(topic), out)}
    return int(m.group(1)), int(m.group(2)), parts, out


def list_topics(broker):
    return set(tool(broker, "topics", "--list").stdout.split())


def parse_table(out, first_column):
    """Rows of a whitespace-separated table whose header line starts with ``first_column``, as dicts."""
    rows, header = [], None
    for line in out.splitlines():
        cols = line.split()
        if not cols:
            continue
        if cols[0] == first_column:
            header = cols
            continue
        if header and len(cols) >= len(header):
            rows.append(dict(zip(header, cols)))
    return rows


def get_offsets(broker, topic, *extra):
    out = tool(broker, "get-offsets", "--topic", topic, *extra).stdout
    offsets = {}
    for line in out.split():
        t, p, o = line.rsplit(":", 2)
        assert t == topic, out
        offsets[int(p)] = int(o)
    return offsets


def produce(broker, topic, per_partition):
    """Produces per_partition[p] records to each partition p (acks=all) and waits for delivery."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    for partition, n in per_partition.items():
        for i in range(n):
            p.produce(topic, value=f"v{partition}-{i}".encode(), key=f"k{i}".encode(),
                      partition=partition, on_delivery=on_delivery)
    assert p.flush(30) == 0, "records still undelivered after 30 s"
    assert not errors, errors


def test_topics_create_describe_alter_delete(broker):
    topic = unique_topic("cli-topics")
    out = tool(broker, "topics", "--create", "--topic", topic, "--partitions", "2",
               "--replication-factor", "1").stdout
    assert f"Created topic {topic}." in out

    count, rf, leaders, _ = wait_until(lambda: (d := describe_topic(broker, topic)) and len(d[2]) == 2 and d,
                                       30, f"describe of {topic} listing 2 partitions")
    assert (count, rf) == (2, 1)
    assert sorted(leaders) == [0, 1]
    assert all(leader >= 0 for leader in leaders.values()), leaders
    assert topic in list_topics(broker)

    tool(broker, "topics", "--alter", "--topic", topic, "--partitions", "5")
    count, _, leaders, out = wait_until(
        lambda: (d := describe_topic(broker, topic)) and d[0] == 5 and len(d[2]) == 5 and d,
        30, f"{topic} to have 5 partitions after --alter")
    assert sorted(leaders) == [0, 1, 2, 3, 4], out

    # Shrinking is refused, as by Kafka.
    res = tool(broker, "topics", "--alter", "--topic", topic, "--partitions", "3", check=False)
    assert res.returncode != 0
    assert "InvalidPartitionsException" in res.stdout + res.stderr or \
        "can only be increased" in res.stdout + res.stderr, res.stdout + res.stderr

    tool(broker, "topics", "--delete", "--topic", topic)
    wait_until(lambda: topic not in list_topics(broker), 30, f"{topic} to leave the topic list")
    res = tool(broker, "topics", "--describe", "--topic", topic, check=False)
    assert res.returncode != 0
    assert f"Topic '{topic}' does not exist" in res.stdout + res.stderr, res.stdout + res.stderr


def test_topics_create_with_config_and_duplicate(broker):
    topic = unique_topic("cli-topics-cfg")
    tool(broker, "topics", "--create", "--topic", topic, "--partitions", "1",
         "--config", "cleanup.policy=compact", "--config", "retention.ms=86400000")
    out = wait_until(lambda: describe_topic(broker, topic)[3], 30, f"describe of {topic}")
    m = re.search(r"Configs:\s*(\S*)", out)
    assert m, out
    configs = dict(kv.split("=", 1) for kv in m.group(1).split(",") if "=" in kv)
    assert configs.get("cleanup.policy") == "compact", out
    assert configs.get("retention.ms") == "86400000", out

    res = tool(broker, "topics", "--create", "--topic", topic, "--partitions", "1", check=False)
    assert res.returncode != 0
    assert "already exists" in res.stdout + res.stderr, res.stdout + res.stderr


def test_configs_describe_alter_topic(broker):
    topic = unique_topic("cli-configs")
    tool(broker, "topics", "--create", "--topic", topic, "--partitions", "1")
    entity = ["--entity-type", "topics", "--entity-name", topic]

    out = tool(broker, "configs", *entity, "--describe").stdout
    assert f"Dynamic configs for topic {topic} are:" in out
    assert "retention.ms=" not in out

    out = tool(broker, "configs", *entity, "--alter",
               "--add-config", "retention.ms=123456789,max.message.bytes=2097152").stdout
    assert f"Completed updating config for topic {topic}." in out

    def dynamic():
        text = tool(broker, "configs", *entity, "--describe").stdout
        return dict(re.findall(r"^\s+([a-z.]+)=(\S*) sensitive=", text, re.M))

    got = wait_until(lambda: (d := dynamic()) and "retention.ms" in d and d, 30, "altered config to show")
    assert got == {"retention.ms": "123456789", "max.message.bytes": "2097152"}

    all_out = tool(broker, "configs", *entity, "--describe", "--all").stdout
    assert f"All configs for topic {topic} are:" in all_out
    assert re.search(r"^\s+retention\.ms=123456789 sensitive=false", all_out, re.M), all_out
    assert re.search(r"^\s+cleanup\.policy=delete sensitive=false", all_out, re.M), all_out

    tool(broker, "configs", *entity, "--alter", "--delete-config", "max.message.bytes")
    got = wait_until(lambda: (d := dynamic()) and "max.message.bytes" not in d and d, 30,
                     "deleted config to disappear")
    assert got == {"retention.ms": "123456789"}

    res = tool(broker, "configs", *entity, "--alter", "--add-config", "retention.ms=not-a-number",
               check=False)
    assert res.returncode != 0


def test_consumer_groups_list_describe_reset(broker):
    topic = unique_topic("cli-groups")
    group = unique_topic("cli-group")
    tool(broker, "topics", "--create", "--topic", topic, "--partitions", "2")
    produce(broker, topic, {0: 4, 1: 6})

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": "cli-test",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        seen = []

        def consumed_all():
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                seen.append(msg)
            return len(seen) >= 10

        wait_until(consumed_all, 60, f"10 records consumed by group {group}", interval=0)
        c.commit(asynchronous=False)

        assert group in tool(broker, "consumer-groups", "--list").stdout.split()

        def active_rows():
            rows = parse_table(tool(broker, "consumer-groups", "--describe", "--group", group).stdout, "GROUP")
            return len(rows) == 2 and all(r["CONSUMER-ID"] != "-" for r in rows) and rows

        rows = wait_until(active_rows, 30, "describe to show the active member with both partitions")
        for r in rows:
            assert r["GROUP"] == group and r["TOPIC"] == topic
            assert r["CLIENT-ID"] == "cli-test"
            assert r["CURRENT-OFFSET"] == r["LOG-END-OFFSET"] and r["LAG"] == "0", rows
        assert {r["PARTITION"]: r["LOG-END-OFFSET"] for r in rows} == {"0": "4", "1": "6"}
    finally:
        c.close()

    def state():
        rows = parse_table(tool(broker, "consumer-groups", "--describe", "--group", group, "--state").stdout,
                           "GROUP")
        return rows[0]["STATE"] if rows else None

    wait_until(lambda: state() == "Empty", 30, f"group {group} to be Empty after the consumer closed")

    out = tool(broker, "consumer-groups", "--describe", "--group", group).stdout
    rows = parse_table(out, "GROUP")
    assert {(r["PARTITION"], r["CURRENT-OFFSET"], r["LAG"]) for r in rows} == {("0", "4", "0"), ("1", "6", "0")}

    out = tool(broker, "consumer-groups", "--reset-offsets", "--group", group, "--topic", topic,
               "--to-offset", "1", "--dry-run").stdout
    assert {(r["PARTITION"], r["NEW-OFFSET"]) for r in parse_table(out, "GROUP")} == {("0", "1"), ("1", "1")}
    rows = parse_table(tool(broker, "consumer-groups", "--describe", "--group", group).stdout, "GROUP")
    assert {r["CURRENT-OFFSET"] for r in rows} == {"4", "6"}, "a dry run changed the offsets"

    out = tool(broker, "consumer-groups", "--reset-offsets", "--group", group, "--topic", topic,
               "--to-earliest", "--execute").stdout
    assert {(r["PARTITION"], r["NEW-OFFSET"]) for r in parse_table(out, "GROUP")} == {("0", "0"), ("1", "0")}
    rows = parse_table(tool(broker, "consumer-groups", "--describe", "--group", group).stdout, "GROUP")
    assert {(r["PARTITION"], r["CURRENT-OFFSET"], r["LAG"]) for r in rows} == {("0", "0", "4"), ("1", "0", "6")}

    out = tool(broker, "consumer-groups", "--reset-offsets", "--group", group, "--topic", f"{topic}:1",
               "--shift-by", "3", "--execute").stdout
    assert {(r["PARTITION"], r["NEW-OFFSET"]) for r in parse_table(out, "GROUP")} == {("1", "3")}

    out = tool(broker, "consumer-groups", "--delete", "--group", group).stdout
    assert f"Deletion of requested consumer groups ('{group}') was successful." in out
    wait_until(lambda: group not in tool(broker, "consumer-groups", "--list").stdout.split(), 30,
               f"group {group} to leave the list")


def test_get_offsets(broker):
    topic = unique_topic("cli-offsets")
    tool(broker, "topics", "--create", "--topic", topic, "--partitions", "3")
    produce(broker, topic, {0: 3, 1: 5})
    assert get_offsets(broker, topic) == {0: 3, 1: 5, 2: 0}
    assert get_offsets(broker, topic, "--time", "-1") == {0: 3, 1: 5, 2: 0}
    assert get_offsets(broker, topic, "--time", "-2") == {0: 0, 1: 0, 2: 0}
    assert get_offsets(broker, topic, "--partitions", "1") == {1: 5}


def test_broker_api_versions(broker):
    out = tool(broker, "broker-api-versions").stdout
    assert re.search(r"^127\.0\.0\.1:%d \(id: 1 rack: null" % broker.port, out, re.M), out
    for api in ("Produce(0)", "Fetch(1)", "ListOffsets(2)", "Metadata(3)", "OffsetCommit(8)",
                "OffsetFetch(9)", "FindCoordinator(10)", "JoinGroup(11)", "ApiVersions(18)",
                "CreateTopics(19)", "DeleteTopics(20)"):
        m = re.search(re.escape(api) + r": (\d+) to (\d+) \[usable: (\d+)\]", out)
        assert m, f"{api} missing or unusable in:\n{out}"


def test_producer_and_consumer_perf_tests(broker):
    topic = unique_topic("cli-perf")
    tool(broker, "topics", "--create", "--topic", topic, "--partitions", "2")
    res = kafka_tool("producer-perf-test", "--topic", topic, "--num-records", "20000",
                     "--record-size", "1024", "--throughput", "-1",
                     "--producer-props", f"bootstrap.servers={broker.bootstrap}", "acks=all",
                     timeout=TOOL_TIMEOUT)
    m = re.search(r"^20000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
                  r"[\d.]+ ms max latency", res.stdout, re.M)
    assert m, res.stdout
    assert sum(get_offsets(broker, topic).values()) == 20000

    res = tool(broker, "consumer-perf-test", "--topic", topic, "--messages", "20000", "--timeout", "60000")
    rows = [line for line in res.stdout.splitlines() if line.strip()]
    assert rows[0].startswith("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg"), res.stdout
    header = [h.strip() for h in rows[0].split(",")]
    values = [v.strip() for v in rows[-1].split(",")]
    stats = dict(zip(header, values))
    assert int(stats["data.consumed.in.nMsg"]) == 20000, res.stdout
    assert abs(float(stats["data.consumed.in.MB"]) - 20000 * 1024 / (1024 * 1024)) < 0.01, res.stdout


def test_kafka_acls_without_an_authorizer(broker):
    # neither broker has `authorizer.class.name`: kafka-acls gets Kafka's SECURITY_DISABLED answer
    # (not an unsupported API), prints its message and exits non-zero
    listed = tool(broker, "acls", "--list", check=False)
    assert listed.returncode != 0
    assert "SecurityDisabledException: No Authorizer is configured" in listed.stdout + listed.stderr, listed
    added = tool(broker, "acls", "--add", "--allow-principal", "User:alice", "--operation", "Read",
                 "--topic", "orders", check=False)
    assert "No Authorizer is configured" in added.stdout + added.stderr, added
