"""SSL listeners: Kafka clients over TLS, with and without client certificates.

Each broker gets a PLAINTEXT listener (the harness's readiness check), an SSL listener and an
MTLS listener (protocol SSL, ``listener.name.mtls.ssl.client.auth=required``), with PEM key and
trust stores made here by ``openssl`` (a test CA; server certificates name 127.0.0.1 and
localhost; the key store inline as Kafka takes it, see harness/tls.py). Against both targets:

1. confluent-kafka (librdkafka) produces and consumes in a group over SSL, verifying the broker's
   certificate and host name; Metadata over SSL names the brokers' SSL endpoints.
2. Kafka's console producer and consumer (the Java client) over SSL with a PEM trust store.
3. Mutual TLS: a client with a certificate of the test CA is served; one without a certificate
   and one with a certificate of another CA are refused.
4. Plaintext sent to an SSL port, and a TLS client that does not trust the broker, get the
   connection closed; the listener keeps serving.
5. Key and trust stores from a directory laid out as the kubelet mounts a ``kubernetes.io/tls``
   Secret (``tls.crt``, ``tls.key``, ``ca.crt`` behind a ``..data`` link), through Kafka's
   DirectoryConfigProvider (``${dir:<dir>:tls.crt}``), as the operator renders a TLS listener;
   on Strata the Secret is then rotated (the ``..data`` link swapped) and new connections get
   the new certificate without a restart.

Strata only (extensions and start-up checks; Kafka changes stores through AlterConfigs):
5. A key store file with an encrypted PKCS#8 key (PBES2) and ``ssl.key.password``; a rotated
   key and certificate (the file replaced in place, as Kubernetes updates a mounted Secret; an
   unencrypted key, as a TLS Secret holds it) is used for new connections without a restart.
6. A listener that cannot work is refused at start with a message naming the property: SASL,
   no key store, a JKS key store, a key store password, a wrong key password, client auth
   without a trust store, a missing file, an unknown protocol.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from harness import data, kafka_tool, unique_topic, wait_until
from harness.brokers import make_broker
from harness.pytest_plugin import COMMON_PROPS
from harness.tls import KEY_PASSWORD, Certs, TlsBroker, free_ports, start_tls_broker, tls_props

pytestmark = pytest.mark.timeout(300)

RECORDS = 1000


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("tls") / "ca")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("tls-other") / "ca", name="other")


@pytest.fixture(scope="module")
def tls_broker(target_kind, certs, tmp_path_factory):
    b = start_tls_broker(target_kind, tmp_path_factory.mktemp(f"{target_kind}-tls"), certs,
                         certs.server_inline(), COMMON_PROPS)
    try:
        yield b
    finally:
        b.broker.stop()


def ssl_conf(bootstrap: str, ca: Path, cert: tuple[Path, Path, Path] | None = None) -> dict:
    conf = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": str(ca),
            "ssl.endpoint.identification.algorithm": "https", "socket.timeout.ms": 10000}
    if cert is not None:
        conf["ssl.certificate.location"] = str(cert[0])
        conf["ssl.key.location"] = str(cert[1])
    return conf


def metadata(conf: dict, timeout: float = 10):
    return AdminClient(conf).list_topics(timeout=timeout)


def refused(conf: dict, timeout: float = 30) -> bool:
    """True when a client with ``conf`` reports a connection error (a failed handshake, an alert
    of the broker) and then gets no Metadata; False when no error comes within ``timeout``."""
    errors = []
    client = Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        client.poll(0.1)
    if not errors:
        return False
    try:
        client.list_topics(timeout=2)
    except KafkaException:
        return True
    return False


def produce_and_consume(conf: dict, topic: str, n: int = RECORDS) -> list[bytes]:
    return data.produce_and_consume(conf, topic, n, "tls")


def test_librdkafka_produce_and_consume_over_ssl(tls_broker, certs):
    conf = ssl_conf(tls_broker.ssl, certs.ca)
    md = metadata(conf)
    # the brokers named over SSL are the SSL endpoints (the listener the request came in on)
    assert {f"{b.host}:{b.port}" for b in md.brokers.values()} == {tls_broker.ssl}, md.brokers
    topic = unique_topic("tls")
    values = produce_and_consume(conf, topic)
    assert values == [f"tls-{i}".encode() for i in range(RECORDS)]


def test_java_console_tools_over_ssl(tls_broker, certs, tmp_path):
    client = tmp_path / "client.properties"
    client.write_text(f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={certs.ca}\n")
    topic = unique_topic("tls-java")
    lines = [f"java-{i}" for i in range(50)]
    kafka_tool("console-producer", "--bootstrap-server", tls_broker.ssl, "--topic", topic,
               "--producer.config", str(client), input="\n".join(lines) + "\n")
    out = kafka_tool("console-consumer", "--bootstrap-server", tls_broker.ssl, "--topic", topic,
                     "--from-beginning", "--max-messages", str(len(lines)), "--timeout-ms", "60000",
                     "--consumer.config", str(client)).stdout
    assert out.split() == lines


def test_mutual_tls(tls_broker, certs, other_ca):
    trusted = certs.client("app")
    conf = ssl_conf(tls_broker.mtls, certs.ca, trusted)
    topic = unique_topic("mtls")
    assert produce_and_consume(conf, topic, 100) == [f"tls-{i}".encode() for i in range(100)]
    # no certificate, or one of a CA the broker does not trust: no answer at all
    assert refused(ssl_conf(tls_broker.mtls, certs.ca))
    assert refused(ssl_conf(tls_broker.mtls, certs.ca, other_ca.client("intruder")))
    # the SSL listener asks for no certificate (and the refusal check tells it apart)
    assert metadata(ssl_conf(tls_broker.ssl, certs.ca)).brokers
    assert not refused(ssl_conf(tls_broker.ssl, certs.ca), timeout=3)


def apiversions_frame() -> bytes:
    client = b"probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    return struct.pack(">i", len(body)) + body


def test_plaintext_and_untrusting_clients_are_closed(tls_broker, certs, other_ca):
    host, port = tls_broker.ssl.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(apiversions_frame())
        s.settimeout(15)
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
        # no Kafka response (whose first 4 bytes are a length and then correlation id 1): at
        # most a TLS alert record (content type 21), then the connection ends
        assert received == b"" or received[0] == 21, received[:16]
    # a client that trusts another CA refuses the broker's certificate
    assert refused(ssl_conf(tls_broker.ssl, other_ca.ca))
    # the listener still serves
    assert metadata(ssl_conf(tls_broker.ssl, certs.ca)).brokers


def mount_secret(directory: Path, files: dict[str, Path]) -> None:
    """Writes ``files`` (name -> source) as the kubelet updates a Secret volume: into a new
    timestamped directory, then ``..data`` is pointed at it with one rename, and each name is a
    link through ``..data``."""
    directory.mkdir(exist_ok=True)
    version = directory / f"..{time.monotonic_ns()}"
    version.mkdir()
    for name, source in files.items():
        (version / name).write_text(source.read_text())
    link = directory / "..data_tmp"
    os.symlink(version.name, link)
    os.rename(link, directory / "..data")
    for name in files:
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)


def test_stores_from_a_mounted_secret_through_the_directory_provider(target_kind, certs, other_ca, tmp_path):
    secret = tmp_path / "secret"
    crt, key, _ = certs.issue("mounted", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    mount_secret(secret, {"tls.crt": crt, "tls.key": key, "ca.crt": certs.ca})
    from_dir = {
        "config.providers": "dir",
        "config.providers.dir.class": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
        "ssl.keystore.certificate.chain": f"${{dir:{secret}:tls.crt}}",
        "ssl.keystore.key": f"${{dir:{secret}:tls.key}}",
    }
    broker = make_broker(target_kind, tmp_path / "broker", dict(COMMON_PROPS))
    ssl_port, mtls_port = free_ports(2)
    broker.props.update(tls_props(target_kind, broker, certs, from_dir, ssl_port, mtls_port))
    del broker.props["ssl.truststore.location"]
    broker.props["listener.name.mtls.ssl.truststore.certificates"] = f"${{dir:{secret}:ca.crt}}"
    if target_kind == "strata":
        broker.props["strata.ssl.reload.interval.ms"] = "200"
    broker.start()
    b = TlsBroker(broker, ssl_port, mtls_port)
    try:
        topic = unique_topic("tls-mounted")
        assert produce_and_consume(ssl_conf(b.ssl, certs.ca), topic, 100) == [f"tls-{i}".encode() for i in range(100)]
        assert metadata(ssl_conf(b.mtls, certs.ca, certs.client("mounted-client"))).brokers
        if target_kind != "strata":
            return  # Kafka takes new stores through AlterConfigs, not from the files
        crt, key, _ = other_ca.issue("remounted", "serverAuth", "IP:127.0.0.1,DNS:localhost")
        mount_secret(secret, {"tls.crt": crt, "tls.key": key, "ca.crt": certs.ca})
        wait_until(lambda: refused(ssl_conf(b.ssl, certs.ca), timeout=3), 30,
                   "clients trusting only the first CA refused after the Secret's rotation")
        assert metadata(ssl_conf(b.ssl, other_ca.ca)).brokers
    finally:
        b.broker.stop()


def strata_only(target_kind, why):
    if target_kind != "strata":
        pytest.skip(f"Strata only: {why}")


def test_encrypted_key_store_file(target_kind, certs, tmp_path):
    strata_only(target_kind, "Kafka on Java 17 decrypts PBES1 keys only, Strata PBES2 only")
    keystore = {"ssl.keystore.location": str(certs.server("encrypted", password=KEY_PASSWORD)),
                "ssl.key.password": KEY_PASSWORD}
    b = start_tls_broker("strata", tmp_path / "broker", certs, keystore, COMMON_PROPS)
    try:
        topic = unique_topic("tls-encrypted")
        assert produce_and_consume(ssl_conf(b.ssl, certs.ca), topic, 100) == [f"tls-{i}".encode() for i in range(100)]
    finally:
        b.broker.stop()


def test_rotated_certificate_is_used_without_restart(target_kind, certs, other_ca, tmp_path):
    strata_only(target_kind, "Kafka takes new stores through kafka-configs (AlterConfigs), not from the files")
    keystore = tmp_path / "keystore.pem"
    keystore.write_text(certs.server("rotating").read_text())
    b = start_tls_broker("strata", tmp_path / "broker", certs, {"ssl.keystore.location": str(keystore)},
                         COMMON_PROPS, {"strata.ssl.reload.interval.ms": "200"})
    try:
        assert metadata(ssl_conf(b.ssl, certs.ca)).brokers
        # the Secret is rotated: a certificate of the other CA replaces the file (written aside,
        # then renamed over it, as the kubelet swaps a Secret volume's files)
        fresh = tmp_path / "keystore.pem.new"
        fresh.write_text(other_ca.server("rotated").read_text())
        fresh.rename(keystore)
        wait_until(lambda: refused(ssl_conf(b.ssl, certs.ca), timeout=3), 30,
                   "clients trusting only the first CA refused after the rotation")
        assert metadata(ssl_conf(b.ssl, other_ca.ca)).brokers
        # a broken file is refused and the rotated certificate stays in use
        keystore.write_text("not a certificate\n")
        log_mark = b.broker.log_path.read_text()
        wait_until(lambda: "cannot be used; the previous one stays in use" in b.broker.log_path.read_text()[len(log_mark):],
                   30, "the broken key store reported in the broker's log")
        assert metadata(ssl_conf(b.ssl, other_ca.ca)).brokers
    finally:
        b.broker.stop()


@pytest.mark.parametrize("props, named", [
    ({"listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT"}, "GSSAPI"),
    ({"listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT", "sasl.enabled.mechanisms": "PLAIN"},
     "listener.name.plaintext.plain.sasl.jaas.config"),
    ({"listener.security.protocol.map": "PLAINTEXT:SSL"}, "ssl.keystore.location"),
    ({"listener.security.protocol.map": "PLAINTEXT:SSL", "ssl.keystore.type": "JKS",
      "ssl.keystore.location": "/nonexistent.jks"}, "only PEM stores are read"),
    ({"listener.security.protocol.map": "PLAINTEXT:SSL", "ssl.keystore.location": "KEYSTORE",
      "ssl.client.auth": "required"}, "ssl.truststore.location"),
    ({"listener.security.protocol.map": "PLAINTEXT:SSL", "ssl.keystore.location": "KEYSTORE",
      "ssl.keystore.password": "secret"}, "a PEM key store has no store password"),
    ({"listener.security.protocol.map": "PLAINTEXT:SSL", "ssl.keystore.location": "KEYSTORE",
      "ssl.key.password": "not-the-password"}, "does not decrypt with ssl.key.password"),
    ({"listener.security.protocol.map": "PLAINTEXT:SSL", "ssl.keystore.location": "/nonexistent.pem"},
     "/nonexistent.pem"),
    ({"listener.security.protocol.map": "PLAINTEXT:TLS"}, "unknown security protocol"),
], ids=["sasl-gssapi", "sasl-plain-without-users", "no-keystore", "jks", "client-auth-without-truststore", "keystore-password",
        "wrong-key-password", "missing-file", "unknown-protocol"])
def test_listener_that_cannot_work_is_refused_at_start(target_kind, certs, tmp_path, props, named):
    strata_only(target_kind, "Strata's own start-up messages")
    keystore = certs.server("refused", password=KEY_PASSWORD)
    props = {k: (str(keystore) if v == "KEYSTORE" else v) for k, v in props.items()}
    b = make_broker("strata", tmp_path, dict(COMMON_PROPS, **props))
    with pytest.raises(AssertionError) as refusal:
        b.start()
    assert named in str(refusal.value), str(refusal.value)[-2000:]
    assert "secret" not in str(refusal.value) and "not-the-password" not in str(refusal.value)
