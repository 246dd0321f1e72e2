"""strata-mirror between secured clusters, with Kafka's client properties for each side: a Strata
source serving SASL_SSL (SCRAM-SHA-512 user made with ``kafka-configs``, the CA's PEM trust store,
the broker's host name verified) and the reference Apache Kafka broker as target on
SASL_PLAINTEXT with PLAIN, in both configuration forms the mirror reads (MirrorMaker 2
properties ``<alias>.security.protocol`` / ``.ssl.*`` / ``.sasl.*`` and the flow YAML's
``mirror.sourceSecurity`` / ``targetSecurity``). Every record arrives; a wrong password is
reported as an authentication failure (the mirror exits at start with it), never with the
password, and nothing is mirrored. One broker of each kind serves the module (harness/sasl.py's listeners).

A third broker (Strata, harness/tls.py's listeners) requires client certificates on its MTLS
listener: the mirror reads from it with a client certificate of the CA as its key store
(``ssl.keystore.location``, key and certificate in one PEM file, as Kafka's clients take it),
and without one it is refused at the handshake and mirrors nothing.
"""
import pytest

from harness.data import create_topic, produce, record_counts, wait_mirrored
from harness.mirror import MirrorProcess, MirrorStartError, flow_config
from harness.pytest_plugin import COMMON_PROPS
from harness.sasl import add_scram, start_sasl_broker, wait_authenticates, client_conf
from harness.tls import Certs, start_tls_broker
from harness.util import unique_topic, wait_until

pytestmark = pytest.mark.timeout(240)

RECORDS = 2000
MIRROR_PASSWORD = "mirror-secret"
JAAS_SCRAM = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="{u}" password="{p}";'
JAAS_PLAIN = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="{u}" password="{p}";'


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    """(Strata source, Kafka target), each with SASL listeners; the source has the SCRAM user
    ``mirror``."""
    certs = Certs(tmp_path_factory.mktemp("mirror-sasl") / "ca")
    started = []
    try:
        source = start_sasl_broker("strata", tmp_path_factory.mktemp("src"), certs, COMMON_PROPS)
        started.append(source)
        target = start_sasl_broker("kafka", tmp_path_factory.mktemp("dst"), certs, COMMON_PROPS)
        started.append(target)
        add_scram(source.plaintext, "mirror", "SCRAM-SHA-512", MIRROR_PASSWORD, iterations=8192)
        wait_authenticates(client_conf(source.sasl_plaintext, "SCRAM-SHA-512", "mirror", MIRROR_PASSWORD))
        yield source, target, certs
    finally:
        for b in started:
            b.broker.stop()


def security(source, target, certs, password=MIRROR_PASSWORD):
    """(source properties, target properties) of the mirror's clients."""
    src = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
           "sasl.jaas.config": JAAS_SCRAM.format(u="mirror", p=password),
           "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca)}
    dst = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
           "sasl.jaas.config": JAAS_PLAIN.format(u="admin", p="admin-secret")}
    return src, dst


def mm2_text(source, target, src, dst, topic):
    lines = ["clusters = src, dst", f"src.bootstrap.servers = {source.sasl_ssl}",
             f"dst.bootstrap.servers = {target.sasl_plaintext}", "src->dst.enabled = true",
             f"src->dst.topics = {topic}", "refresh.topics.interval.seconds = 1",
             "emit.checkpoints.interval.seconds = 1", "emit.heartbeats.interval.seconds = 1"]
    lines += [f"src.{k} = {v}" for k, v in src.items()]
    lines += [f"dst.{k} = {v}" for k, v in dst.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("form", ["mm2-properties", "flow-yaml"])
def test_mirror_between_sasl_ssl_scram_and_sasl_plain(clusters, tmp_path, form):
    source, target, certs = clusters
    topic = unique_topic(f"secured-{form}")
    create_topic(source.plaintext, topic, 2)
    produce(source.plaintext, topic, RECORDS, 2)
    src, dst = security(source, target, certs)
    if form == "mm2-properties":
        mirror = MirrorProcess(tmp_path / "mirror", mm2_properties=mm2_text(source, target, src, dst, topic),
                               source="src", target="dst")
    else:
        mirror = MirrorProcess(tmp_path / "mirror", flow_config(
            "src", source.sasl_ssl, "dst", target.sasl_plaintext, topics={"include": [topic]},
            mirror={"sourceSecurity": src, "targetSecurity": dst}))
    mirror.start()
    try:
        # Counted through the brokers' PLAINTEXT listeners (the harness's readers).
        wait_mirrored(source.plaintext, target.plaintext, topic, f"src.{topic}", timeout=120)
        assert sum(record_counts(target.plaintext, f"src.{topic}").values()) == RECORDS
        log = mirror.log_path.read_text()
        assert MIRROR_PASSWORD not in log and "admin-secret" not in log
    finally:
        mirror.stop()


def test_wrong_password_is_an_authentication_failure_in_the_log(clusters, tmp_path):
    source, target, certs = clusters
    topic = unique_topic("secured-wrong")
    create_topic(source.plaintext, topic, 1)
    produce(source.plaintext, topic, 10, 1)
    src, dst = security(source, target, certs, password="not-the-password")
    mirror = MirrorProcess(tmp_path / "mirror", flow_config(
        "src", source.sasl_ssl, "dst", target.sasl_plaintext, topics={"include": [topic]},
        mirror={"sourceSecurity": src, "targetSecurity": dst}))
    # The refusal is not retried: the mirror either exits at start with it (a pod crash-loops
    # with the reason in its log) or logs it from a running task.
    try:
        mirror.start()
    except MirrorStartError:
        pass
    try:
        wait_until(lambda: "authentication failed" in mirror.log_path.read_text(), 60,
                   "the mirror to log the refused authentication", interval=0.5)
        log = mirror.log_path.read_text()
        assert "not-the-password" not in log and "admin-secret" not in log
        # (reading the counts may auto-create the empty topic on the Kafka target)
        assert sum(record_counts(target.plaintext, f"src.{topic}").values()) == 0
    finally:
        mirror.stop()


@pytest.fixture(scope="module")
def mtls_source(clusters, tmp_path_factory):
    """A Strata broker whose MTLS listener requires client certificates of ``certs``' CA."""
    certs = clusters[2]
    source = start_tls_broker("strata", tmp_path_factory.mktemp("mtls-src"), certs, certs.server_inline(),
                              COMMON_PROPS)
    try:
        yield source
    finally:
        source.broker.stop()


def test_mirror_with_a_client_certificate(clusters, mtls_source, tmp_path):
    _, target, certs = clusters
    plaintext = mtls_source.broker.bootstrap
    topic = unique_topic("secured-mtls")
    create_topic(plaintext, topic, 2)
    produce(plaintext, topic, RECORDS, 2)
    _, dst = security(None, target, certs)
    src = {"security.protocol": "SSL", "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca)}
    def mirror_from_mtls(name, src):
        return MirrorProcess(tmp_path / name, flow_config(
            "src", mtls_source.mtls, "dst", target.sasl_plaintext, topics={"include": [topic]},
            mirror={"sourceSecurity": src, "targetSecurity": dst}))

    refused = mirror_from_mtls("refused", src)
    try:
        refused.start()
    except MirrorStartError:
        pass
    try:
        # (TLS 1.3: the broker's alert arrives at the client's first read)
        wait_until(lambda: "CertificateRequired" in refused.log_path.read_text(), 60,
                   "the mirror to log the broker's certificate_required alert", interval=0.5)
    finally:
        refused.stop()
    assert sum(record_counts(target.plaintext, f"src.{topic}").values()) == 0

    src |= {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.client("mirror")[2])}
    mirror = mirror_from_mtls("mirror", src)
    mirror.start()
    try:
        wait_mirrored(plaintext, target.plaintext, topic, f"src.{topic}", timeout=120)
        assert sum(record_counts(target.plaintext, f"src.{topic}").values()) == RECORDS
    finally:
        mirror.stop()
