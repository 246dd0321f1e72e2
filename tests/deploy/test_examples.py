"""deploy/examples, offline. Their custom resources are checked against the CRD schemas by
crates/strata-api/tests/examples.rs (schema_check); here every other object validates against
Kubernetes' schemas, and what the operator makes of each cluster example
(`strata-operator render -f`) is valid Kubernetes that runs the image the way
tests/image proves it works: command /usr/local/bin/strata-broker --config, uid/gid 65532,
read-only root filesystem, data on a PersistentVolumeClaim at /var/lib/strata, pinned to its zone.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import manifests as m

EXAMPLES = sorted(m.EXAMPLES.glob("*.yaml"))
CLUSTER_EXAMPLES = [p for p in EXAMPLES if any(d["kind"] == "KafkaCluster" for d in m.example_docs(p))]
BROKER_IMAGE = "registry.example/strata:render-test"


def test_the_three_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"active-standby.yaml", "single-zone.yaml", "stretch-3-zone.yaml"} <= names, names
    assert (m.DEPLOY / "README.md").is_file()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("version", m.validation_versions())
def test_example_objects_are_well_formed(example, version):
    docs = m.example_docs(example)
    assert docs, f"{example.name} is empty"
    for doc in docs:
        assert doc["metadata"]["name"], doc
        assert "namespace" not in doc["metadata"], f"{example.name}: apply with -n, do not pin a namespace"
        if doc["apiVersion"].split("/")[0] == m.GROUP:
            assert doc["apiVersion"] == f"{m.GROUP}/v1alpha1"
            continue  # validated against the CRD schemas by crates/strata-api/tests/examples.rs
        m.validate(doc, version)


@pytest.fixture(scope="module")
def render():
    reason = m.render_support()
    if reason:
        pytest.skip(reason)
    return m.render_example


def _container(sts: dict) -> dict:
    (broker,) = [c for c in sts["spec"]["template"]["spec"]["containers"]
                 if c.get("command") == [m.BROKER_BIN_IN_IMAGE]]
    return broker


@pytest.mark.parametrize("example", CLUSTER_EXAMPLES, ids=lambda p: p.name)
def test_rendered_children_validate_and_run_the_image_as_tested(render, example: Path):
    objs = render(example, BROKER_IMAGE)
    assert objs, f"render of {example.name} printed nothing"
    for version in m.validation_versions():
        for obj in objs:
            m.validate(obj, version)

    clusters = [d for d in m.example_docs(example) if d["kind"] == "KafkaCluster"]
    racks = [r for c in clusters for r in c["spec"]["racks"]]
    statefulsets = m.broker_statefulsets(objs)
    assert len(statefulsets) == len(racks), "one broker StatefulSet per rack"
    assert sum(s["spec"]["replicas"] for s in statefulsets) == sum(r["brokers"] for r in racks)

    for sts in statefulsets:
        pod = sts["spec"]["template"]["spec"]
        c = _container(sts)
        assert c["image"] == BROKER_IMAGE
        assert "--config" in c.get("args", []) or any(a.startswith("--config=") for a in c.get("args", []))
        pod_sc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) == 65532
        assert sc.get("runAsGroup", pod_sc.get("runAsGroup")) == 65532
        assert sc.get("readOnlyRootFilesystem") is True
        claims = {t["metadata"]["name"]: t for t in sts["spec"].get("volumeClaimTemplates", [])}
        data_mounts = [v for v in c.get("volumeMounts", []) if v["mountPath"] == m.DATA_DIR]
        assert len(data_mounts) == 1 and data_mounts[0]["name"] in claims, \
            f"{m.key(sts)}: {m.DATA_DIR} must be a PersistentVolumeClaim"
        claim = claims[data_mounts[0]["name"]]["spec"]
        assert claim["resources"]["requests"]["storage"] == "10Gi"
        assert "storageClassName" not in claim, "the examples use the default StorageClass"

    topology = {c["spec"].get("topologyKey", "topology.kubernetes.io/zone") for c in clusters}
    assert len(topology) == 1
    key = topology.pop()
    zones = Counter(m.pod_zone(s["spec"]["template"]["spec"], key) for s in statefulsets)
    assert zones == Counter(r.get("zone") for r in racks)
