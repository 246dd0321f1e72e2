"""kafkajs (2.2.x) against each target broker.

kafkajs runs in a node driver (tests/compat/js/driver.js, installed by tests/env/install/node.sh)
that pytest invokes per step with JSON in and out; the scenarios shared with the Java client's
suite are in driver_suite.py.
"""
import subprocess
from pathlib import Path

import pytest

import driver_suite as suite

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
    names = ["retention.ms", "cleanup.policy", "max.message.bytes"]

    def created_again(again):
        # kafkajs answers `false` for a topic that already exists (TOPIC_ALREADY_EXISTS).
        assert again == {"ok": True, "result": False}

    def configs(bs, topic):
        cfg = js.admin1(bs, {"op": "describe_configs", "topic": topic, "names": names})
        assert cfg["retention.ms"] == {"value": "3600000", "default": False}
        assert cfg["max.message.bytes"] == {"value": "500000", "default": False}
        assert cfg["cleanup.policy"] == {"value": "delete", "default": True}

        js.admin1(bs, {"op": "alter_configs", "topic": topic,
                       "configs": {"retention.ms": 7200000, "cleanup.policy": "compact"}})
        cfg = js.admin1(bs, {"op": "describe_configs", "topic": topic, "names": names})
        assert cfg["retention.ms"] == {"value": "7200000", "default": False}
        assert cfg["cleanup.policy"] == {"value": "compact", "default": False}
        # kafkajs uses the (non-incremental) AlterConfigs API: entries not named return to their default.
        assert cfg["max.message.bytes"] == {"value": "1048588", "default": True}

    suite.admin_topics(js, broker, {"retention.ms": 3600000, "max.message.bytes": 500000},
                       created_again, configs)


def test_offsets_by_timestamp(js, broker):
    suite.offsets_by_timestamp(js, broker)
