"""Fixtures of the end-to-end suites on the real Kubernetes control plane of tests/env/k8s/.

- ``cp``: ONE control plane per test session (etcd, kube-apiserver, controller-manager, scheduler,
  kwok nodes in zone-a/b/c, 12 zoned local PVs per zone), shared by every operator module; a
  watchdog takes it down when the test process dies without its teardown. (test_control_plane.py
  still brings up its own: its module-scoped ``cp`` overrides this one.)
- ``namespaces`` / ``module_namespaces``: ``make(name)`` creates a fresh namespace, deleted at the
  end of the test / module (see harness/kube.py: CRD install, namespaces, conditions, events).
- ``operators`` / ``module_operators``: ``start(holder_id=..., **OperatorProcess kwargs)`` runs the
  operator binary out of cluster (admin kubeconfig unless ``kubeconfig=`` says otherwise), logging
  to tests/.work/operator-e2e/<test or module>-<holder>.log; all are stopped by PID at the end of
  the test / module. A failing test shows the tail of every running operator's log and the state
  and events of the namespaces that exist.
- ``target_kind`` / ``broker``: the real brokers of tests/harness (Strata and the reference Kafka;
  STRATA_TARGETS restricts them).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "env" / "k8s"))

from controlplane import ControlPlane  # noqa: E402
from harness import kube  # noqa: E402
from harness.kube import Namespaces  # noqa: E402
from harness.operator import STOP_TIMEOUT, OperatorProcess  # noqa: E402
from harness.pytest_plugin import broker, target_kind  # noqa: E402,F401  (fixtures)

OPERATOR_LOGS = REPO / "tests" / ".work" / "operator-e2e"

_live_operators: list[OperatorProcess] = []  # for failure reports

@pytest.fixture(scope="session")
def cp(tmp_path_factory):
    """The session's Kubernetes control plane: 3 zones x 2 kwok nodes, 12 local PVs per zone."""
    plane = ControlPlane(tmp_path_factory.mktemp("k8s"), zones=3, nodes_per_zone=2, pvs_per_zone=12)
    plane.down_when_gone(os.getpid())
    try:
        try:
            plane.up()
        except RuntimeError as first:
            # seen once: kwok exiting at start without a word (a port taken between cluster.sh
            # picking it and kwok binding it); one more try with fresh ports
            print(f"\ncontrol plane did not come up, retrying once: {first}")
            plane.down()
            plane.up()
        print(f"\ncontrol plane up in {plane.up_seconds:.1f}s ({plane.dir})")
        yield plane
    finally:
        plane.down()


@pytest.fixture
def namespaces(cp):
    ns = Namespaces(cp)
    yield ns
    ns.cleanup()


@pytest.fixture(scope="module")
def module_namespaces(cp):
    ns = Namespaces(cp)
    yield ns
    ns.cleanup()


# --- operators ----------------------------------------------------------------------------------

class Operators:
    """Starts operator processes on the admin kubeconfig (or another one) and stops them all."""

    def __init__(self, cp: ControlPlane, label: str):
        self.cp = cp
        self.label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        self.started: list[OperatorProcess] = []

    def start(self, holder_id: str = "e2e", kubeconfig=None, **kw) -> OperatorProcess:
        log = OPERATOR_LOGS / f"{self.label}-{holder_id}.log"
        if not any(o.log_path == log for o in self.started) and log.exists():
            log.unlink()  # a fresh log per run; restarts within the run append
        op = OperatorProcess(kubeconfig or self.cp.kubeconfig, log, holder_id=holder_id,
                             env=self.cp.env, **kw)
        self.started.append(op)
        _live_operators.append(op)
        return op.start()

    def stop(self, op: OperatorProcess) -> None:
        """SIGTERM (SIGKILL after the grace period). An operator that was running must exit 0:
        shutting down is part of its job (it releases the Lease on the way)."""
        was_running = op.running()
        code = op.stop()
        if op in _live_operators:
            _live_operators.remove(op)
        if was_running and code != 0:
            what = (f"did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM (SIGKILLed)" if op.killed
                    else f"exited with {code} on SIGTERM")
            raise AssertionError(f"operator {op.holder_id} {what}; log {op.log_path}:\n{op.log_tail(25)}")

    def stop_all(self) -> None:
        errors = []
        for op in reversed(self.started):
            try:
                self.stop(op)
            except AssertionError as e:  # stop every operator even when one fails
                errors.append(e)
        self.started.clear()
        if errors:
            raise errors[0]


@pytest.fixture
def operators(cp, request):
    ops = Operators(cp, request.node.name)
    yield ops
    ops.stop_all()


@pytest.fixture(scope="module")
def module_operators(cp, request):
    ops = Operators(cp, Path(str(request.node.fspath)).stem)
    yield ops
    ops.stop_all()


# --- failure reports ----------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for op in list(_live_operators):
        report.sections.append((f"operator {op.holder_id} log ({op.log_path})", op.log_tail(30)))
    b = item.funcargs.get("broker") if hasattr(item, "funcargs") else None
    if b is not None and hasattr(b, "log_tail"):
        report.sections.append((f"{b.kind} broker log ({b.log_path})", b.log_tail(40)))
    for plane, ns in list(kube.live_namespaces):
        report.sections.append((f"namespace {ns}", kube.namespace_report(plane, ns)))
