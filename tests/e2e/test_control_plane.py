"""The Kubernetes test control plane itself (tests/env/k8s): real etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, kwok nodes in 3 zones, a static pool of zoned local
PersistentVolumes. The operator's end-to-end tests build on exactly these guarantees."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "env" / "k8s"))
from controlplane import ControlPlane, names  # noqa: E402

pytestmark = pytest.mark.timeout(900)

ZONES = ["zone-a", "zone-b", "zone-c"]
NS = "smoke"

STATEFULSET = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NS}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {NS}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
  namespace: {NS}
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {{key: topology.kubernetes.io/zone, operator: In, values: [zone-b]}}
      containers:
      - name: web
        image: registry.invalid/strata/smoke:1
        resources:
          requests: {{cpu: 100m, memory: 64Mi}}
        volumeMounts:
        - {{name: data, mountPath: /data}}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: strata-local
      resources:
        requests: {{storage: 1Gi}}
"""


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    plane = ControlPlane(tmp_path_factory.mktemp("k8s"), zones=3, nodes_per_zone=2)
    plane.up()
    print(f"control plane up in {plane.up_seconds:.1f}s ({plane.dir})")
    try:
        yield plane
    finally:
        plane.down()


def test_nodes_ready_across_zones(cp):
    out = cp.kubectl("get", "nodes", "-L", "topology.kubernetes.io/zone", "--no-headers")
    rows = [line.split() for line in out.splitlines() if line.strip()]
    # NAME STATUS ROLES AGE VERSION ZONE
    assert len(rows) == 6, out
    assert all(r[1] == "Ready" for r in rows), out
    zones = sorted(r[-1] for r in rows)
    assert zones == sorted(ZONES * 2), out
    assert sorted(cp.ready_nodes()) == sorted(cp.node_zones())


def test_default_storage_class_and_pv_pool(cp):
    sc = cp.get_json("storageclass", "strata-local")
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["provisioner"] == "kubernetes.io/no-provisioner"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    pvs = cp.items("pv")
    for zone in ZONES:
        assert sum(pv["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone for pv in pvs) == 12


def test_statefulset_in_one_zone_binds_and_runs(cp):
    cp.apply(STATEFULSET)
    zones = cp.node_zones()

    pods = cp.wait_until(lambda: (lambda ps: ps if len(ps) == 3 else None)(
        cp.ready_pods(NS, "app=web")), timeout=120, what="3 web pods Running and Ready")
    assert names(pods) == ["web-0", "web-1", "web-2"]
    for p in pods:
        assert zones[p["spec"]["nodeName"]] == "zone-b", p["spec"]["nodeName"]
        assert p["status"].get("podIP"), p["status"]

    def bound():
        pvcs = cp.items("pvc", namespace=NS)
        return pvcs if len(pvcs) == 3 and all(c["status"].get("phase") == "Bound" for c in pvcs) else None
    pvcs = cp.wait_until(bound, timeout=60, what="3 PVCs Bound")
    assert names(pvcs) == ["data-web-0", "data-web-1", "data-web-2"]
    for c in pvcs:
        pv = cp.get_json("pv", c["spec"]["volumeName"])
        assert pv["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-b"
        assert pv["status"]["phase"] == "Bound"

    sts = cp.get_json("statefulset", "web", namespace=NS)
    cp.wait_until(lambda: cp.get_json("statefulset", "web", namespace=NS)["status"].get("readyReplicas") == 3,
                  timeout=30, what="StatefulSet readyReplicas=3")
    assert sts["spec"]["replicas"] == 3

    # delete: the garbage collector removes the pods, kwok finishes their deletion, the namespace
    # controller empties and removes the namespace, claims released
    cp.kubectl("delete", "namespace", NS, "--wait=false")
    cp.wait_until(lambda: not cp.kubectl("get", "namespace", NS, "--ignore-not-found", "-o", "name"),
                  timeout=120, what=f"namespace {NS} deleted")
    released = cp.wait_until(
        lambda: [pv for pv in cp.items("pv") if pv["status"].get("phase") == "Released"]
        if sum(pv["status"].get("phase") == "Released" for pv in cp.items("pv")) == 3 else None,
        timeout=60, what="3 PVs Released")
    assert len(released) == 3
    assert cp.recycle_volumes() == 3
    cp.wait_until(lambda: all(pv["status"].get("phase") == "Available" for pv in cp.items("pv")),
                  timeout=60, what="every PV Available again")
