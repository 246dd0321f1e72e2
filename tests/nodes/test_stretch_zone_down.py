"""The stretch example (deploy/examples/stretch-3-zone.yaml: 3 zones x 2 brokers, topics at RF 3 /
min.insync.replicas 2) keeps its promise on real nodes when a whole zone goes away:

1. `kubectl apply` of the example: six broker pods, two per zone, the cluster Ready and its
   topics created by the operator.
2. An acks=all, idempotent librdkafka producer on the host writes to `orders` through the
   bootstrap Service.
3. `zone-down zone-b` (its kubelet, containers and network gone): writes continue, acknowledged by
   the two other zones.
4. `zone-up zone-b`: its brokers return and every partition's ISR is full (3) again.
5. Everything acknowledged is read back at its offset with its value: 0 acknowledged records lost.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.replication import Ack, check_records
from harness.kube import has_condition

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "examples" / "stretch-3-zone.yaml"
NS = "stretch"
DOWN_ZONE = "zone-b"


def test_stretch_cluster_survives_a_zone_going_down_under_acks_all_load(nodes, kafka, operator_release,
                                                                        namespaces):
    # 1. the example, as its header says to apply it
    namespaces.make(NS)
    nodes.kubectl("apply", "-n", NS, "-f", str(EXAMPLE))

    def pods_ready():
        return len(nodes.ready_pods(NS, "kafka.strata.dev/cluster=stretch")) == 6
    nodes.wait_until(pods_ready, timeout=300, interval=1, what="six stretch broker pods Ready")
    cluster = nodes.get_json("kafkacluster", "stretch", namespace=NS)
    bootstrap = cluster["status"]["bootstrapAddress"]

    listed = kafka.cluster_size(bootstrap, 6)
    assert listed == 6, f"Metadata through the stretch cluster's bootstrap Service lists {listed} of 6 brokers"

    def topic_ready():
        t = nodes.get_json("kafkatopic", "orders", namespace=NS)
        return has_condition(t, "Ready", "True")
    nodes.wait_until(topic_ready, timeout=120, what="KafkaTopic orders Ready")

    def isr_full():
        parts = kafka.metadata(bootstrap)["topics"].get("orders", {})
        return len(parts) == 6 and all(len(p["isrs"]) == 3 for p in parts.values())
    nodes.wait_until(isr_full, timeout=120, what="orders: 6 partitions with 3 in-sync replicas")

    # 2. acks=all load through the bootstrap Service
    with kafka.load(bootstrap, "orders", seconds=600, rate=200) as load:
        nodes.wait_until(lambda: load.acked() >= 1000, timeout=120, what="1000 records acknowledged")

        # 3. zone-b goes down; the two other zones keep acknowledging writes
        nodes.zone_down(DOWN_ZONE)
        at_down = load.acked()
        nodes.wait_until(lambda: load.acked() >= at_down + 3000, timeout=240, interval=1,
                         what=f"3000 more records acknowledged with {DOWN_ZONE} down")

        # 4. zone-b back: its brokers rejoin, every ISR is full again
        nodes.zone_up(DOWN_ZONE)
        nodes.wait_until(pods_ready, timeout=300, interval=1, what="six stretch broker pods Ready again")
        nodes.wait_until(isr_full, timeout=300, interval=1, what="every ISR of orders full again")
        at_up = load.acked()
        nodes.wait_until(lambda: load.acked() >= at_up + 1000, timeout=120, what="writes after zone-up")
        load.stop()
        result = load.result()

    # 5. the replication checker: nothing acknowledged is lost, no offset holds two values
    acks = [Ack(*r) for r in result["acked"]]
    records = {}
    for p, offset, value in kafka.consume(bootstrap, "orders", timeout=180):
        records.setdefault(p, []).append((offset, value))
    check = check_records(acks, records)
    print(f"\nzone-down {DOWN_ZONE} under acks=all: sent {result['sent']}, send errors {result['errors']}; {check}")
    assert not check.lost, f"acknowledged records lost: {check}"
    assert not check.conflicts, str(check)
