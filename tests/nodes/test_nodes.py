"""Real nodes, as a user of the cluster sees them: one kubelet node per zone, cluster DNS, Services.

1. Three nodes are Ready, one per zone, labelled like cloud nodes, running containerd.
2. A StatefulSet of network probes spreads one pod per zone behind a headless Service; in each
   pod, a neighbour's name resolves through CoreDNS (search domains of the pod's resolv.conf) to
   that pod's IP, and an HTTP request reaches the pod in the other zone.
3. A ClusterIP Service answers from the host (through kube-proxy) and spreads requests over the
   pods of all three zones; by name too, through the cluster DNS.
4. `cluster.sh zone-down zone-b`: the zone's node turns NotReady, its pod leaves the Service,
   which keeps answering from the two other zones; `zone-up`: the node is Ready again and its pod
   runs and answers again.
"""
from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from controlplane import versions
from harness.util import wait_until

pytestmark = pytest.mark.timeout(300)

ZONES = ["zone-a", "zone-b", "zone-c"]
NS = "nodes-net"


def probe_manifest(image: str) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: probe}}
spec:
  clusterIP: None
  selector: {{app: probe}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: probe-web}}
spec:
  selector: {{app: probe}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: probe}}
spec:
  serviceName: probe
  replicas: 3
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: probe}}}}
  template:
    metadata: {{labels: {{app: probe}}}}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {{matchLabels: {{app: probe}}}}
      securityContext: {{runAsNonRoot: true, runAsUser: 65532}}
      containers:
      - name: probe
        image: {image}
        imagePullPolicy: Never
        args: [serve, ":8080"]
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 2
        securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}}
"""


@pytest.fixture(scope="module")
def probes(nodes, namespaces):
    """The probe pods, Ready: {pod name: (zone, pod IP)}."""
    namespaces.make(NS)
    nodes.apply(probe_manifest(versions()["NETPROBE_IMAGE"]), "-n", NS)
    nodes.kubectl("rollout", "status", "statefulset/probe", "-n", NS, "--timeout=120s", timeout=150)
    zones = nodes.node_zones()
    pods = {}
    for p in nodes.items("pods", namespace=NS, selector="app=probe"):
        pods[p["metadata"]["name"]] = (zones[p["spec"]["nodeName"]], p["status"]["podIP"])
    return pods


def test_nodes_ready_one_per_zone(nodes):
    # 1. kubectl get nodes -L topology.kubernetes.io/zone
    listed = {n["metadata"]["name"]: n for n in nodes.items("nodes")}
    assert sorted(listed) == [f"real-{z}" for z in ZONES], sorted(listed)
    for name, node in listed.items():
        labels = node["metadata"]["labels"]
        zone = name.removeprefix("real-")
        assert labels["topology.kubernetes.io/zone"] == zone, labels
        assert labels["topology.kubernetes.io/region"] == "strata-test", labels
        assert labels["kubernetes.io/hostname"] == name, labels
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        info = node["status"]["nodeInfo"]
        assert info["containerRuntimeVersion"].startswith("containerd://"), info
        assert info["kubeletVersion"] == versions()["K8S_VERSION"], info
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"].startswith("10.201.0."), addresses
    # CoreDNS runs as pods on the nodes, behind the kube-dns Service
    dns = nodes.get_json("service", "kube-dns", namespace="kube-system")
    assert dns["spec"]["clusterIP"] == "10.96.0.10"
    assert nodes.ready_pods("kube-system", "k8s-app=kube-dns")


def test_pods_resolve_each_other_through_coredns_and_talk_across_zones(nodes, probes):
    # 2. one probe pod per zone
    assert sorted(zone for zone, _ in probes.values()) == ZONES, probes
    names = sorted(probes)
    for i, pod in enumerate(names):
        other = names[(i + 1) % len(names)]
        other_zone, other_ip = probes[other]
        # a short name, completed by the search domains the kubelet wrote into the pod; CoreDNS
        # learns a new pod's record from the EndpointSlice a moment after the pod is Ready
        def lookup():
            return nodes.kubectl("exec", "-n", NS, pod, "--", "/netprobe", "lookup", f"{other}.probe").split()
        resolved = nodes.wait_until(lambda: lookup() == [other_ip] and [other_ip], timeout=60,
                                    what=f"{pod} resolving {other}.probe to {other_ip}",
                                    describe=lambda: f"resolved to {lookup()}")
        assert resolved == [other_ip]
        fqdn = f"{other}.probe.{NS}.svc.cluster.local"
        body = nodes.kubectl("exec", "-n", NS, pod, "--", "/netprobe", "get", f"http://{fqdn}:8080/")
        assert body.strip() == f"pod={other} node=real-{other_zone}", body
        assert probes[pod][0] != other_zone
    # the headless Service lists every pod
    expected = sorted(ip for _, ip in probes.values())

    def all_ips():
        return sorted(nodes.kubectl("exec", "-n", NS, names[0], "--", "/netprobe", "lookup", "probe").split())
    nodes.wait_until(lambda: all_ips() == expected, timeout=60, what=f"probe resolving to {expected}",
                     describe=lambda: f"resolved to {all_ips()}")


def test_cluster_ip_service_answers_from_the_host(nodes, probes):
    # 3. the host reaches a ClusterIP through kube-proxy, spread over the three zones
    svc = nodes.get_json("service", "probe-web", namespace=NS)
    ip = svc["spec"]["clusterIP"]
    seen = set()

    def every_pod_answered():
        with urllib.request.urlopen(f"http://{ip}/", timeout=5) as r:
            seen.add(r.read().decode().split()[0])
        return len(seen) == 3
    wait_until(every_pod_answered, 60, f"answers of all probe pods via {ip}", interval=0.05)
    assert seen == {f"pod={p}" for p in probes}
    # by name, through the cluster DNS
    script = ("import json, socket, urllib.request; "
              f"r = urllib.request.urlopen('http://probe-web.{NS}.svc.cluster.local/', timeout=5); "
              f"print(json.dumps([socket.gethostbyname('probe-web.{NS}.svc.cluster.local'), r.read().decode()]))")
    out = subprocess.run(nodes.cluster_dns_command(["python3", "-c", script]), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    resolved, body = json.loads(out.stdout)
    assert resolved == ip
    assert body.startswith("pod=probe-"), body


def test_zone_down_and_up(nodes, probes):
    # 4. zone-b goes away
    (down_pod,) = [p for p, (zone, _) in probes.items() if zone == "zone-b"]
    ip = nodes.get_json("service", "probe-web", namespace=NS)["spec"]["clusterIP"]

    def endpoints():
        slices = nodes.items("endpointslices", namespace=NS, selector="kubernetes.io/service-name=probe-web")
        return {e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready")}

    def pods_and_endpoints():
        ready = {p["metadata"]["name"]: [(c["type"], c["status"]) for c in p["status"].get("conditions") or []
                                         if c["type"] in ("Ready", "DisruptionTarget")]
                 for p in nodes.items("pods", namespace=NS, selector="app=probe")}
        return f"ready endpoints {sorted(endpoints())}, pod conditions {ready}"

    def node_ready(name):
        node = nodes.get_json("node", name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    nodes.zone_down("zone-b")
    try:
        nodes.wait_until(lambda: not node_ready("real-zone-b"), timeout=90, what="real-zone-b NotReady")
        nodes.wait_until(lambda: endpoints() == set(probes) - {down_pod}, timeout=60,
                         what=f"{down_pod} out of the Service's endpoints", describe=pods_and_endpoints)

        def answered_by_others():
            """20 requests in a row answered, none by the pod of zone-b (kube-proxy follows the
            endpoints within a moment)."""
            answers = set()
            for _ in range(20):
                with urllib.request.urlopen(f"http://{ip}/", timeout=5) as r:
                    answers.add(r.read().decode().split()[0])
            return answers if f"pod={down_pod}" not in answers else None
        answers = wait_until(answered_by_others, 60, "the Service answering from zone-a and zone-c")
        assert answers <= {f"pod={p}" for p in probes if p != down_pod}, answers
    finally:
        nodes.zone_up("zone-b")
    # back: the kubelet restarts the pod's sandbox and container on the node
    assert node_ready("real-zone-b")
    nodes.wait_until(lambda: endpoints() == set(probes), timeout=120, what=f"{down_pod} back in the Service",
                     describe=pods_and_endpoints)
    pod = nodes.get_json("pod", down_pod, namespace=NS)
    assert pod["spec"]["nodeName"] == "real-zone-b"
    body = nodes.kubectl("exec", "-n", NS, sorted(probes)[0], "--", "/netprobe", "get",
                         f"http://{down_pod}.probe:8080/")
    assert body.strip() == f"pod={down_pod} node=real-zone-b", body
    nodes.wait_until(lambda: len(nodes.ready_pods("kube-system", "k8s-app=kube-dns")) == 2, timeout=120,
                     what="CoreDNS back to two ready replicas")
