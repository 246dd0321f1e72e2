"""The operator's Kafka-facing path against a broker that lies: the KafkaCluster's admin calls go
through a mutating proxy (tests/harness/mutating_proxy.py) in front of a real Strata broker,
which garbles every response while the test says so (flipped bits, huge counts and lengths,
truncated bodies, frames announcing more than they send, garbage). Strata only: the proxy needs
a listener advertised at its port, which the harness sets up for the Strata broker.

1. apply a KafkaTopic while every response is garbled -> Ready=False with a reason a user can
   act on (the cluster cannot be reached or refused the call) and a message naming the cluster;
2. ApiVersions and Metadata answered cleanly, every other response garbled, for a while: the
   damage reaches the topic calls behind the handshake (CreateTopics, DescribeConfigs, ...);
   the operator keeps running;
3. the proxy turns clean -> the topic becomes Ready and exists on the broker as specified; the
   operator's peak memory is bounded and its log holds no panic;
4. delete the KafkaTopic -> the topic is deleted from the broker (the finalizer is honoured).

The operator retries a failed reconcile with a backoff (5 s, doubling up to 5 min), so the test
annotates the KafkaTopic where it needs a reconcile now: an annotation is a change, which the
controller reconciles at once.
"""
from __future__ import annotations

import json
import time

import pytest
from confluent_kafka.admin import AdminClient

from harness.brokers import StrataBroker
from harness.kube import condition, has_condition, install_crds
from harness.mutating_proxy import MutatingProxy, peak_rss_kib, proxied_listener_props
from harness.util import free_ports, unique_topic

pytestmark = pytest.mark.timeout(180)

CLUSTER = "kafka"
ACTIONABLE = {"ClusterUnreachable", "ClusterBusy", "KafkaRequestRefused"}
HOSTILE_SECONDS = 10
API_VERSIONS, METADATA = 18, 3
PEAK_RSS_LIMIT_KIB = 256 * 1024


def test_topic_reconciles_through_garbled_responses(cp, namespaces, operators, tmp_path):
    install_crds(cp)
    ns = namespaces.make("e2e-hostile-kafka")
    port, inner, proxy_port = free_ports(3)
    broker = StrataBroker(tmp_path / "broker", {**proxied_listener_props(port, inner, proxy_port),
                                                "auto.create.topics.enable": "false"}, port=port)
    broker.start()
    proxy = MutatingProxy(("127.0.0.1", inner), port=proxy_port, fraction=1.0, seed=21).start()
    name = unique_topic("hostile")
    try:
        cp.apply(f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: {CLUSTER}}}
spec:
  racks: [{{name: zone-a, zone: zone-a, brokers: 1}}]
  storage: {{size: 1Gi}}
  config: {{default.replication.factor: "1", min.insync.replicas: "1"}}
""", "-n", ns)
        op = operators.start(holder_id="hostile", namespaces=[ns], lease_namespace=ns,
                             overrides={f"{ns}/{CLUSTER}": proxy.bootstrap})
        cp.wait_until(lambda: op.metric("strata_operator_leader") == 1, timeout=60, what="operator leading")

        # 1. Every response garbled: an actionable condition, the operator keeps running.
        cp.apply(json.dumps({"apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaTopic",
                             "metadata": {"name": name},
                             "spec": {"clusterRef": {"name": CLUSTER}, "partitions": 3,
                                      "config": {"retention.ms": "3600000"},
                                      "deletionPolicy": "Delete"}}), "-n", ns)

        def refused():
            c = condition(kt(cp, ns, name), "Ready")
            return c if c and c["status"] == "False" and c["reason"] in ACTIONABLE else None

        c = cp.wait_until(refused, timeout=30, interval=0.3, what="Ready=False with an actionable reason")
        assert f"{ns}/{CLUSTER}" in c["message"], c
        print(f"while garbled: Ready=False {c['reason']}: {c['message']}")
        assert op.running(), f"the operator exited while responses were garbled:\n{op.log_tail(40)}"

        # 2. The handshake and Metadata pass, everything behind them is garbled.
        proxy.spare = {API_VERSIONS, METADATA}
        deadline = time.monotonic() + HOSTILE_SECONDS
        nudges = 0
        while time.monotonic() < deadline:
            nudge(cp, ns, name, f"hostile-{nudges}")
            nudges += 1
            time.sleep(2)  # one reconcile (and what its status change triggers) per nudge
            assert op.running(), f"the operator exited while responses were garbled:\n{op.log_tail(40)}"
        print(f"proxy: {dict(proxy.stats)}")
        behind = sum(n for k, n in proxy.stats.items() if k.startswith("api ") and k not in ("api 18", "api 3"))
        assert behind >= 3, f"no response behind the handshake was garbled: {dict(proxy.stats)}"

        # 3. Clean again: Ready, and the topic is on the broker as specified.
        proxy.fraction = 0
        nudge(cp, ns, name, "clean")
        cp.wait_until(lambda: has_condition(kt(cp, ns, name), "Ready", "True"), timeout=45, interval=0.3,
                      what="Ready=True once the proxy is clean")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000, "log_level": 2})
        topic = admin.list_topics(timeout=10).topics.get(name)
        assert topic is not None and len(topic.partitions) == 3, topic

        peak = peak_rss_kib(op.pid)
        print(f"operator peak RSS {peak} KiB")
        assert op.running()
        assert peak < PEAK_RSS_LIMIT_KIB, f"the operator peaked at {peak} KiB"
        assert "panicked" not in op.log_path.read_text(errors="replace"), op.log_tail(40)

        # 4. Deleting the KafkaTopic deletes the topic (while the operator and the broker run).
        cp.kubectl("delete", "kafkatopic", name, "-n", ns, "--wait=true", timeout=60)
        cp.wait_until(lambda: name not in admin.list_topics(timeout=10).topics, timeout=30,
                      what=f"topic {name} deleted from the broker")
    finally:
        proxy.stop()
        broker.stop()


def kt(cp, ns, name):
    return cp.get_json("kafkatopic", name, namespace=ns)


def nudge(cp, ns, name, value):
    """A change that asks for a reconcile now, whatever the error backoff says."""
    cp.kubectl("annotate", "kafkatopic", name, "-n", ns, "--overwrite", f"strata.test/nudge={value}")
