"""deploy/operator: the plain install (`kubectl apply -k deploy/operator`, or a GitOps tool
pointed at the directory). It builds with the kustomize embedded in kubectl, holds the generated
CRDs unchanged, validates strictly, and is the chart's default rendering minus Helm's labels."""
from __future__ import annotations

import pytest
import yaml

import manifests as m

OPERATOR = m.DEPLOY / "operator"


@pytest.fixture(scope="module")
def built() -> list[dict]:
    return m.kustomize(OPERATOR)


def test_builds_with_namespace_crds_and_operator(built):
    kinds = sorted(m.key(o) for o in built)
    assert ("Namespace", "", "strata-system") in kinds
    assert ("Deployment", "strata-system", "strata-operator") in kinds
    assert ("ServiceAccount", "strata-system", "strata-operator") in kinds
    assert ("ClusterRole", "", "strata-operator") in kinds
    for obj in built:
        if obj["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "strata-system", m.key(obj)
        labels = obj["metadata"].get("labels", {})
        for label in m.HELM_ONLY_LABELS:
            assert label not in labels, f"{m.key(obj)} carries Helm's {label}"


def test_crds_are_the_generated_files(built):
    crds = {o["metadata"]["name"]: o for o in m.by_kind(built, "CustomResourceDefinition")}
    on_disk = {}
    for f in sorted(m.CRDS.glob("*.yaml")):
        (crd,) = m.load_all(f.read_text())
        on_disk[crd["metadata"]["name"]] = crd
    assert len(on_disk) == 3
    assert crds == on_disk
    # `kubectl apply -f crds/` reads only *.yaml/*.yml/*.json: the kustomization must not be one.
    assert not list(m.CRDS.glob("kustomization.y*ml")) and (m.CRDS / "Kustomization").is_file()


@pytest.mark.parametrize("version", m.validation_versions())
def test_every_object_validates(built, version):
    for obj in built:
        m.validate(obj, version)


def test_namespace_enforces_the_restricted_pod_security_standard(built):
    ns = m.one(built, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_same_objects_as_the_chart_defaults(built):
    chart = {m.key(o): m.without_helm_labels(o) for o in m.render_chart()}
    plain = {m.key(o): o for o in built if o["kind"] not in ("Namespace", "CustomResourceDefinition")}
    assert sorted(plain) == sorted(chart), "deploy/operator and the chart hold different objects"
    for k in chart:
        assert plain[k] == chart[k], (
            f"{k} differs between deploy/operator and `helm template` of the chart with default "
            f"values:\n--- deploy/operator\n{yaml.safe_dump(plain[k])}\n--- chart\n{yaml.safe_dump(chart[k])}")


def test_kustomization_lists_every_file_of_the_directory():
    kustomization = yaml.safe_load((OPERATOR / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert resources[0] == "../../crds"
    files = sorted(f.name for f in OPERATOR.glob("*.yaml") if f.name != "kustomization.yaml")
    assert sorted(resources[1:]) == files
