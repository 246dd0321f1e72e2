"""Shared by every suite: Python's cyclic garbage collector runs only between tests, on the main
thread.

The suites use confluent-kafka (librdkafka) clients in the test process. librdkafka runs its
callbacks (delivery reports, admin results, logs) on its own threads; a collection that starts
in such a callback can free a client that sits in a reference cycle there, and librdkafka does
not survive a handle destroyed from one of its own threads (confluent-kafka-python issue 1761,
the reason for gc.disable() in that project's own admin tests). Reference counting still frees
everything else at once; cycles wait for the collection after each test.
"""
import gc
import os
import time
from pathlib import Path

import pytest

gc.disable()

# The suites that need what the test command's second install chain builds (Kubernetes from Go
# modules, the node runtime, buildah: tests/run.sh), and how long their first test waits for it.
NEEDS_KUBERNETES = {"e2e", "deploy", "image", "nodes"}
KUBERNETES_INSTALL_TIMEOUT = 45 * 60
TESTS = Path(__file__).resolve().parent
_kubernetes_waited = False


def _kubernetes_installs() -> str:
    """The install chain's status from the file STRATA_K8S_INSTALLS names (running, done or
    "failed NAME"); "done" without the variable (pytest run by hand) or the file."""
    status_file = os.environ.get("STRATA_K8S_INSTALLS")
    if not status_file or not Path(status_file).exists():
        return "done"
    return Path(status_file).read_text().strip() or "running"


def _needs_kubernetes(item) -> bool:
    try:
        return Path(item.path).resolve().relative_to(TESTS).parts[0] in NEEDS_KUBERNETES
    except ValueError:
        return False


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Waits for the Kubernetes installs before the first test that needs them, outside the
    test's own timeout (pytest-timeout counts setup): once per session, up to
    KUBERNETES_INSTALL_TIMEOUT."""
    global _kubernetes_waited
    if not _kubernetes_waited and _needs_kubernetes(item):
        _kubernetes_waited = True
        started = time.monotonic()
        while (_kubernetes_installs() == "running"
               and time.monotonic() - started < KUBERNETES_INSTALL_TIMEOUT):
            time.sleep(2)
        waited = time.monotonic() - started
        if waited > 1:
            print(f"\n(waited {waited:.0f} s for the Kubernetes installs)")
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test that needs the Kubernetes installs fails with the failed step's log, or says that
    they did not finish in time."""
    if not _needs_kubernetes(item):
        return
    status = _kubernetes_installs()
    if status.startswith("failed"):
        name = status.split(" ", 1)[-1]
        log = Path(os.environ["STRATA_K8S_INSTALLS"]).parent / f"install-{name}.log"
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]) if log.exists() else ""
        pytest.fail(f"install step {name} failed ({log}):\n{tail}", pytrace=False)
    if status != "done":
        pytest.fail(f"the Kubernetes installs did not finish within {KUBERNETES_INSTALL_TIMEOUT} s "
                    f"({os.environ.get('STRATA_K8S_INSTALLS')}: {status})", pytrace=False)
