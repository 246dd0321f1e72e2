"""The Helm chart charts/strata-operator, offline: it lints, renders objects Kubernetes accepts
(strict schema validation, for the newest bundled release and the test control plane's), grants
exactly the operator's permissions, and wires the operator's command-line contract."""
from __future__ import annotations

import pytest
import yaml

import manifests as m

VERSION = m.workspace_version()

# Value sets every rendering test runs with: defaults, namespaced, monitoring on, and the rest.
VALUE_SETS = {
    "defaults": {},
    "watch-namespaces": {"watchNamespaces": ["kafka", "team-b"]},
    "service-monitor": {"metrics.serviceMonitor.enabled": True,
                        "metrics.serviceMonitor.labels": {"release": "kube-prometheus-stack"}},
    "everything": {
        "watchNamespaces": ["kafka"], "metrics.serviceMonitor.enabled": True,
        "metrics.grafanaDashboard.enabled": True,
        "replicaCount": 3, "brokerImage": "registry.example/strata:custom",
        "imagePullSecrets": [{"name": "regcred"}], "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "strata-operator"}}}}]}},
        "extraEnv": [{"name": "NO_COLOR", "value": "1"}],
        "serviceAccount.annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"},
        "podAnnotations": {"example.com/a": "b"}, "logLevel": "debug",
    },
    "single-replica-no-election": {"replicaCount": 1, "leaderElection.enabled": False},
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, m.render_chart(VALUE_SETS[request.param])


def test_chart_metadata_follows_the_workspace_version():
    chart = yaml.safe_load((m.CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "strata-operator"
    assert chart["version"] == VERSION
    assert chart["appVersion"] == VERSION
    values = yaml.safe_load((m.CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/strata-dev/strata"
    assert values["image"]["tag"] == ""  # -> appVersion
    assert values["replicaCount"] == 2
    assert values["leaderElection"]["enabled"] is True
    assert values["metrics"]["port"] == 8080
    assert values["metrics"]["serviceMonitor"]["enabled"] is False
    assert values["watchNamespaces"] == []


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint(name):
    out = m.run(m.tool("helm"), "lint", "--strict", str(m.CHART), *m.set_args(VALUE_SETS[name]))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout


@pytest.mark.parametrize("version", m.validation_versions())
def test_every_rendered_object_validates(rendered, version):
    name, objs = rendered
    kinds = {o["kind"] for o in objs}
    assert {"ServiceAccount", "Deployment", "Service"} <= kinds, (name, kinds)
    for obj in objs:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # not a Kubernetes kind; checked in test_service_monitor
        m.validate(obj, version)
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace"), f"{m.key(obj)} has no namespace"


@pytest.mark.parametrize("version", m.validation_versions())
def test_chart_crds_validate_and_are_kept_on_uninstall(version):
    files = sorted((m.CHART / "crds").glob("*.yaml"))
    assert [f.name for f in files] == sorted(f.name for f in m.CRDS.glob("*.yaml"))
    for f in files:
        (crd,) = m.load_all(f.read_text())
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        m.validate(crd, version)


def test_default_install_watches_every_namespace_with_a_cluster_role():
    objs = m.render_chart()
    role = m.one(objs, "ClusterRole")
    assert m.permissions(role["rules"]) == m.WATCHED_NAMESPACE_PERMISSIONS
    binding = m.one(objs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    sa = m.one(objs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "strata-system"}]
    # The only namespaced Role is the Lease one.
    assert [r["metadata"]["name"] for r in m.by_kind(objs, "Role")] == ["strata-operator-leader-election"]
    env = {e["name"] for e in _container(objs)["env"]}
    assert "STRATA_WATCH_NAMESPACES" not in env


def test_watch_namespaces_get_a_role_each_and_no_cluster_role():
    objs = m.render_chart({"watchNamespaces": ["kafka", "team-b", "kafka"]}, namespace="ops")
    assert not m.by_kind(objs, "ClusterRole") and not m.by_kind(objs, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in m.by_kind(objs, "Role")
             if not r["metadata"]["name"].endswith("-leader-election")}
    assert sorted(roles) == ["kafka", "team-b"]  # duplicates collapse
    for role in roles.values():
        assert m.permissions(role["rules"]) == m.WATCHED_NAMESPACE_PERMISSIONS
    bindings = {b["metadata"]["namespace"]: b for b in m.by_kind(objs, "RoleBinding")
                if not b["metadata"]["name"].endswith("-leader-election")}
    assert sorted(bindings) == ["kafka", "team-b"]
    sa = m.one(objs, "ServiceAccount")["metadata"]
    for ns, binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[ns]["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": "ops"}]
    env = {e["name"]: e.get("value") for e in _container(objs)["env"]}
    assert env["STRATA_WATCH_NAMESPACES"] == "kafka,team-b"


def test_lease_role_only_in_the_operator_namespace():
    objs = m.render_chart({"watchNamespaces": ["kafka"]}, namespace="ops")
    (role,) = [r for r in m.by_kind(objs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "ops"
    assert m.permissions(role["rules"]) == m.LEASE_PERMISSIONS
    # Everything but create is limited to the operator's own Lease.
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named and all(r["resourceNames"] == ["strata-operator"] for r in named)
    assert all(set(r["verbs"]) == {"create"} for r in role["rules"] if not r.get("resourceNames"))
    (binding,) = [b for b in m.by_kind(objs, "RoleBinding") if b["metadata"]["name"].endswith("-leader-election")]
    assert binding["metadata"]["namespace"] == "ops"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def _container(objs: list[dict]) -> dict:
    (container,) = m.one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_deployment_runs_the_operator_as_the_contract_says():
    objs = m.render_chart()
    deployment = m.one(objs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["serviceAccountName"] == m.one(objs, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = _container(objs)
    assert c["image"] == f"ghcr.io/strata-dev/strata:{VERSION}"
    assert c["command"] == ["/usr/local/bin/strata-operator"]
    assert c["args"] == [
        "run",
        "--metrics-addr=0.0.0.0:8080",
        "--leader-election=true",
        "--lease-name=strata-operator",
        f"--broker-image=ghcr.io/strata-dev/strata:{VERSION}",
        "--cluster-domain=cluster.local",
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["RUST_LOG"]["value"] == "info"
    (port,) = c["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", 8080)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert (sc["runAsUser"], sc["runAsGroup"]) == (65532, 65532)
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_values_reach_the_pod():
    objs = m.render_chart(VALUE_SETS["everything"], namespace="ops")
    deployment = m.one(objs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = _container(objs)
    assert deployment["spec"]["replicas"] == 3
    assert "--broker-image=registry.example/strata:custom" in c["args"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in pod["affinity"]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"example.com/a": "b"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["NO_COLOR"] == "1" and env["RUST_LOG"] == "debug"
    sa = m.one(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}


def test_broker_image_follows_the_operator_image_unless_set():
    objs = m.render_chart({"image.repository": "mirror.example/strata", "image.tag": "0.1.0-rc1"})
    c = _container(objs)
    assert c["image"] == "mirror.example/strata:0.1.0-rc1"
    assert "--broker-image=mirror.example/strata:0.1.0-rc1" in c["args"]


def test_metrics_service_and_service_monitor():
    objs = m.render_chart(VALUE_SETS["service-monitor"])
    service = m.one(objs, "Service")
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 8080, "metrics")
    pod_labels = m.one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = m.one(objs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["strata-system"]}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    assert not m.by_kind(m.render_chart(), "ServiceMonitor")


def test_broker_service_monitor_selects_the_operators_broker_services():
    """brokerMetrics.serviceMonitor: one ServiceMonitor for every cluster's brokers, selecting
    the headless broker Services the operator renders (labels and the `metrics` port taken from
    the operator's golden single-zone output), in the watched namespaces or all of them."""
    golden = [d for d in yaml.safe_load_all((m.REPO_ROOT / "crates" / "strata-operator" / "tests" / "golden"
                                             / "single-zone.yaml").read_text()) if d]
    (headless,) = [d for d in golden if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
    assert "metrics" in [p["name"] for p in headless["spec"]["ports"]]
    values = {"brokerMetrics.serviceMonitor.enabled": True,
              "brokerMetrics.serviceMonitor.labels": {"release": "kube-prometheus-stack"}}
    monitor = m.one(m.by_kind(m.render_chart(values), "ServiceMonitor"), "ServiceMonitor")
    assert monitor["metadata"]["name"].endswith("-brokers")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    assert spec["selector"]["matchLabels"].items() <= headless["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == \
        ("metrics", "/metrics", "30s", "10s")
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"kafka_cluster", "broker_id"}
    watched = m.one(m.by_kind(m.render_chart({**values, "watchNamespaces": ["kafka", "team-b"]}),
                              "ServiceMonitor"), "ServiceMonitor")
    assert watched["spec"]["namespaceSelector"] == {"matchNames": ["kafka", "team-b"]}
    assert not [o for o in m.by_kind(m.render_chart(), "ServiceMonitor") if o["metadata"]["name"].endswith("-brokers")]


def test_grafana_dashboard_config_map_only_when_enabled():
    import json

    def dashboards(objs):
        return [o for o in m.by_kind(objs, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]

    (cm,) = dashboards(m.render_chart({"metrics.grafanaDashboard.enabled": True}))
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "strata-system"
    shipped = json.loads((m.CHART / "dashboards" / "strata.json").read_text())
    assert json.loads(cm["data"]["strata.json"]) == shipped
    assert {p["title"] for p in shipped["panels"] if p["type"] == "row"} == \
        {"Broker", "Replication", "Groups", "Mirror", "Operator"}
    assert not dashboards(m.render_chart())


def test_disruption_budget_only_with_more_than_one_replica():
    assert m.one(m.render_chart(), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert not m.by_kind(m.render_chart(VALUE_SETS["single-replica-no-election"]), "PodDisruptionBudget")


def test_single_replica_without_leader_election():
    objs = m.render_chart(VALUE_SETS["single-replica-no-election"])
    c = _container(objs)
    assert "--leader-election=false" in c["args"]
    assert not [a for a in c["args"] if a.startswith("--lease-name")]
    assert not [r for r in m.by_kind(objs, "Role") if r["metadata"]["name"].endswith("-leader-election")]


@pytest.mark.parametrize("values, message", [
    ({"replicaCount": 2, "leaderElection.enabled": False}, "needs leaderElection.enabled=true"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
    ({"replicaCnt": 3}, "replicaCnt"),
    ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
    ({"serviceAccount.create": False}, "serviceAccount.name is required"),
])
def test_wrong_values_are_refused(values, message):
    proc = m.helm_template(values, check=False)
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
