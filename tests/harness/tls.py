"""Test certificates and TLS listener properties for the SSL suites and benchmarks: a CA made
by ``openssl`` (the Debian package), broker key stores and client certificates; brokers of
either kind started with PLAINTEXT, SSL and MTLS listeners.

The key store both brokers take alike is Kafka's inline PEM (``ssl.keystore.key`` and
``ssl.keystore.certificate.chain``, each on one line, unencrypted): a PEM key store *file* must
hold an encrypted key in Kafka, and the Java 17 it runs on decrypts only PBES1 keys, which
Strata does not read (it reads PBES2, what ``openssl pkcs8 -topk8`` writes)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from .brokers import make_broker
from .util import free_ports

KEY_PASSWORD = "broker-key-secret"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Certs:
    """A CA, server key + certificate (one PEM file, as ssl.keystore.location takes it) and client
    certificates, made by openssl in ``directory``."""

    def __init__(self, directory: Path, name: str = "ca"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.pem", "-days", "2", "-subj", f"/CN=strata-test-{name}", cwd=self.dir)

    @property
    def ca(self) -> Path:
        return self.dir / f"{self.name}.pem"

    def issue(self, cn: str, usage: str, san: str | None = None,
              password: str | None = None, subject: str | None = None) -> tuple[Path, Path, Path]:
        """(certificate, key, key + certificate in one file) for ``cn`` (the subject ``/CN=cn``
        unless ``subject`` gives another, in openssl's ``-subj`` form); with ``password`` the key
        in the one file is encrypted PKCS#8 (PBES2, AES-256)."""
        ext = self.dir / f"{cn}.ext"
        ext.write_text(f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{cn}.key", "-out", f"{cn}.csr",
                "-subj", subject or f"/CN={cn}", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{cn}.csr", "-CA", self.ca.name, "-CAkey", f"{self.name}.key",
                "-CAcreateserial", "-out", f"{cn}.crt", "-days", "2", "-extfile", ext.name, cwd=self.dir)
        crt, key = self.dir / f"{cn}.crt", self.dir / f"{cn}.key"
        stored = key
        if password is not None:
            stored = self.dir / f"{cn}.enc.key"
            openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", key.name, "-out", stored.name,
                    "-passout", f"pass:{password}", cwd=self.dir)
        both = self.dir / f"{cn}.pem"
        both.write_text(stored.read_text() + crt.read_text())
        return crt, key, both

    def server(self, cn: str = "broker", password: str | None = None) -> Path:
        """A key store file for a broker: key (encrypted with ``password``) and certificate."""
        return self.issue(cn, "serverAuth", "IP:127.0.0.1,DNS:localhost", password)[2]

    def server_inline(self, cn: str = "broker") -> dict:
        """The inline key store properties of a broker certificate (one line each)."""
        crt, key, _ = self.issue(cn, "serverAuth", "IP:127.0.0.1,DNS:localhost")
        return {"ssl.keystore.key": one_line(key), "ssl.keystore.certificate.chain": one_line(crt)}

    def node_inline(self, cn: str = "broker") -> dict:
        """The inline key store properties of a cluster node's certificate: a server's, also
        usable as a client certificate (the node's identity toward the other nodes)."""
        crt, key, _ = self.issue(cn, "serverAuth,clientAuth", "IP:127.0.0.1,DNS:localhost")
        return {"ssl.keystore.key": one_line(key), "ssl.keystore.certificate.chain": one_line(crt)}

    def client(self, cn: str, subject: str | None = None) -> tuple[Path, Path, Path]:
        return self.issue(cn, "clientAuth", subject=subject)


def one_line(pem: Path) -> str:
    """PEM text as a property value: its line breaks as spaces."""
    return " ".join(pem.read_text().split())


class TlsBroker:
    """A started broker with PLAINTEXT, SSL and MTLS listeners; ``ssl`` and ``mtls`` are their
    bootstrap addresses."""

    def __init__(self, broker, ssl_port: int, mtls_port: int):
        self.broker = broker
        self.ssl = f"127.0.0.1:{ssl_port}"
        self.mtls = f"127.0.0.1:{mtls_port}"


def tls_props(kind: str, broker, certs: Certs, keystore: dict, ssl_port: int, mtls_port: int) -> dict:
    """Listeners PLAINTEXT, SSL and MTLS (client certificates required) with ``keystore`` (the
    key store properties: :meth:`Certs.server_inline`, or a location and a key password)."""
    listeners = [f"PLAINTEXT://127.0.0.1:{broker.port}", f"SSL://127.0.0.1:{ssl_port}",
                 f"MTLS://127.0.0.1:{mtls_port}"]
    protocols = "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL"
    if kind == "kafka":
        listeners.append(f"CONTROLLER://127.0.0.1:{broker.controller_port}")
        protocols += ",CONTROLLER:PLAINTEXT"
    return {
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(listeners[:3]),
        "listener.security.protocol.map": protocols,
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM",
        **keystore,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
        "listener.name.mtls.ssl.client.auth": "required",
    }


def start_tls_broker(kind: str, work: Path, certs: Certs, keystore: dict, base: dict,
                     extra: dict | None = None) -> TlsBroker:
    """A started broker of ``kind`` with server properties ``base``, the TLS listeners of
    :func:`tls_props` and ``extra``."""
    broker = make_broker(kind, work, dict(base))
    ssl_port, mtls_port = free_ports(2)
    broker.props.update(tls_props(kind, broker, certs, keystore, ssl_port, mtls_port))
    broker.props.update(extra or {})
    broker.start()
    return TlsBroker(broker, ssl_port, mtls_port)
