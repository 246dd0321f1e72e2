"""Broker metrics and health endpoints on the shared 6-node cluster (Strata only: Apache Kafka
exposes JMX MBeans, not a Prometheus endpoint, so the kafka parameter is skipped).

Proves, on the live brokers' ``strata.metrics.address``: every metric the README lists is served
(and ``/healthz`` answers); exactly one broker reports itself the active controller; client bytes
in / out per topic, replication bytes, request counts and log sizes move under a real producer
and consumer; a SIGSTOPped follower makes its leader report an under-replicated partition and an
ISR shrink, and SIGCONT brings the count back with an ISR expansion; with both followers
SIGSTOPped the leader reports the partition under min.insync.replicas and counts the
NOT_ENOUGH_REPLICAS it answers to an acks=all Produce (``strata_broker_request_errors_total``),
and once the leader is killed too every live broker reports the partition offline, both gauges
returning to their earlier values when the nodes are back; killing the active controller moves
``strata_broker_active_controller`` to another voter; ``/readyz`` answers 503 with
a reason while a node is cut off from the controller (fenced) and while it restarts unregistered,
and 200 once it has rejoined; the group coordinator reports a consumer group's lag after it
commits behind the log end, on a partition it hosts and on one hosted elsewhere; and the Grafana dashboard of the chart references only metric names
that a Strata process exports (the live broker's, plus those the mirror and operator register).

The topics live on the broker-only nodes 4, 5, 6 where a fault is involved, so the controller
quorum (1-3) stays whole."""
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import unique_topic, wait_until
from harness.metrics import metric_sum, parse_metrics
from harness.replication import produce_sync, read_back

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "strata-operator" / "dashboards" / "strata.json"
# Where the other Strata processes register their metric families (name, help, metric).
OTHER_EXPORTERS = [ROOT / "crates" / "strata-mirror" / "src" / "metrics.rs",
                   ROOT / "crates" / "strata-operator" / "src" / "metrics.rs"]

# The broker metrics the README's Metrics section lists (families, as their # TYPE line names them).
LISTED = {
    "strata_broker_request_duration_seconds": "histogram",
    "strata_broker_topic_bytes_in": "counter",
    "strata_broker_topic_bytes_out": "counter",
    "strata_broker_replication_bytes_in": "counter",
    "strata_broker_replication_bytes_out": "counter",
    "strata_broker_isr_shrinks": "counter",
    "strata_broker_isr_expands": "counter",
    "strata_broker_produce_purgatory_size": "gauge",
    "strata_broker_fetch_purgatory_size": "gauge",
    "strata_broker_partitions": "gauge",
    "strata_broker_leader_partitions": "gauge",
    "strata_broker_under_replicated_partitions": "gauge",
    "strata_broker_under_min_isr_partitions": "gauge",
    "strata_broker_offline_partitions": "gauge",
    "strata_broker_active_controller": "gauge",
    "strata_broker_unclean_leader_elections": "counter",
    "strata_broker_log_size_bytes": "gauge",
    "strata_broker_consumer_group_lag": "gauge",
    "strata_broker_log_segment_files_open": "gauge",
    "strata_broker_log_segment_files_budget": "gauge",
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
REPLICAS = [4, 5, 6]  # leader 4 (preferred), followers 5 and 6
RECORDS = 300


@pytest.fixture
def strata(target_kind, request):
    """The suite's healthy cluster when it is Strata's; skips the Kafka reference."""
    if target_kind != "strata":
        pytest.skip("Apache Kafka has no Prometheus endpoint (its metrics are JMX MBeans); "
                    "the broker's /metrics, /healthz and /readyz are Strata's")
    return request.getfixturevalue("healthy_cluster")


def http_get(url, timeout=5.0):
    """(status, body) of a GET; an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def exposition(c, node_id):
    status, text = http_get(c.node(node_id).metrics_url("/metrics"))
    assert status == 200, f"node {node_id} /metrics answered {status}: {text[:200]}"
    return text


def samples(c, node_id):
    return parse_metrics(exposition(c, node_id))


def families(text):
    """{family: type} from the # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def value(c, node_id, name, **labels):
    """Sum of the matching samples of one node (0 when none)."""
    return metric_sum(samples(c, node_id), name, **labels) or 0.0


def readyz(c, node_id):
    try:
        return http_get(c.node(node_id).metrics_url("/readyz"), timeout=2.0)
    except OSError as e:  # not listening yet, or the namespace is being set up
        return None, str(e)


@pytest.mark.timeout(300)
def test_every_listed_metric_is_served_and_moves_under_load(strata):
    c = strata
    wait_until(lambda: sum(value(c, i, "strata_broker_active_controller") for i in c.nodes) == 1, 30,
               "exactly one broker reporting itself the active controller")
    active = [i for i in c.nodes if value(c, i, "strata_broker_active_controller") == 1]
    assert set(active) <= set(c.voters), f"active controller {active} is not a voter {c.voters}"

    topic = unique_topic("metrics-load")
    c.create_topic(topic, assignment=[REPLICAS])
    before = {i: samples(c, i) for i in REPLICAS}
    values = [f"m.{i}.{'x' * 90}" for i in range(RECORDS)]
    acks, errors = produce_sync(c.healthy_bootstrap(), topic, values)
    assert not errors and len(acks) == RECORDS, errors
    assert len(read_back(c.healthy_bootstrap(), topic)[0]) == RECORDS
    payload = sum(len(v) for v in values)

    def moved(node, name, **labels):
        return value(c, node, name, **labels) - (metric_sum(before[node], name, **labels) or 0.0)

    leader = REPLICAS[0]
    assert moved(leader, "strata_broker_topic_bytes_in_total", topic=topic) >= payload
    assert moved(leader, "strata_broker_topic_bytes_out_total", topic=topic) >= payload
    assert moved(leader, "strata_broker_request_duration_seconds_count", api="Produce") >= 1
    assert moved(leader, "strata_broker_request_duration_seconds_count", api="Fetch") >= 1
    assert moved(leader, "strata_broker_replication_bytes_out_total") >= 2 * payload
    for follower in REPLICAS[1:]:
        # Followers fetched the batches: replication bytes in, no client bytes in.
        assert moved(follower, "strata_broker_replication_bytes_in_total") >= payload
        assert moved(follower, "strata_broker_topic_bytes_in_total", topic=topic) == 0
    for i in REPLICAS:
        wait_until(lambda: value(c, i, "strata_broker_log_size_bytes", topic=topic, partition=0) >= payload, 30,
                   f"node {i} reporting the log size of {topic}-0")
    assert value(c, leader, "strata_broker_leader_partitions") >= 1
    assert value(c, leader, "strata_broker_partitions") >= value(c, leader, "strata_broker_leader_partitions")
    assert value(c, 1, "strata_broker_log_size_bytes", topic=topic) == 0, "node 1 hosts no replica of it"
    # Every listed family is served by the leader, which saw every cause (a family of labelled
    # series, such as bytes per topic, is described once it has a series).
    served = families(exposition(c, leader))
    missing = {n: t for n, t in LISTED.items() if served.get(n) != t}
    assert not missing, f"node {leader} does not serve {missing} (its families: {sorted(served)})"
    for i in c.nodes:
        assert http_get(c.node(i).metrics_url("/healthz")) == (200, "ok")


@pytest.mark.timeout(300)
def test_sigstopped_follower_shows_as_under_replicated_and_isr_shrink(strata):
    c = strata
    topic = unique_topic("metrics-urp")
    c.create_topic(topic, assignment=[REPLICAS])
    leader = REPLICAS[0]
    wait_until(lambda: value(c, leader, "strata_broker_under_replicated_partitions") == 0, 60,
               f"no under-replicated partition on node {leader} before the fault")
    shrinks = value(c, leader, "strata_broker_isr_shrinks_total")
    expands = value(c, leader, "strata_broker_isr_expands_total")

    c.sigstop(5)
    c.wait_partitions(topic, lambda ps: set(ps[0].isr) == {4, 6}, "follower 5 out of the ISR", timeout=90)
    wait_until(lambda: value(c, leader, "strata_broker_under_replicated_partitions") >= 1, 30,
               f"node {leader} reporting an under-replicated partition")
    assert value(c, leader, "strata_broker_isr_shrinks_total") > shrinks
    # ISR 2 = min.insync.replicas 2: under-replicated, not under min ISR.
    assert value(c, leader, "strata_broker_under_min_isr_partitions") == 0
    produce_sync(c.healthy_bootstrap(), topic, [f"u.{i}" for i in range(20)])

    c.sigcont(5)
    c.wait_isr_full(topic)
    wait_until(lambda: value(c, leader, "strata_broker_under_replicated_partitions") == 0, 60,
               f"node {leader} reporting no under-replicated partition after SIGCONT")
    assert value(c, leader, "strata_broker_isr_expands_total") > expands


def cluster_max(c, name, nodes):
    """The largest value of a gauge over ``nodes`` (every broker reports the cluster-wide count
    of its image; Kafka's dashboards take the max too)."""
    return max(value(c, i, name) for i in nodes)


@pytest.mark.timeout(300)
def test_under_min_isr_and_offline_partitions_follow_their_cause(strata):
    c = strata
    topic = unique_topic("metrics-offline")
    c.create_topic(topic, assignment=[REPLICAS], configs={"unclean.leader.election.enable": "false"})
    leader, others = REPLICAS[0], [1, 2, 3]
    wait_until(lambda: value(c, leader, "strata_broker_under_min_isr_partitions") == 0, 60,
               f"node {leader}: nothing under min ISR before the faults")
    offline_before = cluster_max(c, "strata_broker_offline_partitions", others)
    refused_before = value(c, leader, "strata_broker_request_errors_total", api="Produce", error="NOT_ENOUGH_REPLICAS")

    # 1. Both followers stopped: ISR {4} < min.insync.replicas 2.
    c.sigstop(5)
    c.sigstop(6)
    c.wait_partitions(topic, lambda ps: ps[0].isr == [4], "ISR shrunk to the leader", timeout=90,
                      node_id=others[0])
    wait_until(lambda: value(c, leader, "strata_broker_under_min_isr_partitions") >= 1, 30,
               f"node {leader} reporting a partition under min ISR")
    acks, errors = produce_sync(c.bootstrap([leader]), topic, ["m.0"])
    assert errors == ["NOT_ENOUGH_REPLICAS"], errors
    wait_until(lambda: value(c, leader, "strata_broker_request_errors_total", api="Produce",
                             error="NOT_ENOUGH_REPLICAS") > refused_before, 10,
               f"node {leader} counting the NOT_ENOUGH_REPLICAS it answered")

    # 2. The last ISR member killed: no leader; every live broker reports it offline.
    c.kill9(leader)
    c.wait_partitions(topic, lambda ps: ps[0].leader == -1, "no leader", node_id=others[0])
    wait_until(lambda: all(value(c, i, "strata_broker_offline_partitions") >= offline_before + 1 for i in others),
               30, f"nodes {others} reporting {topic}-0 offline")

    # 3. Everything back: the partition leads again and both gauges return.
    c.sigcont(5)
    c.sigcont(6)
    c.start_node(leader)
    c.wait_isr_full(topic)
    wait_until(lambda: cluster_max(c, "strata_broker_offline_partitions", c.nodes) == offline_before, 60,
               "offline partitions back to their earlier count")
    wait_until(lambda: value(c, leader, "strata_broker_under_min_isr_partitions") == 0, 60,
               f"node {leader}: nothing under min ISR once the followers are back")


@pytest.mark.timeout(300)
def test_active_controller_moves_when_the_controller_is_killed(strata):
    c = strata

    def active():
        return [i for i in c.healthy() if value(c, i, "strata_broker_active_controller") == 1]

    first = wait_until(lambda: (lambda a: a[0] if len(a) == 1 else None)(active()), 30,
                       "exactly one broker reporting itself the active controller")
    c.kill9(first)
    second = wait_until(lambda: (lambda a: a[0] if len(a) == 1 else None)(active()), 60,
                        f"another voter reporting itself the active controller after node {first} was killed")
    assert second != first and second in c.voters, (first, second)
    c.start_node(first)
    wait_until(lambda: sum(value(c, i, "strata_broker_active_controller") for i in c.nodes) == 1, 30,
               f"exactly one active controller once node {first} is back")


@pytest.mark.timeout(300)
def test_readyz_is_503_while_fenced_or_unregistered_and_200_after_rejoining(strata):
    c = strata
    if c.network is None:
        pytest.skip(f"cutting a node off from the controller needs network namespaces: "
                    f"{c.network_unavailable}")
    for i in c.nodes:
        wait_until(lambda: readyz(c, i) == (200, "ready"), 30, f"node {i} ready")
    node = 6
    # 1. Cut off from the controller: its heartbeats go unanswered, the controller fences it.
    c.isolate(node)
    status, reason = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(readyz(c, node)), 60,
                                f"node {node} not ready while isolated")
    assert "heartbeat" in reason, reason
    # 2. Restarted while still cut off: it cannot register.
    c.kill9(node)
    c.start_node(node, wait=False)
    status, reason = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(readyz(c, node)), 60,
                                f"node {node} answering /readyz after its restart")
    assert "not registered" in reason, reason
    # 3. Reachable again: it registers, catches up, is unfenced, and is ready.
    c.heal(node)
    wait_until(lambda: readyz(c, node) == (200, "ready"), 60, f"node {node} ready after rejoining")
    c.wait_registered()


@pytest.mark.timeout(300)
def test_group_lag_from_the_coordinator(strata):
    from confluent_kafka import Consumer, TopicPartition
    c = strata
    hosted, elsewhere = unique_topic("metrics-lag"), unique_topic("metrics-lag-remote")
    group = unique_topic("metrics-group")
    # A replica on every node: whichever broker coordinates the group hosts this partition.
    c.create_topic(hosted, assignment=[list(c.nodes)])
    acks, errors = produce_sync(c.healthy_bootstrap(), hosted, [f"l.{i}" for i in range(20)])
    assert not errors and len(acks) == 20, errors
    consumer = Consumer({"bootstrap.servers": c.healthy_bootstrap(), "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(hosted, 0, 5)], asynchronous=False)

        def current_coordinator():
            # A new client each time: in a full run one client got NOT_COORDINATOR for 90 s
            # after the group had moved, although the new coordinator had loaded it.
            admin = c.admin()
            return admin.describe_consumer_groups([group], request_timeout=20)[group].result(30).coordinator.id

        # The coordinator is asked each time: the cluster's automatic leader rebalance may move
        # the group's __consumer_offsets partition (and so the group) while the test runs (seen
        # in a full run: the preferred leader of the group's partition came back from a restart
        # as the scenario began).
        coordinators = []

        def lag():
            coordinators.append(current_coordinator())
            return metric_sum(samples(c, coordinators[-1]), "strata_broker_consumer_group_lag", group=group)

        wait_until(lambda: lag() == 15, 30, f"the coordinator reporting lag 15 for {group}")
        coordinator = coordinators[-1]
        others = [i for i in c.nodes if i != coordinator]
        assert all(metric_sum(samples(c, i), "strata_broker_consumer_group_lag", group=group) is None
                   for i in others), "only the coordinator reports the group"

        # A partition with no replica on the coordinator: its leader's high watermark counts.
        c.create_topic(elsewhere, assignment=[others[:3]])
        acks, errors = produce_sync(c.healthy_bootstrap(), elsewhere, [f"r.{i}" for i in range(10)])
        assert not errors and len(acks) == 10, errors
        consumer.commit(offsets=[TopicPartition(elsewhere, 0, 4)], asynchronous=False)
        # the coordinator samples the leaders every 5 s, one after another (each request bounded
        # by 5 s): on a loaded machine a round can take several sampling periods
        seen = []

        def lag_is(value):
            seen.append(lag())
            return seen[-1] == value
        try:
            wait_until(lambda: lag_is(15 + 6), 90,
                       f"the coordinator counting {elsewhere} (on {others[:3]}) in the lag")
        except AssertionError as e:
            raise AssertionError(f"{e}; lag last seen {seen[-1:]} on coordinator {coordinators[-1:]}") from None

        consumer.commit(offsets=[TopicPartition(hosted, 0, 20), TopicPartition(elsewhere, 0, 10)],
                        asynchronous=False)
        wait_until(lambda: lag() == 0, 30, f"lag 0 once {group} committed the log ends")
    finally:
        consumer.close()


def exported_names(broker_text):
    """Every sample name a Strata process can serve: the live broker's families with their
    type's suffixes, and the families the mirror and the operator register (any suffix)."""
    names = set()
    for family, kind in families(broker_text).items():
        names.update(family + s for s in SUFFIXES.get(kind, ("",)))
    names.update(n for n, _, _ in parse_metrics(broker_text))
    for source in OTHER_EXPORTERS:
        text = source.read_text()
        prefix = re.search(r'Registry::with_prefix\("([a-z_]+)"\)', text).group(1)
        registered = re.findall(r'\.register\(\s*"([a-z0-9_]+)"', text)
        assert registered, f"no metric registered in {source}?"
        for r in registered:
            names.update(f"{prefix}_{r}{s}" for s in ("", "_total", "_bucket", "_sum", "_count"))
    return names


def test_dashboard_references_only_exported_metrics(strata):
    c = strata
    # Traffic on a topic led by node 4, so that every broker family has series there.
    topic = unique_topic("metrics-dashboard")
    c.create_topic(topic, assignment=[REPLICAS])
    acks, errors = produce_sync(c.healthy_bootstrap(), topic, ["d.0", "d.1"])
    assert not errors and len(acks) == 2, errors
    assert len(read_back(c.healthy_bootstrap(), topic)[0]) == 2
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {n for e in exprs for n in re.findall(r"\b(strata_[a-z0-9_]+)\b", e)}
    assert len(used) >= 20, sorted(used)
    exported = exported_names(exposition(c, REPLICAS[0]))
    unknown = sorted(used - exported)
    assert not unknown, f"the dashboard uses metrics no Strata process exports: {unknown}"
    for prefix in ("strata_broker_", "strata_mirror_", "strata_operator_"):
        assert any(n.startswith(prefix) for n in used), f"no {prefix}* panel"
