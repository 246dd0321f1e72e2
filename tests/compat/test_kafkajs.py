"""kafkajs (2.2.x) against each target broker, also over SASL_SSL/SCRAM-SHA-512 and
SASL_PLAINTEXT/PLAIN (harness/sasl.py's listeners).

kafkajs runs in a node driver (tests/compat/js/driver.js, installed by tests/env/install/node.sh)
that pytest invokes per step with JSON in and out; the scenarios shared with the Java client's
suite are in driver_suite.py.
"""
import json
import subprocess
from pathlib import Path

import pytest

import driver_suite as suite
from harness import unique_topic
from harness.pytest_plugin import COMMON_PROPS
from harness.sasl import add_scram, client_conf, start_sasl_broker, wait_authenticates
from harness.tls import Certs

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js"
ROOT = HERE.parents[1]


@pytest.fixture(scope="session")
def js():
    """The node driver, installed (npm ci) on first use."""
    proc = subprocess.run(["bash", str(ROOT / "tests/env/install/node.sh")], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"tests/env/install/node.sh failed:\n{proc.stderr[-4000:]}"
    return JsDriver()


class JsDriver(suite.Driver):
    prefix = "kjs"
    consume_end = "complete"
    reports_errors = False  # a failed send fails the produce command
    error_key = "type"
    invalid_partitions = "INVALID_PARTITIONS"
    group_batch = 500

    def argv(self, cmd, **args):
        return ["node", str(JS_DIR / "driver.js"), cmd] + suite._argv(args)

    @staticmethod
    def timestamp_answer(offset, timestamp, end):
        return end if offset is None else offset  # none: kafkajs answers the end offset


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("codec", suite.CODECS)
def test_produce_consume_100k(js, broker, codec):
    suite.produce_consume_100k(js, broker, codec)


def test_consumer_group_rebalance_and_restart(js, target_kind, broker_factory, tmp_path):
    suite.consumer_group_rebalance_and_restart(js, target_kind, broker_factory, tmp_path)


def test_admin_topics(js, broker):
    def created_again(again):
        # kafkajs answers `false` for a topic that already exists (TOPIC_ALREADY_EXISTS).
        assert again == {"ok": True, "result": False}

    # kafkajs alters configs with the legacy (non-incremental) AlterConfigs API only.
    suite.admin_topics(js, broker, {"retention.ms": 3600000, "max.message.bytes": 500000},
                       created_again, lambda bs, topic: suite.created_configs_then_legacy_alter(js, bs, topic))


def test_offsets_by_timestamp(js, broker):
    suite.offsets_by_timestamp(js, broker)


def test_over_sasl_and_tls(js, target_kind, tmp_path):
    """kafkajs authenticates with SCRAM-SHA-512 over SASL_SSL (verifying the broker's certificate
    and host name) and with PLAIN over SASL_PLAINTEXT: records produced are consumed back in a
    group; a wrong password fails the client with kafkajs's SASL authentication error."""
    certs = Certs(tmp_path / "ca")
    b = start_sasl_broker(target_kind, tmp_path / "b", certs, COMMON_PROPS)
    try:
        add_scram(b.plaintext, "alice", "SCRAM-SHA-512", "alice-secret")
        wait_authenticates(client_conf(b.sasl_plaintext, "SCRAM-SHA-512", "alice", "alice-secret"))
        for bootstrap, mechanism, extra in [(b.sasl_ssl, "scram-sha-512", {"ssl-ca": certs.ca}),
                                            (b.sasl_plaintext, "plain", {})]:
            auth = {"sasl-mechanism": mechanism, "sasl-user": "alice", "sasl-password": "alice-secret", **extra}
            topic = unique_topic(f"kjs-sasl-{mechanism}")
            [created] = js.run("admin", bootstrap=bootstrap, **auth,
                               ops=json.dumps([{"op": "create_topic", "topic": topic, "partitions": 2}]))
            assert created["ok"], created
            js.produce(2000, bootstrap=bootstrap, topic=topic, **auth)
            c = js.run("consume", bootstrap=bootstrap, topic=topic, expect=2000, timeout=120, **auth)
            assert c["ended"] == js.consume_end and c["records"] == 2000, c
        wrong = {"sasl-mechanism": "scram-sha-512", "sasl-user": "alice", "sasl-password": "wrong"}
        proc = subprocess.run(js.argv("admin", bootstrap=b.sasl_plaintext, **wrong,
                                      ops=json.dumps([{"op": "list_topics"}])),
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        lines = proc.stdout.splitlines()
        fatal = json.loads(lines[-1]).get("fatal") if lines else None
        assert proc.returncode == 2 and fatal and fatal["name"] == "KafkaJSSASLAuthenticationError", \
            (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    finally:
        b.broker.stop()
