"""sarama (IBM/sarama 1.61, Go) against each target broker, also over SASL_PLAINTEXT and SASL_SSL
with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (harness/sasl.py's listeners; SCRAM users made by
Kafka's ``kafka-configs``).

sarama runs in a Go driver (tests/compat/go/main.go, built by tests/env/install/sarama.sh) that
pytest invokes per step with JSON in and out; it speaks the kafkajs driver's subcommands, so the
scenarios are driver_suite.py's: 100,000 records per codec with an idempotent producer, a
consumer group through a graceful leave, a SIGKILL and a broker restart, topic administration
(the legacy AlterConfigs and IncrementalAlterConfigs), offsets by timestamp.
"""
import json
import subprocess
from pathlib import Path

import pytest

import driver_suite as suite
from harness import unique_topic
from harness.pytest_plugin import COMMON_PROPS
from harness.sasl import PLAIN_USERS, add_scram, client_conf, start_sasl_broker, wait_authenticates
from harness.tls import Certs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sarama():
    """The Go driver, built on first use."""
    proc = subprocess.run(["bash", str(ROOT / "tests/env/install/sarama.sh")], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"tests/env/install/sarama.sh failed:\n{proc.stderr[-4000:]}"
    return SaramaDriver(proc.stdout.strip().splitlines()[-1])


class SaramaDriver(suite.Driver):
    prefix = "srm"
    consume_end = "complete"
    error_key = "name"
    invalid_partitions = "INVALID_PARTITIONS"

    def __init__(self, binary):
        self.binary = binary

    def argv(self, cmd, **args):
        return [self.binary, cmd] + suite._argv(args)

    @staticmethod
    def timestamp_answer(offset, timestamp, end):
        return -1 if offset is None else offset  # none: Kafka's ListOffsets answer, as sarama passes it


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("codec", suite.CODECS)
def test_produce_consume_100k(sarama, broker, codec):
    suite.produce_consume_100k(sarama, broker, codec)


def test_consumer_group_rebalance_and_restart(sarama, target_kind, broker_factory, tmp_path):
    suite.consumer_group_rebalance_and_restart(sarama, target_kind, broker_factory, tmp_path)


def test_admin_topics(sarama, broker):
    def created_again(again):
        assert again["ok"] is False and again["error"]["name"] == "TOPIC_ALREADY_EXISTS", again

    def incremental(drv, bs, topic):
        # IncrementalAlterConfigs changes what it names only.
        drv.admin1(bs, {"op": "incremental_alter_configs", "topic": topic, "configs": {"retention.ms": 5400000}})
        cfg = drv.admin1(bs, {"op": "describe_configs", "topic": topic, "names": suite.CONFIG_NAMES})
        assert cfg["retention.ms"] == {"value": "5400000", "default": False}
        assert cfg["max.message.bytes"] == {"value": "500000", "default": False}

    suite.admin_topics(sarama, broker, {"retention.ms": 3600000, "max.message.bytes": 500000}, created_again,
                       lambda bs, topic: suite.created_configs_then_legacy_alter(sarama, bs, topic, incremental))


def test_offsets_by_timestamp(sarama, broker):
    suite.offsets_by_timestamp(sarama, broker)


def test_over_sasl_plain_and_tls(sarama, target_kind, tmp_path):
    """sarama authenticates with PLAIN over SASL_PLAINTEXT and over SASL_SSL (verifying the
    broker's certificate and host name): records produced are consumed back; a wrong password
    fails the client at connect with the broker's authentication error."""
    certs = Certs(tmp_path / "ca")
    b = start_sasl_broker(target_kind, tmp_path / "b", certs, COMMON_PROPS)
    try:
        auth = {"sasl-user": "alice", "sasl-password": PLAIN_USERS["alice"]}
        for bootstrap, extra in [(b.sasl_plaintext, {}), (b.sasl_ssl, {"ssl-ca": certs.ca})]:
            topic = unique_topic("srm-sasl")
            [created] = sarama.run("admin", bootstrap=bootstrap, **auth, **extra,
                                   ops=json.dumps([{"op": "create_topic", "topic": topic, "partitions": 2}]))
            assert created["ok"], created
            sarama.produce(2000, bootstrap=bootstrap, topic=topic, **auth, **extra)
            c = sarama.run("consume", bootstrap=bootstrap, topic=topic, expect=2000, timeout=120, **auth, **extra)
            assert c["ended"] == sarama.consume_end and c["records"] == 2000, c
        assert_refused(sarama, b.sasl_plaintext, {"sasl-user": "alice", "sasl-password": "wrong"})
    finally:
        b.broker.stop()


def assert_refused(sarama, bootstrap, auth):
    """The driver fails at connect with the broker's authentication error."""
    proc = subprocess.run(sarama.argv("admin", bootstrap=bootstrap, **auth, ops=json.dumps([{"op": "list_topics"}])),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    lines = proc.stdout.splitlines()
    fatal = json.loads(lines[-1]).get("fatal") if lines else None
    assert proc.returncode == 2 and fatal and "SASL Authentication failed" in fatal["message"], \
        (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])


def test_over_scram(sarama, target_kind, tmp_path):
    """sarama authenticates with SCRAM-SHA-512 over SASL_SSL (verifying the broker's certificate)
    and SCRAM-SHA-256 over SASL_PLAINTEXT, as a user kafka-configs made: records produced are
    consumed back; a wrong password is refused with the broker's authentication error."""
    certs = Certs(tmp_path / "ca")
    b = start_sasl_broker(target_kind, tmp_path / "b", certs, COMMON_PROPS)
    try:
        user = unique_topic("gopher")
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            add_scram(b.plaintext, user, mechanism, "gopher-secret", iterations=8192)
            wait_authenticates(client_conf(b.sasl_plaintext, mechanism, user, "gopher-secret"))
        for mechanism, bootstrap, extra in [("SCRAM-SHA-512", b.sasl_ssl, {"ssl-ca": certs.ca}),
                                            ("SCRAM-SHA-256", b.sasl_plaintext, {})]:
            auth = {"sasl-user": user, "sasl-password": "gopher-secret", "sasl-mechanism": mechanism}
            topic = unique_topic("srm-scram")
            [created] = sarama.run("admin", bootstrap=bootstrap, **auth, **extra,
                                   ops=json.dumps([{"op": "create_topic", "topic": topic, "partitions": 2}]))
            assert created["ok"], (mechanism, created)
            sarama.produce(2000, bootstrap=bootstrap, topic=topic, **auth, **extra)
            c = sarama.run("consume", bootstrap=bootstrap, topic=topic, expect=2000, timeout=120, **auth, **extra)
            assert c["ended"] == sarama.consume_end and c["records"] == 2000, (mechanism, c)
            assert_refused(sarama, bootstrap, {**auth, **extra, "sasl-password": "wrong"})
    finally:
        b.broker.stop()
