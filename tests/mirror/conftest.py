"""Fixtures of the mirror suites: Strata brokers to mirror between, and strata-mirror processes,
all stopped when the test ends (and killed by a watchdog if the test process dies first).

- ``work_dir``: a fresh directory per test.
- ``strata_pair``: two started Strata brokers, ``a`` (source) and ``b`` (target), as a named
  pair (``a, b = strata_pair`` or ``strata_pair.a``).
- ``strata_factory``: ``make(name, props=None, **kwargs)`` -> one more started Strata broker
  (``kwargs`` as for StrataBroker: ``port``, ``advertised_port``).
- ``mirror_factory``: ``make(config=None, *, name="mirror", start=True, **kwargs)`` -> a
  MirrorProcess (started unless ``start=False``), stopped at teardown; a failing test gets the
  tail of every mirror log and broker log in its report.
"""
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.brokers import StrataBroker  # noqa: E402
from harness.mirror import MirrorProcess  # noqa: E402

# Quick group joins, few internal partitions; topics exist only when a test or the mirror creates
# them, so a topic auto-created by a stray produce or fetch cannot hide a mirror bug.
MIRROR_BROKER_PROPS = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "num.partitions": "1",
    "auto.create.topics.enable": "false",
}


class StrataPair(NamedTuple):
    a: StrataBroker
    b: StrataBroker


def _stop_all(things):
    errors = []
    for t in reversed(things):
        try:
            t.stop()
        except Exception as e:  # stop everything even when one of them fails to stop
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def work_dir(tmp_path):
    """A fresh directory for the test's processes."""
    return tmp_path


@pytest.fixture
def strata_factory(tmp_path_factory, request):
    """``make(name, props=None, **kwargs)`` -> a started Strata broker with MIRROR_BROKER_PROPS
    overridden by ``props`` (``kwargs`` as for StrataBroker); all stopped when the test ends."""
    made = []
    request.node._mirror_brokers = made

    def make(name="broker", props=None, **kwargs):
        merged = dict(MIRROR_BROKER_PROPS)
        merged.update({k: str(v) for k, v in (props or {}).items()})
        b = StrataBroker(tmp_path_factory.mktemp(f"strata-{name}"), merged, **kwargs)
        b.name = name
        made.append(b)
        b.start()
        return b

    yield make
    _stop_all(made)


@pytest.fixture
def strata_pair(strata_factory):
    """Two started Strata brokers: ``a`` (source) and ``b`` (target)."""
    return StrataPair(strata_factory("a"), strata_factory("b"))


@pytest.fixture
def mirror_factory(tmp_path_factory, request):
    """``make(config=None, *, name="mirror", start=True, **kwargs)`` -> a MirrorProcess in a
    directory of its own (``kwargs`` as for MirrorProcess: mm2_properties, source, target,
    ordinal, replicas, binary, env), started unless ``start=False``; every mirror is stopped
    (SIGTERM, then SIGKILL) when the test ends."""
    made = []
    request.node._mirror_processes = made

    def make(config=None, *, name="mirror", start=True, **kwargs):
        m = MirrorProcess(tmp_path_factory.mktemp(name), config, **kwargs)
        made.append(m)
        if start:
            m.start()
        return m

    yield make
    _stop_all(made)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for m in getattr(item, "_mirror_processes", []):
            report.sections.append((f"strata-mirror log ({m.log_path})", m.log_tail(60)))
        for b in getattr(item, "_mirror_brokers", []):
            report.sections.append((f"strata broker {getattr(b, 'name', '')} log ({b.log_path})",
                                    b.log_tail(30)))
