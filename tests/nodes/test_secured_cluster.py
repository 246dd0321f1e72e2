"""A secured KafkaCluster on real nodes: TLS listeners, SCRAM, ACLs, and certificates the
operator issues from its cluster CA, driven as a user would (kubectl, Kafka's own tools and
librdkafka from the host).

The cluster `secure` has 3 racks x 1 broker, a SASL_SSL listener with SCRAM-SHA-512 on 9092,
a mutual-TLS listener on 9094 and Kafka's StandardAuthorizer with
`allow.everyone.if.no.acl.found=false`; the operator adds the internal mutual-TLS listener
(9091) its brokers replicate and elect over and its own admin calls use.

1. The operator issues the cluster CA and every certificate into Secrets (the brokers' internal
   one, one per TLS listener, its own client certificate and the administrators'; the internal
   one's fingerprint is in the pod template, so a new one restarts the brokers); the brokers
   form one cluster over mutual TLS, and a KafkaTopic is created by the operator's admin calls,
   which the authorizer lets through only for its certificate (a super user).
2. With the administrators' certificate, Kafka's `kafka-configs` creates a SCRAM user and
   `kafka-acls` grants it the topic; confluent-kafka then produces and consumes as that user
   over SASL_SSL, verifying the brokers' names against the CA; a wrong password is refused;
   the mutual-TLS listener serves a client with a certificate of the CA.
3. Rotation: the SCRAM listener's certificate Secret is deleted; the operator issues a new one
   and the brokers serve it to new connections without a restart (same pods, no restarts).
4. Active-standby between secured clusters: a second secured cluster `standby` (one broker, a
   TLS listener, a CA of its own) and a MirrorFlow `secure` -> `standby` (Preserve). The mirror
   pod mounts each cluster's `<cluster>-mirror-client` certificate and reaches both on their
   internal mutual-TLS listeners (a super user under `secure`'s authorizer); the records
   arrive at the same offsets; a planned flip (`kubectl patch`) runs the operator's fence,
   drain and promotion over mutual TLS with its own certificates, and the mirror then copies
   from `standby` back into `secure`. The listener certificates of both name the flow's
   discovery Service, so TLS clients bootstrapping through it verify the host name.
"""
from __future__ import annotations

import base64
import subprocess

import pytest

from harness.brokers import kafka_tool
from harness.kube import has_condition

pytestmark = pytest.mark.timeout(600)

NS = "kafka-secure"
CLUSTER = "secure"
TOPIC = "orders"
RECORDS = 500
USER, PASSWORD = "alice", "alice-secret-1"
CLUSTER_YAML = f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: {CLUSTER}}}
spec:
  racks:
  - {{name: zone-a, zone: zone-a, brokers: 1}}
  - {{name: zone-b, zone: zone-b, brokers: 1}}
  - {{name: zone-c, zone: zone-c, brokers: 1}}
  listeners:
  - {{name: scram, port: 9092, tls: true, authentication: scram-sha-512}}
  - {{name: mtls, port: 9094, tls: true, authentication: mtls}}
  storage: {{size: 1Gi}}
  config:
    authorizer.class.name: org.apache.kafka.metadata.authorizer.StandardAuthorizer
    allow.everyone.if.no.acl.found: "false"
---
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaTopic
metadata: {{name: {TOPIC}}}
spec:
  clusterRef: {{name: {CLUSTER}}}
  partitions: 3
  replicationFactor: 3
"""
BOOTSTRAP = f"{CLUSTER}-bootstrap.{NS}.svc"
SECRETS = {f"{CLUSTER}-{s}" for s in ("replication-tls", "scram-tls", "mtls-tls", "operator-client", "admin-client",
                                      "mirror-client")}
STANDBY = "standby"
FLOW = "secure-dr"
FLOW_YAML = f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: {STANDBY}}}
spec:
  racks:
  - {{name: zone-b, zone: zone-b, brokers: 1}}
  listeners:
  - {{name: tls, port: 9092, tls: true}}
  storage: {{size: 1Gi}}
  config:
    offsets.topic.replication.factor: "1"
---
apiVersion: kafka.strata.dev/v1alpha1
kind: MirrorFlow
metadata: {{name: {FLOW}}}
spec:
  source: {{alias: {CLUSTER}, clusterRef: {{name: {CLUSTER}}}}}
  target: {{alias: {STANDBY}, clusterRef: {{name: {STANDBY}}}}}
  topics: {{include: ["{TOPIC}"]}}
  naming: Identity
  offsets: Preserve
  sync: {{checkpointIntervalSeconds: 5}}
  failover:
    active: source
    discoveryService: {CLUSTER}-active
"""


def secret_data(nodes, name: str) -> dict[str, str]:
    data = nodes.get_json("secret", name, namespace=NS)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def served_certificate(nodes, host: str, port: int) -> str:
    """The PEM certificate a broker's listener presents (openssl on the host, through the
    cluster DNS)."""
    proc = subprocess.run(nodes.cluster_dns_command(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-servername", host]),
        input="", capture_output=True, text=True, timeout=30)
    out = proc.stdout
    start, end = out.find("-----BEGIN CERTIFICATE-----"), out.find("-----END CERTIFICATE-----")
    assert start >= 0, out[-2000:] + proc.stderr[-2000:]
    return out[start:end + len("-----END CERTIFICATE-----")] + "\n"


@pytest.fixture(scope="module")
def secure(nodes, operator_release, namespaces):
    namespaces.make(NS)
    nodes.apply(CLUSTER_YAML, "-n", NS)

    def ready():
        o = nodes.get_json("kafkacluster", CLUSTER, namespace=NS)
        st = o.get("status") or {}
        return o if st.get("observedGeneration") == o["metadata"]["generation"] \
            and has_condition(o, "Ready", "True") and st.get("readyBrokers") == 3 else None
    return nodes.wait_until(ready, timeout=300, what=f"KafkaCluster {CLUSTER} Ready with 3 brokers")


@pytest.fixture(scope="module")
def files(secure, nodes, tmp_path_factory):
    """The CA and the administrators' certificate as files, and the admin tools' properties."""
    d = tmp_path_factory.mktemp("secure")
    admin = secret_data(nodes, f"{CLUSTER}-admin-client")
    (d / "ca.crt").write_text(admin["ca.crt"])
    (d / "admin.pem").write_text(admin["tls.key"] + admin["tls.crt"])
    (d / "admin.key").write_text(admin["tls.key"])
    (d / "admin.crt").write_text(admin["tls.crt"])
    (d / "admin.properties").write_text(
        "security.protocol=SSL\nssl.truststore.type=PEM\n"
        f"ssl.truststore.location={d / 'ca.crt'}\nssl.keystore.type=PEM\n"
        f"ssl.keystore.location={d / 'admin.pem'}\n")
    return d


def user_conf(files, password: str = PASSWORD) -> dict:
    return {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": USER, "sasl.password": password, "ssl.ca.location": str(files / "ca.crt")}


def test_1_the_operator_issues_certificates_and_reaches_the_cluster_with_its_own(nodes, secure):
    ca = secret_data(nodes, f"{CLUSTER}-ca")
    assert "BEGIN CERTIFICATE" in ca["ca.crt"] and "PRIVATE KEY" in ca["ca.key"]
    for name in SECRETS:
        obj = nodes.get_json("secret", name, namespace=NS)
        assert obj["type"] == "kubernetes.io/tls", (name, obj["type"])
        assert obj["metadata"]["ownerReferences"][0]["name"] == CLUSTER
        assert secret_data(nodes, name)["ca.crt"] == ca["ca.crt"], name
    # A new internal certificate restarts the brokers (their own connections read it at start):
    # its fingerprint is part of the pod template.
    sts = nodes.get_json("statefulset", f"{CLUSTER}-zone-a", namespace=NS)
    assert sts["spec"]["template"]["metadata"]["annotations"].get("kafka.strata.dev/internal-certificate")
    # The brokers elect and replicate over the internal listener: one cluster of three.
    config = nodes.get_json("configmap", f"{CLUSTER}-config", namespace=NS)["data"]
    props = config[f"{CLUSTER}-zone-a-0.properties"]
    assert "inter.broker.listener.name=REPLICATION" in props
    assert "listener.security.protocol.map=REPLICATION:SSL,SCRAM:SASL_SSL,MTLS:SSL,CONTROLLER:SSL" in props

    # The KafkaTopic exists only if the operator's admin calls authenticated as a super user.
    def topic_ready():
        o = nodes.get_json("kafkatopic", TOPIC, namespace=NS)
        return o if has_condition(o, "Ready", "True") else None
    nodes.wait_until(topic_ready, timeout=120, what=f"KafkaTopic {TOPIC} Ready")


def test_2_a_scram_user_produces_and_consumes_with_acls(nodes, kafka, secure, files):
    dns = nodes.cluster_dns_command
    admin = ["--bootstrap-server", f"{BOOTSTRAP}:9091", "--command-config", files / "admin.properties"]
    kafka_tool("configs", *admin, "--alter", "--add-config", f"SCRAM-SHA-512=[password={PASSWORD}]",
               "--entity-type", "users", "--entity-name", USER, wrap=dns)
    kafka_tool("acls", *admin, "--add", "--allow-principal", f"User:{USER}", "--operation", "All",
               "--topic", TOPIC, wrap=dns)
    kafka_tool("acls", *admin, "--add", "--allow-principal", f"User:{USER}", "--operation", "All",
               "--group", "*", wrap=dns)
    described = kafka_tool("topics", *admin, "--describe", "--topic", TOPIC, wrap=dns).stdout
    assert described.count("Isr: ") == 3 and all(
        len(line.split("Isr: ")[1].split()[0].split(",")) == 3
        for line in described.splitlines() if "Isr: " in line), described

    conf = user_conf(files)
    # SCRAM credentials reach every broker through the metadata log: wait for the first login.
    nodes.wait_until(lambda: kafka.metadata(f"{BOOTSTRAP}:9092", timeout=10, conf=conf),
                     timeout=60, what=f"{USER} authenticated over SASL_SSL")
    acked = kafka.produce(f"{BOOTSTRAP}:9092", TOPIC, RECORDS, conf=conf)
    assert len(acked) == RECORDS
    read = kafka.consume(f"{BOOTSTRAP}:9092", TOPIC, RECORDS, conf=conf)
    assert sorted(read) == sorted(acked)
    with pytest.raises(AssertionError) as refused:
        kafka.metadata(f"{BOOTSTRAP}:9092", timeout=10, conf=user_conf(files, "not-the-password"))
    assert "uthentication" in str(refused.value), str(refused.value)[-1500:]
    # The mutual-TLS listener takes a certificate of the cluster CA (the administrators' here).
    mtls = {"security.protocol": "SSL", "ssl.ca.location": str(files / "ca.crt"),
            "ssl.certificate.location": str(files / "admin.crt"), "ssl.key.location": str(files / "admin.key")}
    assert len(kafka.metadata(f"{BOOTSTRAP}:9094", conf=mtls)["brokers"]) == 3


def test_3_a_new_certificate_is_served_without_a_restart(nodes, secure, files):
    name = f"{CLUSTER}-scram-tls"
    host = f"{CLUSTER}-zone-a-0.{CLUSTER}-brokers.{NS}.svc.cluster.local"
    before = secret_data(nodes, name)["tls.crt"]
    assert served_certificate(nodes, host, 9092) == before
    pods = {p["metadata"]["name"]: p for p in nodes.items("pods", namespace=NS,
                                                          selector=f"kafka.strata.dev/cluster={CLUSTER}")}
    nodes.kubectl("delete", "secret", name, "-n", NS)

    def reissued():
        try:
            cert = secret_data(nodes, name)["tls.crt"]
        except Exception:  # noqa: BLE001 - not there yet
            return None
        return cert if cert != before else None
    after = nodes.wait_until(reissued, timeout=60, what=f"Secret {name} issued again")
    # The kubelet updates the mounted files; the broker reloads them for new connections.
    nodes.wait_until(lambda: served_certificate(nodes, host, 9092) == after, timeout=240,
                     what="the new certificate served on the SCRAM listener")
    (files / "served.crt").write_text(after)
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(files / "ca.crt"), str(files / "served.crt")],
                              capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    now = {p["metadata"]["name"]: p for p in nodes.items("pods", namespace=NS,
                                                         selector=f"kafka.strata.dev/cluster={CLUSTER}")}
    assert sorted(now) == sorted(pods)
    for pod, p in now.items():
        assert p["metadata"]["uid"] == pods[pod]["metadata"]["uid"], pod
        (status,) = p["status"]["containerStatuses"]
        assert status["restartCount"] == 0, (pod, status)


def admin_files(nodes, cluster: str, d) -> dict:
    """librdkafka settings for mutual TLS with `cluster`'s administrators' certificate."""
    admin = secret_data(nodes, f"{cluster}-admin-client")
    for key, name in (("ca.crt", "ca.crt"), ("tls.crt", "admin.crt"), ("tls.key", "admin.key")):
        (d / f"{cluster}-{name}").write_text(admin[key])
    return {"security.protocol": "SSL", "ssl.ca.location": str(d / f"{cluster}-ca.crt"),
            "ssl.certificate.location": str(d / f"{cluster}-admin.crt"),
            "ssl.key.location": str(d / f"{cluster}-admin.key")}


def test_4_active_standby_between_secured_clusters(nodes, kafka, secure, files):
    nodes.apply(FLOW_YAML, "-n", NS)

    def standby_ready():
        o = nodes.get_json("kafkacluster", STANDBY, namespace=NS)
        return o if has_condition(o, "Ready", "True") and (o.get("status") or {}).get("readyBrokers") == 1 else None
    nodes.wait_until(standby_ready, timeout=300, what=f"KafkaCluster {STANDBY} Ready")

    def flow():
        return nodes.get_json("mirrorflow", FLOW, namespace=NS)

    def settled(active: str, what: str):
        def done():
            mf = flow()
            st = mf.get("status") or {}
            fo = st.get("failover") or {}
            return mf if (st.get("activeCluster") == active and not fo.get("operation")
                          and not fo.get("rejoin") and fo.get("mirrorFrom") == active
                          and has_condition(mf, "Ready", "True")) else None
        return nodes.wait_until(done, timeout=240, interval=1, what=what,
                                describe=lambda: (flow().get("status") or {}).get("conditions"))
    settled("source", f"MirrorFlow {FLOW} mirroring from {CLUSTER}")
    sts = nodes.get_json("statefulset", f"{FLOW}-mirror", namespace=NS)
    template = sts["spec"]["template"]
    mounted = {v["secret"]["secretName"] for v in template["spec"]["volumes"] if "secret" in v}
    assert mounted == {f"{CLUSTER}-mirror-client", f"{STANDBY}-mirror-client"}, mounted
    assert template["metadata"]["annotations"].get("kafka.strata.dev/credentials")

    d = files
    on = {CLUSTER: admin_files(nodes, CLUSTER, d), STANDBY: admin_files(nodes, STANDBY, d)}
    address = {CLUSTER: f"{BOOTSTRAP}:9091", STANDBY: f"{STANDBY}-bootstrap.{NS}.svc:9091"}

    def read(cluster: str):
        # (a client id the write fence lets read a fenced cluster)
        got = kafka.consume(address[cluster], TOPIC, timeout=60, conf=on[cluster],
                            client_id="strata-failover-check")
        return sorted((p, o, v) for p, o, v in got)

    def equal():
        a, b = read(CLUSTER), read(STANDBY)
        return a if a and a == b else None
    # The records of test 2 (and these) arrive on the standby at the same offsets.
    acked = kafka.produce(address[CLUSTER], TOPIC, 200, prefix="before-flip", conf=on[CLUSTER])
    assert len(acked) == 200
    copied = nodes.wait_until(equal, timeout=180, interval=2, what=f"{STANDBY} equal to {CLUSTER} per offset")
    assert len(copied) >= 200

    # A planned flip: fence, drain and promotion run as the operator's certificate on both.
    nodes.kubectl("patch", "mirrorflow", FLOW, "-n", NS, "--type", "merge",
                  "-p", '{"spec":{"failover":{"active":"target"}}}')
    settled("target", f"MirrorFlow {FLOW} failed over to {STANDBY} and mirroring back")
    after = kafka.produce(address[STANDBY], TOPIC, 100, prefix="after-flip", conf=on[STANDBY])
    assert len(after) == 100
    back = nodes.wait_until(equal, timeout=180, interval=2, what=f"{CLUSTER} equal to {STANDBY} per offset")
    assert len(back) == len(copied) + 100

    # Clients bootstrap through the discovery Service, which leads to the standby's TLS listener
    # now: its certificate names that Service (librdkafka verifies the host name). `secure`'s
    # listener certificate was issued again when the flow appeared and names it too (the
    # brokers reload a new certificate in place, as step 3 shows).
    discovery = f"{CLUSTER}-active.{NS}.svc"
    tls_conf = {"security.protocol": "SSL", "ssl.ca.location": str(d / f"{STANDBY}-ca.crt")}
    nodes.wait_until(lambda: len(kafka.metadata(f"{discovery}:9092", timeout=10, conf=tls_conf)["brokers"]) == 1,
                     timeout=120, what="a TLS client through the discovery Service, host name verified")
    (d / "issued-scram.crt").write_text(secret_data(nodes, f"{CLUSTER}-scram-tls")["tls.crt"])
    names = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(d / "issued-scram.crt")],
                           capture_output=True, text=True, timeout=30).stdout
    assert f"DNS:{discovery}" in names.replace(",", "\n").split(), names
