"""Fixtures of the replicated-cluster suites (tests/cluster): every scenario runs against a Strata
cluster and against the reference Apache Kafka cluster (STRATA_TARGETS=strata,kafka restricts
the targets).

- ``target_kind``: ``STRATA_CLUSTER_TARGETS`` (default: ``STRATA_TARGETS``); package-scoped
  here (the plugin's is per module), so that one cluster of each kind serves every module: pytest runs all scenarios of one kind, then all of the other, and
  stops each cluster once its last scenario is done (not at the end of the whole session).
- ``cluster``: ONE cluster per kind for the suite: 6 nodes, racks a,b,c (node i in rack
  "abc"[(i-1) % 3]: a = {1, 4}, b = {2, 5}, c = {3, 6}), nodes 1-3 controller voters (combined
  mode), 4-6 brokers only, CLUSTER_PROPS (RF 3, min.insync.replicas 2, broker session 4 s,
  replica lag 6 s, Kafka's rack-aware replica selector). Each node has its own network
  namespace when the machine allows it (see harness/netns.py); otherwise loopback, and
  ``cluster.network_unavailable`` says why.
- ``healthy_cluster``: the same cluster, with every fault undone before and after the test
  (SIGCONT, heal, restart what is down, wait until all 6 are registered), so that a failing
  scenario does not fail the next ones.

A cluster that does not form (a node exits, a partial cluster, nodes that each list only
themselves) fails every scenario of its kind with each node's view.

A failing test shows the tail of every node's log. Figures (failover times, losses under unclean
election) are printed at the end of the run and written to tests/.work/cluster-figures.jsonl.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.pytest_plugin import *  # noqa: E402,F401,F403  (hooks: outcome recording)
from harness.pytest_plugin import ALL_TARGETS, TARGETS  # noqa: E402
from harness.cluster import CLUSTER_PROPS, make_cluster, netns_available  # noqa: E402
from harness.replication import FIGURES_PATH, print_figures  # noqa: E402

# STRATA_CLUSTER_TARGETS narrows this suite alone (the test command runs the Kafka reference of
# this suite in a second pytest beside the others: it mostly waits on restarts and faults); set
# but empty, this suite runs nothing.
_cluster_targets = os.environ.get("STRATA_CLUSTER_TARGETS")
CLUSTER_TARGETS = [t.strip() for t in (",".join(TARGETS) if _cluster_targets is None else _cluster_targets).split(",")
                   if t.strip()]
if not set(CLUSTER_TARGETS) <= set(ALL_TARGETS):
    raise pytest.UsageError(f"STRATA_CLUSTER_TARGETS names unknown targets {CLUSTER_TARGETS}; known: {list(ALL_TARGETS)}")

BROKERS = 6
RACKS = "a,b,c"
STRATA_FORM_TIMEOUT = 60.0  # a Strata cluster that finds itself: elections, registrations

_netns_reason = []


def _network():
    if not _netns_reason:
        _netns_reason.append(netns_available())
    return "netns" if _netns_reason[0] is None else "loopback"


@pytest.fixture(scope="package", params=CLUSTER_TARGETS, ids=CLUSTER_TARGETS)
def target_kind(request):  # noqa: F811  (session-scoped override of the plugin's fixture)
    """The implementation under test: "strata" or "kafka"."""
    return request.param


@pytest.fixture(scope="package")
def cluster(target_kind, tmp_path_factory):
    """The suite's 6-node cluster of ``target_kind`` (see the module docstring)."""
    network = _network()
    c = make_cluster(target_kind, tmp_path_factory.mktemp(f"{target_kind}-cluster"), brokers=BROKERS,
                     racks=RACKS, props=CLUSTER_PROPS, network=network)
    c.network_unavailable = _netns_reason[0]
    try:
        if target_kind == "strata":
            c.start(timeout=STRATA_FORM_TIMEOUT)
        else:
            c.start()
    except BaseException:
        c.close()
        raise
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def healthy_cluster(cluster):
    """The suite's cluster with every fault undone before and after the test."""
    cluster.restore()
    yield cluster
    cluster.restore()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: F811  (this suite's version of the plugin hook)
    outcome = yield
    report = outcome.get_result()
    if report.failed and hasattr(item, "funcargs"):
        c = item.funcargs.get("healthy_cluster") or item.funcargs.get("cluster")
        if c is not None and hasattr(c, "log_tails"):
            report.sections.append((f"{c.kind} cluster node logs", c.log_tails(40)))


def pytest_sessionstart(session):
    try:
        FIGURES_PATH.unlink()
    except FileNotFoundError:
        pass


def pytest_terminal_summary(terminalreporter):
    if FIGURES_PATH.exists():
        terminalreporter.write_sep("-", "replicated-cluster figures (measured, not asserted)")
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            print_figures(FIGURES_PATH)
        terminalreporter.write(buf.getvalue())
