"""A replicated cluster of N nodes, Strata or the reference Apache Kafka, behind one interface, with
per-node faults (kill -9, SIGSTOP/SIGCONT, SIGTERM, restart on the same data, network isolation).

    c = make_cluster("strata", work_dir, brokers=6, racks="a,b,c", props=CLUSTER_PROPS)
    c.start()                       # returns once Metadata lists all 6 brokers
    c.kill9(2); c.start_node(2)     # same data dir, same ports; waits until it is registered
    c.isolate(1); c.heal(1)         # needs network="netns"
    c.close()

Every node gets a ``server.properties`` rendered exactly as a Kafka KRaft node's (the first
``voters`` nodes are ``process.roles=broker,controller``, the others ``broker``; all share
``controller.quorum.voters``, ``cluster.id`` and the listener layout), plus ``props``. A Kafka
node runs through ``kafka.sh run-node`` (which formats its storage once); a Strata node runs as
``strata-broker --config server.properties`` and formats its empty log directory itself; it also
serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``strata.metrics.address``
(``node.metrics_url(path)``: port 9404 on its own address, as the operator renders it, or a free
loopback port).

Networks: ``loopback`` puts every listener on 127.0.0.1 (distinct ports, kept across restarts);
``netns`` gives node i its own namespace and address 10.213.<slot>.<10+i> (port 9092, controller
9093) behind a bridge, so that :meth:`Cluster.isolate` can cut it off from the other nodes while
clients in the root namespace still reach it (see harness/netns.py).

Node views come from a raw Metadata v7 request sent to one chosen node (``metadata(node_id)``),
so a test knows whose view it reads: a paused or isolated node answers late or stale.
"""
import os
import re
import signal
import socket
import struct
import time
from collections import namedtuple
from pathlib import Path

from .brokers import KAFKA_SH, kafka_tool, strata_broker_bin
from .netns import BridgeNetwork, NetworkUnavailable
from .process import ManagedProcess
from .sasl import PLAIN_MODULE, PLAIN_USERS, plain_server_jaas

# The identity the nodes of a ``secure_nodes`` cluster use toward each other (SASL/PLAIN).
NODE_USER = ("broker", "broker-secret")


def node_jaas(password):
    """A node listener's PlainLoginModule entry: the node's own identity (``broker`` with
    ``password``: what it presents to the other nodes) and the one user it accepts."""
    return (f'{PLAIN_MODULE} required username="{NODE_USER[0]}" password="{password}" '
            f'user_{NODE_USER[0]}="{NODE_USER[1]}";')
from .util import free_ports, read_exact, tail, wait_until

KAFKA_START_TIMEOUT = 180.0  # N JVMs starting together on a busy 2-core machine
STRATA_START_TIMEOUT = 30.0
METRICS_PORT = 9404  # strata.metrics.address port on a node's own address (the operator's choice)
NODE_STOP_TIMEOUT = 15.0  # SIGTERM grace before SIGKILL when stopping a single node
CLUSTER_CLOSE_TIMEOUT = 10.0  # at teardown: SIGTERM to all, SIGKILL after this

# Server properties of the replication suites and benchmark (Kafka's names, applied to both
# kinds): RF 3 and min.insync.replicas 2 everywhere, fast failure detection, small internals,
# Kafka's rack-aware replica selector.
CLUSTER_PROPS = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "num.partitions": "3",
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.state.log.num.partitions": "3",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    "group.initial.rebalance.delay.ms": "0",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "4000",
    "replica.lag.time.max.ms": "6000",
    "unclean.leader.election.enable": "false",
    # Leadership returns to the preferred replicas 5 s after they are back (Kafka's default: 300 s).
    "auto.leader.rebalance.enable": "true",
    "leader.imbalance.check.interval.seconds": "5",
    "num.network.threads": "2",
    "num.io.threads": "4",
    # Follower fetching (KIP-392): consumers naming their rack read from a replica there.
    "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
}

Broker = namedtuple("Broker", "node_id host port rack")
Partition = namedtuple("Partition", "error leader epoch replicas isr offline")
Partition.__doc__ = "One partition in a node's Metadata view; leader -1 when it has none."


class ClusterFormationError(AssertionError):
    """The nodes did not form one cluster in time. ``views`` maps each node that answered to the
    broker ids its Metadata listed; ``exited`` lists the nodes whose process ended."""

    def __init__(self, message, views=None, exited=()):
        super().__init__(message)
        self.views = dict(views or {})
        self.exited = tuple(exited)

    @property
    def cluster_of_one(self):
        """Every node answered and listed only itself: each runs as a cluster of its own."""
        return (not self.exited and bool(self.views)
                and all(set(ids) == {nid} for nid, ids in self.views.items()))


# --- raw Metadata v7 (one chosen node's view) -----------------------------------------------------

class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals if len(vals) > 1 else vals[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def int_array(self):
        n = self.take(">i")
        return [self.take(">i") for _ in range(max(n, 0))]


def metadata_request(host, port, topics=None, timeout=5.0):
    """Sends Metadata v7 to host:port. ``topics`` None asks for every topic. Returns
    (brokers {id: Broker}, controller_id, {topic: (error, {partition: Partition})})."""
    client_id = b"strata-cluster"
    body = struct.pack(">hhih", 3, 7, 7, len(client_id)) + client_id
    if topics is None:
        body += struct.pack(">i", -1)
    else:
        body += struct.pack(">i", len(topics))
        for t in topics:
            tb = t.encode()
            body += struct.pack(">h", len(tb)) + tb
    body += struct.pack(">?", False)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", read_exact(s, 4))[0]
        r = _Reader(read_exact(s, size))
    r.take(">i")  # correlation id
    r.take(">i")  # throttle_time_ms
    brokers = {}
    for _ in range(r.take(">i")):
        nid = r.take(">i")
        bhost = r.string()
        bport = r.take(">i")
        rack = r.string()
        brokers[nid] = Broker(nid, bhost, bport, rack)
    r.string()  # cluster_id
    controller = r.take(">i")
    out = {}
    for _ in range(r.take(">i")):
        terr = r.take(">h")
        name = r.string()
        r.take(">?")  # is_internal
        parts = {}
        for _ in range(r.take(">i")):
            perr, idx, leader, epoch = r.take(">hiii")
            replicas, isr, offline = r.int_array(), r.int_array(), r.int_array()
            parts[idx] = Partition(perr, leader, epoch, replicas, isr, offline)
        out[name] = (terr, parts)
    return brokers, controller, out


# --- nodes -----------------------------------------------------------------------------------------

class ClusterNode(ManagedProcess):
    """One node of a :class:`Cluster`: its directory ``<work_dir>/node<i>`` (server.properties,
    cluster.id, data/, broker.log), its fixed address and ports, its process."""

    def __init__(self, cluster, node_id, host, port, controller_port, rack, voter, metrics_port=None,
                 sasl_port=None, internal_port=None):
        self.cluster = cluster
        self.node_id = node_id
        self.host, self.port, self.controller_port = host, port, controller_port
        self.metrics_port = metrics_port
        self.sasl_port = sasl_port
        self.internal_port = internal_port
        # Properties of this node alone, over everything else (a node that differs from the rest)
        self.overrides = {}
        # The subject (CN) of the node's certificate on a secure_nodes cluster.
        self.cert_cn = "broker"
        self.rack = rack
        self.voter = voter
        self.dir = cluster.work_dir / f"node{node_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.dir / "broker.log")

    @property
    def what(self):
        return f"{self.cluster.kind} node {self.node_id}"

    @property
    def kind(self):
        return self.cluster.kind

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap(self):
        """The address of the SASL_PLAINTEXT listener (clusters made with ``sasl=True``)."""
        if self.sasl_port is None:
            raise AssertionError(f"{self.what} has no SASL_PLAINTEXT listener")
        return f"{self.host}:{self.sasl_port}"

    def metrics_url(self, path="/metrics"):
        """URL of this Strata node's ``/metrics``, ``/healthz`` or ``/readyz``."""
        if self.kind != "strata" or self.metrics_port is None:
            raise AssertionError(f"{self.what} serves no metrics endpoint")
        return f"http://{self.host}:{self.metrics_port}{path}"

    @property
    def data_dir(self):
        return self.dir / "data"

    @property
    def config_path(self):
        return self.dir / "server.properties"

    @property
    def paused(self):
        return self._paused

    def properties(self):
        """The node's server.properties as an ordered dict (identity first, then the cluster's
        ``props``; a key in ``props`` overrides nothing of the identity)."""
        c = self.cluster
        advertised = f"PLAINTEXT://{self.host}:{self.port}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        if self.sasl_port is not None:
            advertised += f",SASL_PLAINTEXT://{self.host}:{self.sasl_port}"
            protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        listeners = advertised
        if self.voter:
            listeners += f",CONTROLLER://{self.host}:{self.controller_port}"
        p = {
            "node.id": str(self.node_id),
            "process.roles": "broker,controller" if self.voter else "broker",
            "controller.quorum.voters": c.quorum_voters,
            "listeners": listeners,
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": protocols,
        }
        if self.sasl_port is not None:
            p["sasl.enabled.mechanisms"] = "PLAIN"
            p["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = plain_server_jaas(PLAIN_USERS)
        if c.secure_nodes is not None:
            p.update(self.secure_node_properties(c.secure_nodes))
        if self.rack:
            p["broker.rack"] = self.rack
        if self.kind == "strata" and self.metrics_port is not None:
            p["strata.metrics.address"] = f"{self.host}:{self.metrics_port}"
        p["cluster.id"] = c.cluster_id
        p["log.dirs"] = str(self.data_dir)
        for k, v in c.props.items():
            p.setdefault(k, str(v))
        p.update(self.overrides)
        return p

    def secure_node_properties(self, certs):
        """The nodes' own traffic over an INTERNAL inter-broker listener and the CONTROLLER
        listener, each with a certificate of ``certs`` (inline PEM, ``cert_cn`` its subject) and
        its CA as the trust store; clients keep the PLAINTEXT listener. The cluster's
        ``node_auth``: "sasl", SASL_SSL with PLAIN and the user ``broker`` (NODE_USER) as the
        nodes' identity; "mtls", SSL with client certificates required, the certificate's
        subject (``User:CN=broker``) as the nodes' identity."""
        mtls = self.cluster.node_auth == "mtls"
        protocol = "SSL" if mtls else "SASL_SSL"
        internal = f"INTERNAL://{self.host}:{self.internal_port}"
        listeners = f"PLAINTEXT://{self.host}:{self.port},{internal}"
        if self.voter:
            listeners += f",CONTROLLER://{self.host}:{self.controller_port}"
        p = {
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port},{internal}",
            "listener.security.protocol.map":
                f"PLAINTEXT:PLAINTEXT,INTERNAL:{protocol},CONTROLLER:{protocol}",
            "inter.broker.listener.name": "INTERNAL",
        }
        if not mtls:
            p["sasl.mechanism.inter.broker.protocol"] = "PLAIN"
            p["sasl.mechanism.controller.protocol"] = "PLAIN"
        keystore = certs.node_inline(self.cert_cn)
        for listener in ("internal", "controller"):
            if mtls:
                p[f"listener.name.{listener}.ssl.client.auth"] = "required"
            else:
                p[f"listener.name.{listener}.sasl.enabled.mechanisms"] = "PLAIN"
                p[f"listener.name.{listener}.plain.sasl.jaas.config"] = node_jaas(NODE_USER[1])
            p[f"listener.name.{listener}.ssl.keystore.type"] = "PEM"
            p.update({f"listener.name.{listener}.{k}": v for k, v in keystore.items()})
            p[f"listener.name.{listener}.ssl.truststore.type"] = "PEM"
            p[f"listener.name.{listener}.ssl.truststore.location"] = str(certs.ca)
        return p

    def write_config(self):
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        (self.dir / "cluster.id").write_text(self.cluster.cluster_id + "\n")

    def start(self):
        """Starts the process (same data, address and ports as before); does not wait."""
        if self.running():
            raise AssertionError(f"{self.what} already runs (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        env = dict(os.environ)
        if self.kind == "kafka":
            cmd = [str(KAFKA_SH), "run-node", str(self.dir)]
        else:
            binary = self.cluster.binary
            if not (binary.is_file() and os.access(binary, os.X_OK)):
                raise AssertionError(f"Strata broker binary not found at {binary}: build it with "
                                     f"`cargo build --release` or point STRATA_BROKER_BIN at it")
            cmd = [str(binary), "--config", str(self.config_path)]
            env.setdefault("RUST_LOG", "info")
            env.setdefault("RUST_BACKTRACE", "1")
        if self.cluster.network is not None:
            cmd = self.cluster.network.wrap(self.node_id, cmd)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
        self._popen(cmd, cwd=self.dir, env=env)
        return self

    def _state(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None

    def pause(self):
        """SIGSTOP, returning once every thread of the process is stopped (signal delivery is
        asynchronous: a request sent right after kill() could still be served)."""
        super().pause()
        wait_until(lambda: self._state() in ("T", None), 10, f"{self.what} stopped", interval=0.01)

    def resume(self):
        super().resume()
        wait_until(lambda: self._state() != "T", 10, f"{self.what} continued", interval=0.01)

    def sigstop(self):
        self.pause()

    def sigcont(self):
        self.resume()

    def log_tail(self, lines=60):
        return tail(self.log_path, lines)

    def __repr__(self):
        return f"<{self.what} {self.bootstrap} pid={self.pid}>"


# --- the cluster -----------------------------------------------------------------------------------

def random_cluster_id():
    """A cluster id as Kafka prints it: 16 random bytes, URL-safe base64, not starting with '-'."""
    import base64
    while True:
        u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not u.startswith("-"):
            return u


class Cluster:
    """N nodes of one kind forming one cluster; see the module docstring."""

    def __init__(self, kind, work_dir, brokers=3, racks=None, props=None, voters=3, network="loopback",
                 binary=None, sasl=False, secure_nodes=None, node_auth="sasl"):
        if kind not in ("strata", "kafka"):
            raise ValueError(f"unknown cluster kind {kind!r}")
        if network not in ("loopback", "netns"):
            raise ValueError(f"unknown network {network!r}")
        self.kind = kind
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.size = brokers
        self.voter_count = min(voters, brokers)
        if isinstance(racks, str):
            racks = [r for r in racks.split(",") if r]
        self.racks = list(racks or [])
        self.props = {k: str(v) for k, v in (props or {}).items()}
        self.binary = Path(binary) if binary else strata_broker_bin()
        self.network_kind = network
        self.network = None
        self.network_unavailable = None  # why network="netns" could not be used, when it could not
        self.cluster_id = random_cluster_id()
        self.nodes = {}
        if sasl and network != "loopback":
            raise ValueError("a SASL_PLAINTEXT listener is offered on loopback clusters only")
        # Each node also listens with SASL_PLAINTEXT (PLAIN, harness.sasl.PLAIN_USERS).
        self.sasl = sasl
        if secure_nodes is not None and (network != "loopback" or sasl):
            raise ValueError("SASL_SSL between the nodes is offered on loopback clusters without "
                             "the SASL_PLAINTEXT client listener only")
        # Certs: the nodes' own traffic over SASL_SSL or mutual TLS (node_auth "sasl" or "mtls";
        # ClusterNode.secure_node_properties).
        if node_auth not in ("sasl", "mtls"):
            raise ValueError(f"unknown node_auth {node_auth!r}")
        self.secure_nodes = secure_nodes
        self.node_auth = node_auth

    # --- layout ------------------------------------------------------------------------------------
    def _layout(self):
        n = self.size
        if self.network_kind == "netns":
            self.network = BridgeNetwork(n).open()
            addrs = [(self.network.address(i), 9092, 9093, METRICS_PORT) for i in range(1, n + 1)]
        else:
            ports = free_ports(5 * n)
            addrs = [("127.0.0.1", ports[5 * i], ports[5 * i + 1], ports[5 * i + 2]) for i in range(n)]
        for i in range(1, n + 1):
            host, port, cport, mport = addrs[i - 1]
            rack = self.racks[(i - 1) % len(self.racks)] if self.racks else None
            extra = ports[5 * i - 2: 5 * i] if self.network_kind == "loopback" else (None, None)
            self.nodes[i] = ClusterNode(self, i, host, port, cport, rack, voter=i <= self.voter_count,
                                        metrics_port=mport, sasl_port=extra[0] if self.sasl else None,
                                        internal_port=extra[1] if self.secure_nodes is not None else None)

    @property
    def quorum_voters(self):
        return ",".join(f"{n.node_id}@{n.host}:{n.controller_port}"
                        for n in self.nodes.values() if n.voter)

    @property
    def voters(self):
        return [i for i, n in self.nodes.items() if n.voter]

    def rack_of(self, node_id):
        return self.nodes[node_id].rack

    def nodes_in_rack(self, rack):
        return [i for i, n in self.nodes.items() if n.rack == rack]

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self, timeout=None, alone_timeout=None):
        """Starts every node and returns once each running node's Metadata lists all N brokers.
        Raises ClusterFormationError (with each node's view) on the deadline, when a node exits,
        or, with ``alone_timeout``, when after that many seconds every node still lists only
        itself (nodes that never find each other)."""
        if not self.nodes:
            self._layout()
        for node in self.nodes.values():
            if not node.running():
                node.start()
        if timeout is None:
            timeout = KAFKA_START_TIMEOUT if self.kind == "kafka" else STRATA_START_TIMEOUT
        self.wait_formed(timeout, alone_timeout)
        return self

    def wait_formed(self, timeout, alone_timeout=None):
        """Waits until every running node's Metadata lists every node of the cluster."""
        want = set(self.nodes)
        started = time.monotonic()
        deadline = started + timeout
        views = {}
        while True:
            exited = [i for i, n in self.nodes.items() if n.pid is not None and not n.running()]
            if exited:
                break
            views = {}
            for i, n in self.nodes.items():
                if not n.running():
                    continue
                try:
                    views[i] = sorted(metadata_request(n.host, n.port, topics=[], timeout=2.0)[0])
                except (OSError, struct.error, UnicodeDecodeError):
                    pass
            if views and len(views) == len([n for n in self.nodes.values() if n.running()]) \
                    and all(set(v) == want for v in views.values()):
                return views
            if time.monotonic() >= deadline:
                break
            if (alone_timeout is not None and time.monotonic() - started >= alone_timeout
                    and len(views) == len(self.nodes) and all(v == [i] for i, v in views.items())):
                timeout = alone_timeout
                break
            time.sleep(0.25)  # poll interval of the deadline loop
        exited = [i for i, n in self.nodes.items() if n.pid is not None and not n.running()]
        detail = "; ".join(f"node {i} lists {v}" for i, v in sorted(views.items())) or "no node answered"
        if exited:
            detail = f"node(s) {exited} exited; " + detail
        raise ClusterFormationError(
            f"{self.kind} cluster of {self.size} did not form within {timeout:.0f}s: {detail}\n"
            + self.log_tails(20), views, exited)

    def close(self):
        """Stops every node (SIGCONT first where paused; SIGTERM, SIGKILL after a short grace:
        the data is thrown away), then removes the network. Idempotent."""
        try:
            live = []
            for n in self.nodes.values():
                if n.running():
                    if n.paused:
                        n.resume()
                    os.kill(n.pid, signal.SIGTERM)
                    live.append(n)
            deadline = time.monotonic() + CLUSTER_CLOSE_TIMEOUT
            for n in live:
                if not n._wait_exit(max(0.1, deadline - time.monotonic())):
                    n.kill9()
                n.stop()
        finally:
            if self.network is not None:
                self.network.close()
                self.network = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- addresses ---------------------------------------------------------------------------------
    def healthy(self):
        """Ids of the nodes that run, are not paused and are not isolated."""
        isolated = self.network.isolated if self.network is not None else frozenset()
        return [i for i, n in self.nodes.items() if n.running() and not n.paused and i not in isolated]

    def bootstrap(self, nodes=None):
        """Bootstrap list of ``nodes`` (default: every node)."""
        ids = list(self.nodes) if nodes is None else list(nodes)
        return ",".join(self.nodes[i].bootstrap for i in ids)

    def sasl_bootstrap(self, nodes=None):
        """Bootstrap list of the SASL_PLAINTEXT listeners of ``nodes`` (default: every node)."""
        ids = list(self.nodes) if nodes is None else list(nodes)
        return ",".join(self.nodes[i].sasl_bootstrap for i in ids)

    def healthy_bootstrap(self):
        return self.bootstrap(self.healthy())

    # --- per-node faults -----------------------------------------------------------------------------
    def node(self, node_id):
        return self.nodes[node_id]

    def kill9(self, node_id):
        self.nodes[node_id].kill9()

    def sigstop(self, node_id):
        self.nodes[node_id].pause()

    def sigcont(self, node_id):
        self.nodes[node_id].resume()

    def stop_node(self, node_id, timeout=NODE_STOP_TIMEOUT):
        """SIGTERM (SIGKILL after ``timeout``); True when it exited within the grace period."""
        return self.nodes[node_id].stop(timeout)

    def start_node(self, node_id, wait=True, timeout=None):
        """Starts a stopped node on its data; with ``wait``, returns once it is registered."""
        self.nodes[node_id].start()
        if wait:
            self.wait_registered([node_id], timeout=timeout)

    def restart_node(self, node_id, wait=True, timeout=None):
        self.stop_node(node_id)
        self.start_node(node_id, wait=wait, timeout=timeout)

    def isolate(self, node_id):
        """Cuts node ``node_id`` off from every other node; clients still reach it."""
        if self.network is None:
            raise NetworkUnavailable("isolation needs the cluster to run with network='netns'")
        self.network.isolate(node_id)

    def packet_loss(self, percent):
        """Drops ``percent`` % of the packets between nodes (clients untouched); :meth:`heal`
        ends it."""
        if self.network is None:
            raise NetworkUnavailable("packet loss needs the cluster to run with network='netns'")
        self.network.packet_loss(percent)

    def heal(self, node_id=None):
        if self.network is not None:
            self.network.heal(node_id)

    def restore(self, timeout=None):
        """Undoes every fault: SIGCONT, heal, start the stopped nodes, wait until all registered."""
        for n in self.nodes.values():
            if n.running() and n.paused:
                n.resume()
        self.heal()
        for i, n in self.nodes.items():
            if not n.running():
                n.start()
        self.wait_registered(timeout=timeout)

    # --- views -------------------------------------------------------------------------------------
    def metadata(self, node_id=None, topics=None, timeout=5.0):
        """(brokers, controller_id, topics) as node ``node_id`` (default: the first healthy
        node) sees them; see :func:`metadata_request`."""
        if node_id is None:
            healthy = self.healthy()
            if not healthy:
                raise AssertionError(f"no healthy {self.kind} node to ask")
            node_id = healthy[0]
        n = self.nodes[node_id]
        return metadata_request(n.host, n.port, topics, timeout)

    def registered(self, node_id=None):
        """Broker ids listed in Metadata by ``node_id`` (default: first healthy node)."""
        return set(self.metadata(node_id, topics=[])[0])

    def brokers(self, node_id=None):
        """{id: Broker} as listed in ``node_id``'s Metadata."""
        return self.metadata(node_id, topics=[])[0]

    def wait_registered(self, ids=None, timeout=None, absent=()):
        """Waits until every healthy node lists each node of ``ids`` (default: every node) and
        none of ``absent``."""
        ids = set(self.nodes if ids is None else ids)
        absent = set(absent)
        if timeout is None:
            timeout = KAFKA_START_TIMEOUT if self.kind == "kafka" else STRATA_START_TIMEOUT

        def listed():
            for i in ids:
                n = self.nodes[i]
                if n.pid is not None and not n.running():
                    raise AssertionError(f"{n.what} exited:\n{n.log_tail(30)}")
            views = [self.registered(i) for i in self.healthy()]
            return bool(views) and all(ids <= v and not (absent & v) for v in views)

        wait_until(listed, timeout, f"{self.kind} nodes {sorted(ids)} registered"
                   + (f" and {sorted(absent)} gone" if absent else ""), interval=0.2)

    def partitions(self, topic, node_id=None):
        """{partition: Partition} of ``topic`` in ``node_id``'s view ({} when unknown)."""
        _, _, topics = self.metadata(node_id, topics=[topic])
        err, parts = topics.get(topic, (3, {}))
        return {} if err else parts

    def wait_partitions(self, topic, predicate, what, timeout=60.0, node_id=None):
        """Waits until ``predicate({partition: Partition})`` holds in the view of ``node_id``
        (default: every healthy node); returns the last view."""
        seen = {}

        def holds():
            ids = [node_id] if node_id is not None else self.healthy()
            last = None
            for i in ids:
                parts = self.partitions(topic, i)
                seen["view"] = (i, parts)
                if not parts or not predicate(parts):
                    return None
                last = parts
            return last

        try:
            return wait_until(holds, timeout, f"{what} ({self.kind}, topic {topic})", interval=0.2)
        except AssertionError as e:
            node, parts = seen.get("view", (None, {}))
            view = "; ".join(f"{p}: leader {v.leader} replicas {v.replicas} isr {v.isr}"
                             for p, v in sorted(parts.items()))
            raise AssertionError(f"{e}; the last view (node {node}): {view or 'none'}") from e

    def wait_isr_full(self, topic, timeout=120.0):
        """Waits until every partition of ``topic`` has a leader and all its replicas in the ISR."""
        return self.wait_partitions(
            topic, lambda ps: all(p.leader >= 0 and set(p.isr) == set(p.replicas) for p in ps.values()),
            "every replica in the ISR", timeout)

    def leader(self, topic, partition=0, node_id=None):
        return self.partitions(topic, node_id)[partition].leader

    # --- admin ---------------------------------------------------------------------------------------
    def admin(self):
        """A confluent-kafka AdminClient bootstrapped from the healthy nodes. Quiet through
        ``log_level`` 0, not through a Python ``logger``: an admin client has no poll loop, so
        librdkafka would call that logger from its own threads, also while the client is being
        destroyed (nodes down make it log a lot), which can crash the interpreter."""
        from confluent_kafka.admin import AdminClient
        return AdminClient({"bootstrap.servers": self.healthy_bootstrap(), "socket.timeout.ms": 10000,
                            "log_level": 0})

    def create_topic(self, topic, partitions=3, replication_factor=3, configs=None, assignment=None,
                     timeout=60.0):
        """Creates ``topic`` (``assignment``: a replica list per partition, else ``partitions`` x
        ``replication_factor``) and waits until every partition has a leader and a full ISR.
        Raises the admin error (a KafkaException) when the cluster refuses it."""
        from confluent_kafka.admin import NewTopic
        cfg = {k: str(v) for k, v in (configs or {}).items()}
        if assignment is not None:
            partitions = len(assignment)
            # confluent-kafka wants the partition count beside an explicit assignment
            new = NewTopic(topic, num_partitions=partitions, replica_assignment=[list(a) for a in assignment],
                           config=cfg)
        else:
            new = NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor, config=cfg)
        admin = self.admin()  # held: the futures fail when the client is collected
        admin.create_topics([new], operation_timeout=min(30.0, timeout))[topic].result(timeout)
        self.wait_partitions(topic, lambda ps: len(ps) == partitions and all(
            p.leader >= 0 and set(p.isr) == set(p.replicas) for p in ps.values()),
            f"{partitions} partitions led with full ISR", timeout)

    def alter_topic_config(self, topic, configs, timeout=30.0):
        """IncrementalAlterConfigs SET of ``configs`` on ``topic``."""
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
        res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()])
        admin = self.admin()
        admin.incremental_alter_configs([res])[res].result(timeout)

    def tool(self, name, *args, timeout=120, check=True):
        """A Kafka command-line tool run with ``--bootstrap-server`` set to the healthy nodes."""
        return kafka_tool(name, "--bootstrap-server", self.healthy_bootstrap(), *args, timeout=timeout,
                          check=check)

    def quorum_status(self):
        """``kafka-metadata-quorum describe --status`` parsed: {'LeaderId': int, 'LeaderEpoch': int,
        'HighWatermark': int, 'CurrentVoters': [ids], 'CurrentObservers': [ids], ...}."""
        out = self.tool("metadata-quorum", "describe", "--status", timeout=60).stdout
        return parse_quorum_status(out)

    # --- files ---------------------------------------------------------------------------------------
    def partition_dir(self, node_id, topic, partition):
        return self.nodes[node_id].data_dir / f"{topic}-{partition}"

    def log_tails(self, lines=40):
        return "\n".join(f"--- {n.what} ({n.log_path})\n{n.log_tail(lines)}" for n in self.nodes.values())

    def __repr__(self):
        return f"<Cluster {self.kind} x{self.size} {self.bootstrap()}>"


def parse_quorum_status(text):
    """Parses the ``Key: value`` lines of ``kafka-metadata-quorum describe --status``."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in ("CurrentVoters", "CurrentObservers"):
            ids = re.findall(r'"id":\s*(-?\d+)', value)
            if not ids:  # older format: [1,2,3]
                ids = re.findall(r"-?\d+", value)
            out[key] = [int(i) for i in ids]
        elif re.fullmatch(r"-?\d+", value):
            out[key] = int(value)
        else:
            out[key] = value
    return out


def make_cluster(kind, work_dir, brokers=3, racks=None, props=None, voters=3, network="loopback",
                 binary=None, sasl=False, secure_nodes=None, node_auth="sasl"):
    """A (not yet started) cluster of ``brokers`` ``kind`` nodes ("strata" or "kafka"); the first
    ``voters`` are controller voters. ``racks``: "a,b,c" or a list, node i gets racks[(i-1) % len].
    ``network``: "loopback" or "netns" (see the module docstring). ``sasl``: every node also
    serves SASL_PLAINTEXT with PLAIN (users of ``harness.sasl.PLAIN_USERS``), on loopback.
    ``secure_nodes`` (a :class:`harness.tls.Certs`): the nodes' own traffic (replication, the
    controller quorum) runs over SASL_SSL listeners (``node_auth`` "sasl") or SSL listeners that
    require client certificates ("mtls"), on loopback."""
    return Cluster(kind, work_dir, brokers=brokers, racks=racks, props=props, voters=voters,
                   network=network, binary=binary, sasl=sasl, secure_nodes=secure_nodes,
                   node_auth=node_auth)


def netns_available():
    """None when a namespace network can be built here, else the reason (the failing command)."""
    net = BridgeNetwork(1)
    try:
        net.open()
    except NetworkUnavailable as e:
        return str(e)
    finally:
        net.close()
    return None
