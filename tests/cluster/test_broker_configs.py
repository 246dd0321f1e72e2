"""Dynamic broker configs with Kafka's own tool, ``kafka-configs --entity-type brokers``, on
Strata and on Kafka alike: ``message.max.bytes`` set on one broker (``--entity-name 4``) and
then as the cluster default (``--entity-default``) is shown by ``--describe`` and takes effect
at once — a record batch over it is refused with MESSAGE_TOO_LARGE by the leader on broker 4,
and a topic without an override reports it as its ``max.message.bytes`` with the source
DYNAMIC_DEFAULT_BROKER_CONFIG (``log.retention.ms`` likewise as ``retention.ms``); deleting the
configs restores the static default. A static config (``log.retention.hours``,
``num.partitions``) is refused per broker and cluster-wide with Kafka's InvalidRequestException
"Cannot update these configs dynamically" and changes nothing.

The topic lives on the broker-only nodes 4, 5, 6 (leader 4)."""
import pytest

from harness import unique_topic, wait_until

SOURCE_DYNAMIC_BROKER = 2
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
LIMIT = 1000  # bytes: a 1500-byte record's batch is over it, a 200-byte one is not


def configs(c, *args, check=True):
    return c.tool("configs", "--entity-type", "brokers", *args, timeout=60, check=check)


def described(c, *entity):
    """{name: value} of the dynamic configs ``kafka-configs --describe`` lists for the entity."""
    out = configs(c, "--describe", *entity).stdout
    values = {}
    for line in out.splitlines():
        if line.startswith("  ") and "=" in line:
            name, _, rest = line.strip().partition("=")
            values[name] = rest.split(" sensitive=", 1)[0]
    return values


def send_one(c, topic, size):
    """One record of ``size`` bytes, alone in its batch, no retries: None or the error name."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": c.healthy_bootstrap(), "acks": "all", "linger.ms": 0,
                  "enable.idempotence": False, "message.send.max.retries": 0, "log_level": 2,
                  "message.timeout.ms": 30000})
    result = []
    p.produce(topic, value=b"x" * size, partition=0, on_delivery=lambda err, msg: result.append(err))
    assert p.flush(40) == 0, "no delivery report"
    return result[0].name() if result[0] is not None else None


def topic_config(c, topic, name):
    """(value, source) of a topic config as DescribeConfigs answers it."""
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = c.admin()  # held: the futures fail when the client is collected
    entry = admin.describe_configs([res])[res].result(30)[name]
    return entry.value, int(entry.source)


@pytest.mark.timeout(300)
def test_kafka_configs_brokers_alter_and_describe(healthy_cluster, target_kind):
    c = healthy_cluster
    topic = unique_topic("broker-configs")
    c.create_topic(topic, assignment=[[4, 5, 6]])
    assert send_one(c, topic, 1500) is None, f"{target_kind}: 1500 bytes refused before any change"
    try:
        # 1. One broker: the leader on broker 4 refuses a batch over its new limit.
        out = configs(c, "--alter", "--entity-name", "4", "--add-config", f"message.max.bytes={LIMIT}").stdout
        assert "Completed updating config for broker 4." in out, out
        assert described(c, "--entity-name", "4") == {"message.max.bytes": str(LIMIT)}
        wait_until(lambda: send_one(c, topic, 1500) == "MSG_SIZE_TOO_LARGE", 30,
                   f"{target_kind}: broker 4 refusing 1500 bytes")
        assert send_one(c, topic, 200) is None
        configs(c, "--alter", "--entity-name", "4", "--delete-config", "message.max.bytes")
        assert described(c, "--entity-name", "4") == {}
        wait_until(lambda: send_one(c, topic, 1500) is None, 30, f"{target_kind}: 1500 bytes accepted again")

        # 2. The cluster default: every broker, and the topic's defaults with their source.
        out = configs(c, "--alter", "--entity-default", "--add-config",
                      f"message.max.bytes={LIMIT},log.retention.ms=3600000").stdout
        assert "Completed updating default config for brokers in the cluster." in out, out
        shown = described(c, "--entity-default")
        assert shown.get("message.max.bytes") == str(LIMIT) and shown.get("log.retention.ms") == "3600000", shown
        wait_until(lambda: send_one(c, topic, 1500) == "MSG_SIZE_TOO_LARGE", 30,
                   f"{target_kind}: the cluster default refusing 1500 bytes")
        assert topic_config(c, topic, "max.message.bytes") == (str(LIMIT), SOURCE_DYNAMIC_DEFAULT_BROKER)
        assert topic_config(c, topic, "retention.ms") == ("3600000", SOURCE_DYNAMIC_DEFAULT_BROKER)

        # 3. Static configs are refused, per broker and cluster-wide, and change nothing.
        for entity in (["--entity-name", "4"], ["--entity-default"]):
            for static in ("log.retention.hours=1", "num.partitions=4"):
                proc = configs(c, "--alter", *entity, "--add-config", static, check=False)
                text = proc.stdout + proc.stderr
                assert proc.returncode != 0, f"{target_kind}: {static} on {entity} accepted:\n{text}"
                name = static.split("=")[0]
                assert (f"InvalidRequestException: Cannot update these configs dynamically: Set({name})"
                        in text), f"{target_kind}: {static} on {entity}:\n{text}"
        assert "num.partitions" not in described(c, "--entity-default")
        assert "log.retention.hours" not in described(c, "--entity-name", "4")
    finally:
        configs(c, "--alter", "--entity-default", "--delete-config", "message.max.bytes,log.retention.ms",
                check=False)
        configs(c, "--alter", "--entity-name", "4", "--delete-config", "message.max.bytes", check=False)
    wait_until(lambda: send_one(c, topic, 1500) is None, 30, f"{target_kind}: 1500 bytes accepted after the reset")
    value, source = topic_config(c, topic, "max.message.bytes")
    assert source not in (SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT_BROKER), (value, source)
