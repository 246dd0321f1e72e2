"""SASL listeners for the SASL suites: brokers of either kind started with a PLAINTEXT listener
(the harness's readiness check and the admin bootstrap), a SASL_PLAINTEXT and a SASL_SSL listener
with the mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; SCRAM users made with Kafka's own
``kafka-configs`` through the PLAINTEXT listener; client configurations of confluent-kafka and of
Kafka's Java tools; and a SASL/PLAIN exchange framed by hand, for what clients do not show (the
error code of a refusal, the session lifetime of KIP-368).

PLAIN users are those of the listeners' JAAS configuration (``user_<name>="<password>"`` of
Kafka's PlainLoginModule); SCRAM users live in the cluster metadata, so a new credential reaches
the authenticator a little after ``kafka-configs`` returns: callers wait for it with a deadline
(:func:`wait_authenticates`)."""
from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from .brokers import kafka_tool, make_broker
from .tls import Certs
from .util import free_ports, read_exact, wait_until

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PLAIN_USERS = {"admin": "admin-secret", "alice": "alice-secret"}
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
SASL_LISTENERS = ("sasl_plaintext", "sasl_ssl")

# Kafka's error codes of the SASL exchange
SASL_AUTHENTICATION_FAILED = 58
UNSUPPORTED_SASL_MECHANISM = 33


def plain_server_jaas(users: dict) -> str:
    """The broker's PlainLoginModule configuration: its own identity (admin) and ``users``."""
    entries = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    return f'{PLAIN_MODULE} required username="admin" password="{users["admin"]}" {entries};'


def client_jaas(mechanism: str, user: str, password: str) -> str:
    module = PLAIN_MODULE if mechanism == "PLAIN" else SCRAM_MODULE
    return f'{module} required username="{user}" password="{password}";'


def listener_jaas_props(listener: str, users: dict = PLAIN_USERS) -> dict:
    """The JAAS configuration of each mechanism of ``listener`` (its lower-case name)."""
    return {
        f"listener.name.{listener}.plain.sasl.jaas.config": plain_server_jaas(users),
        f"listener.name.{listener}.scram-sha-256.sasl.jaas.config": f"{SCRAM_MODULE} required;",
        f"listener.name.{listener}.scram-sha-512.sasl.jaas.config": f"{SCRAM_MODULE} required;",
    }


class SaslBroker:
    """A started broker with PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners; ``plaintext``,
    ``sasl_plaintext`` and ``sasl_ssl`` are their bootstrap addresses (kept across restarts)."""

    def __init__(self, broker, sasl_plaintext_port: int, sasl_ssl_port: int):
        self.broker = broker
        self.plaintext = broker.bootstrap
        self.sasl_plaintext = f"127.0.0.1:{sasl_plaintext_port}"
        self.sasl_ssl = f"127.0.0.1:{sasl_ssl_port}"

    def restart(self):
        self.broker.restart()
        return self


def sasl_props(kind: str, broker, keystore: dict, sasl_plaintext_port: int, sasl_ssl_port: int,
               users: dict = PLAIN_USERS) -> dict:
    """Listeners PLAINTEXT, SASL_PLAINTEXT and SASL_SSL (``keystore``: the inline key store of
    :meth:`Certs.server_inline`, for the SASL_SSL listener), every SASL mechanism enabled, PLAIN
    users ``users``."""
    listeners = [f"PLAINTEXT://127.0.0.1:{broker.port}",
                 f"SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext_port}",
                 f"SASL_SSL://127.0.0.1:{sasl_ssl_port}"]
    protocols = "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    if kind == "kafka":
        listeners.append(f"CONTROLLER://127.0.0.1:{broker.controller_port}")
        protocols += ",CONTROLLER:PLAINTEXT"
    props = {
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(listeners[:3]),
        "listener.security.protocol.map": protocols,
        "inter.broker.listener.name": "PLAINTEXT",
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
    }
    for listener in SASL_LISTENERS:
        props.update(listener_jaas_props(listener, users))
    props["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
    props.update({f"listener.name.sasl_ssl.{k}": v for k, v in keystore.items()})
    return props


def start_sasl_broker(kind: str, work: Path, certs: Certs, base: dict, extra: dict | None = None) -> SaslBroker:
    """A started broker of ``kind`` with server properties ``base``, the listeners of
    :func:`sasl_props` (a broker certificate of ``certs``) and ``extra``."""
    broker = make_broker(kind, work, dict(base))
    sasl_plaintext_port, sasl_ssl_port = free_ports(2)
    while broker.port in (sasl_plaintext_port, sasl_ssl_port) or \
            getattr(broker, "controller_port", None) in (sasl_plaintext_port, sasl_ssl_port):
        sasl_plaintext_port, sasl_ssl_port = free_ports(2)
    broker.props.update(sasl_props(kind, broker, certs.server_inline(), sasl_plaintext_port, sasl_ssl_port))
    broker.props.update(extra or {})
    broker.start()
    return SaslBroker(broker, sasl_plaintext_port, sasl_ssl_port)


# --- clients -----------------------------------------------------------------------------------

def client_conf(bootstrap: str, mechanism: str, user: str, password: str, ca: Path | None = None) -> dict:
    """confluent-kafka (librdkafka) configuration of a SASL client; with ``ca``, over TLS
    verifying the broker's certificate and host name."""
    conf = {"bootstrap.servers": bootstrap, "sasl.mechanism": mechanism, "sasl.username": user,
            "sasl.password": password, "socket.timeout.ms": 10000,
            "security.protocol": "SASL_SSL" if ca is not None else "SASL_PLAINTEXT"}
    if ca is not None:
        conf["ssl.ca.location"] = str(ca)
        conf["ssl.endpoint.identification.algorithm"] = "https"
    return conf


def java_client_properties(path: Path, mechanism: str, user: str, password: str, ca: Path | None = None) -> Path:
    """A client properties file of Kafka's Java tools (--producer.config, --consumer.config,
    --command-config); with ``ca``, SASL_SSL with a PEM trust store."""
    lines = [f"security.protocol={'SASL_SSL' if ca is not None else 'SASL_PLAINTEXT'}",
             f"sasl.mechanism={mechanism}",
             f"sasl.jaas.config={client_jaas(mechanism, user, password)}"]
    if ca is not None:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={ca}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def is_authentication_error(err) -> bool:
    """A KafkaError of librdkafka that reports a refused SASL authentication."""
    from confluent_kafka import KafkaError
    return err.code() == KafkaError._AUTHENTICATION


def refusal_message(err) -> str:
    """librdkafka's report of a refused authentication without what differs between two
    attempts: the broker's address before it and the "(after N ms in state ...)" after it."""
    text = re.sub(r"^\S+://\S+: ", "", err.str())
    return re.sub(r" \(after \d+ms in state \w+\)$", "", text)


def authentication_outcome(conf: dict, timeout: float = 30):
    """None when a client with ``conf`` gets Metadata, the KafkaError of librdkafka when it
    reports a refused authentication first; AssertionError when neither comes within
    ``timeout`` seconds."""
    from confluent_kafka import KafkaException, Producer
    errors = []
    client = Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.poll(0.1)
        refused = [e for e in errors if is_authentication_error(e)]
        if refused:
            return refused[0]
        try:
            client.list_topics(timeout=1)
            return None
        except KafkaException:
            pass
    raise AssertionError(f"neither Metadata nor an authentication error within {timeout}s; errors: {errors}")


def wait_authenticates(conf: dict, timeout: float = 30, what: str | None = None):
    """Waits until a client with ``conf`` authenticates (a new or changed SCRAM credential
    reaches the authenticator through the metadata log a little after it is written)."""
    wait_until(lambda: authentication_outcome(conf, timeout=10) is None, timeout,
               what or f"{conf['sasl.username']} to authenticate with {conf['sasl.mechanism']}", interval=0.5)


def wait_refused(conf: dict, timeout: float = 30, what: str | None = None):
    """Waits until a client with ``conf`` is refused; returns librdkafka's error."""
    return wait_until(lambda: authentication_outcome(conf, timeout=10), timeout,
                      what or f"{conf['sasl.username']} to be refused with {conf['sasl.mechanism']}", interval=0.5)


# --- SCRAM credentials through kafka-configs ----------------------------------------------------

def configs(bootstrap: str, *args: str, check: bool = True):
    return kafka_tool("configs", "--bootstrap-server", bootstrap, *args, timeout=180, check=check)


def alter_scram(bootstrap: str, user: str, add: str | None = None, delete: str | None = None, check: bool = True):
    """``kafka-configs --alter`` of user ``user``: ``add`` as --add-config (e.g.
    ``SCRAM-SHA-512=[iterations=8192,password=x]``), ``delete`` as --delete-config.

    One mechanism per call: Kafka (KRaft) refuses two changes of one user in one
    AlterUserScramCredentials request, which is what ``kafka-configs`` sends for two mechanisms
    in one --add-config."""
    args = ["--alter"]
    if add is not None:
        args += ["--add-config", add]
    if delete is not None:
        args += ["--delete-config", delete]
    return configs(bootstrap, *args, "--entity-type", "users", "--entity-name", user, check=check)


def add_scram(bootstrap: str, user: str, mechanism: str, password: str, iterations: int | None = None):
    """Adds (or replaces) the ``mechanism`` credential of ``user`` with ``kafka-configs``."""
    spec = (f"iterations={iterations}," if iterations is not None else "") + f"password={password}"
    return alter_scram(bootstrap, user, add=f"{mechanism}=[{spec}]")


SCRAM_LINE = re.compile(r"^SCRAM credential configs for user-principal '([^']*)' are (.*)$", re.M)


def parse_scram(out: str) -> dict:
    """{user: {mechanism: iterations}} of the output of ``kafka-configs --describe --entity-type
    users``: lines "SCRAM credential configs for user-principal 'alice' are
    SCRAM-SHA-256=iterations=4096, SCRAM-SHA-512=iterations=8192"."""
    return {name: {m: int(i) for m, i in re.findall(r"(SCRAM-SHA-\d+)=iterations=(\d+)", creds)}
            for name, creds in SCRAM_LINE.findall(out)}


def describe_scram(bootstrap: str, user: str | None = None) -> dict:
    """:func:`parse_scram` of ``kafka-configs --describe --entity-type users [--entity-name user]``."""
    args = ["--describe", "--entity-type", "users"] + (["--entity-name", user] if user else [])
    return parse_scram(configs(bootstrap, *args).stdout)


# --- SASL/PLAIN framed by hand -----------------------------------------------------------------

def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def request(sock, api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    """Sends one request (header v1) and returns the body of its response after the correlation
    id (response header v0); ConnectionError when the broker closes the connection instead."""
    msg = struct.pack(">hhi", api_key, version, correlation) + _string("sasl-probe") + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    response = read_exact(sock, size)
    (got,) = struct.unpack_from(">i", response)
    assert got == correlation, (got, correlation)
    return response[4:]


def api_versions_v0(sock, correlation: int) -> int:
    """ApiVersions v0; the error code of its response."""
    (error,) = struct.unpack_from(">h", request(sock, 18, 0, correlation, b""))
    return error


def metadata_v1(sock, correlation: int) -> bytes:
    """Metadata v1 of all topics (a null topic array)."""
    return request(sock, 3, 1, correlation, struct.pack(">i", -1))


@dataclass
class PlainSession:
    sock: socket.socket
    handshake_error: int
    mechanisms: list
    error: int | None = None
    message: str | None = None
    session_lifetime_ms: int | None = None


def sasl_plain(address: str, user: str, password: str, mechanism: str = "PLAIN") -> PlainSession:
    """SaslHandshake v1 asking ``mechanism``, then (when it is accepted) SaslAuthenticate v1
    with the PLAIN token of ``user``; the open connection and what the broker answered."""
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    body = request(sock, 17, 1, 1, _string(mechanism))
    (error, count), offset = struct.unpack_from(">hi", body), 6
    mechanisms = []
    for _ in range(count):
        (n,) = struct.unpack_from(">h", body, offset)
        mechanisms.append(body[offset + 2:offset + 2 + n].decode())
        offset += 2 + n
    session = PlainSession(sock, error, mechanisms)
    if error != 0:
        return session
    token = b"\0" + user.encode() + b"\0" + password.encode()
    body = request(sock, 36, 1, 2, struct.pack(">i", len(token)) + token)
    (session.error, n) = struct.unpack_from(">hh", body)
    offset = 4
    if n >= 0:
        session.message = body[offset:offset + n].decode()
        offset += n
    (m,) = struct.unpack_from(">i", body, offset)
    offset += 4 + max(m, 0)
    (session.session_lifetime_ms,) = struct.unpack_from(">q", body, offset)
    return session


def closed_without_answer(sock, timeout: float = 15) -> bool:
    """True when the broker closes ``sock`` without sending a byte (within ``timeout``)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
