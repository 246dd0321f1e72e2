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
# modules, the node runtime, buildah: tests/run.sh), and how long one of their tests waits for it.
NEEDS_KUBERNETES = {"e2e", "deploy", "image", "nodes"}
KUBERNETES_INSTALL_TIMEOUT = 45 * 60
_kubernetes_installed = False


def _wait_for_kubernetes_installs() -> None:
    """Waits until the install chain named by STRATA_K8S_INSTALLS (a status file: running, done
    or "failed NAME") is done; fails the test with the failed step's log. Without the variable
    (pytest run by hand) the installs are taken as done."""
    global _kubernetes_installed
    status_file = os.environ.get("STRATA_K8S_INSTALLS")
    if _kubernetes_installed or not status_file:
        return
    started = time.monotonic()
    while True:
        status = Path(status_file).read_text().strip() if Path(status_file).exists() else "done"
        if status == "done":
            waited = time.monotonic() - started
            if waited > 1:
                print(f"\n(waited {waited:.0f} s for the Kubernetes installs)")
            _kubernetes_installed = True
            return
        if status.startswith("failed"):
            name = status.split(" ", 1)[-1]
            log = Path(status_file).parent / f"install-{name}.log"
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]) if log.exists() else ""
            pytest.fail(f"install step {name} failed ({log}):\n{tail}", pytrace=False)
        if time.monotonic() - started > KUBERNETES_INSTALL_TIMEOUT:
            pytest.fail(f"the Kubernetes installs did not finish within {KUBERNETES_INSTALL_TIMEOUT} s "
                        f"({status_file}: {status})", pytrace=False)
        time.sleep(2)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    suite = Path(item.path).resolve().relative_to(Path(__file__).resolve().parent).parts[0]
    if suite in NEEDS_KUBERNETES:
        _wait_for_kubernetes_installs()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    gc.collect()
