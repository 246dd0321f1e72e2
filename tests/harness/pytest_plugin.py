"""Pytest fixtures and hooks shared by the black-box suites; a suite's conftest.py does
``from harness.pytest_plugin import *``.

- ``target_kind``: module-scoped, parametrized over the targets ("strata", "kafka"; the env
  STRATA_TARGETS=strata,kafka restricts the list), so every scenario runs against both brokers.
- ``broker``: one broker of ``target_kind`` per module, with COMMON_PROPS (fast tests).
- ``broker_factory``: ``make(kind, props=None, advertised_port=None, port=None)`` for tests that
  need brokers of their own; started on creation, all stopped at the end of the test.
- Every test outcome is recorded per target into tests/.work/results/<suite>.json; harness/report.py
  turns those files into the compatibility table.
"""
import json
import os
import time
from pathlib import Path

import pytest

from .brokers import REPO_ROOT, make_broker

ALL_TARGETS = ("strata", "kafka")
TARGETS = [t.strip() for t in os.environ.get("STRATA_TARGETS", ",".join(ALL_TARGETS)).split(",") if t.strip()]
_unknown = [t for t in TARGETS if t not in ALL_TARGETS]
if _unknown:
    raise pytest.UsageError(f"STRATA_TARGETS names unknown targets {_unknown}; known: {list(ALL_TARGETS)}")

# Server properties both targets get in the suites: quick group joins, single-replica internals.
COMMON_PROPS = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    "log.retention.check.interval.ms": "1000",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
}

RESULTS_DIR = Path(os.environ.get("STRATA_RESULTS_DIR") or REPO_ROOT / "tests" / ".work" / "results")


@pytest.fixture(scope="module", params=TARGETS, ids=TARGETS)
def target_kind(request):
    """The broker implementation under test: "strata" or "kafka"."""
    return request.param


@pytest.fixture(scope="module")
def broker(target_kind, tmp_path_factory):
    """A running broker of ``target_kind`` shared by the tests of one module."""
    b = make_broker(target_kind, tmp_path_factory.mktemp(f"{target_kind}-broker"), dict(COMMON_PROPS))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker_factory(tmp_path_factory):
    """``make(kind, props=None, advertised_port=None, port=None)`` -> a started broker with
    COMMON_PROPS overridden by ``props``; every broker made is stopped when the test ends."""
    made = []

    def make(kind, props=None, advertised_port=None, port=None):
        merged = dict(COMMON_PROPS)
        merged.update({k: str(v) for k, v in (props or {}).items()})
        b = make_broker(kind, tmp_path_factory.mktemp(f"{kind}-own"), merged, port=port,
                        advertised_port=advertised_port)
        made.append(b)
        b.start()
        return b

    yield make
    errors = []
    for b in reversed(made):
        try:
            b.stop()
        except Exception as e:  # stop every broker even when one of them fails to stop
            errors.append(e)
    if errors:
        raise errors[0]


# --- outcome recording -------------------------------------------------------------------------

_items = {}  # nodeid -> {"suite", "scenario", "target"}
_outcomes = {}  # nodeid -> outcome


def _suite_of(item):
    path = Path(str(item.fspath)).resolve()
    try:
        rel = path.relative_to(REPO_ROOT / "tests")
    except ValueError:
        rel = Path(path.name)
    stem = rel.with_suffix("")
    parts = list(stem.parts[:-1]) + [stem.name[5:] if stem.name.startswith("test_") else stem.name]
    return "-".join(parts)


def _describe(item):
    target = None
    scenario = getattr(item, "originalname", None) or item.name
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        target = callspec.params.get("target_kind")
        ids = callspec.id.split("-") if callspec.id else []
        if target in ids:
            ids.remove(target)
        if ids:
            scenario = f"{scenario}[{'-'.join(ids)}]"
    cls = getattr(item, "cls", None)
    if cls is not None:
        scenario = f"{cls.__name__}.{scenario}"
    return {"suite": _suite_of(item), "scenario": scenario, "target": target}


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        _items[item.nodeid] = _describe(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # A failure shows the end of the log of every broker the test used.
        for name in ("broker",):
            b = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if b is not None and hasattr(b, "log_tail"):
                report.sections.append((f"{b.kind} broker log ({b.log_path})", b.log_tail(60)))


def pytest_runtest_logreport(report):
    prev = _outcomes.get(report.nodeid)
    if hasattr(report, "wasxfail"):
        outcome = "xfail" if report.skipped else "xpass"
    elif report.skipped:
        outcome = "skip"
    elif report.failed:
        outcome = "fail" if report.when == "call" else "error"
    else:
        outcome = "pass"
    if report.when == "setup":
        _outcomes[report.nodeid] = outcome
    elif report.when == "call":
        _outcomes[report.nodeid] = outcome
    elif report.when == "teardown" and report.failed and prev == "pass":
        _outcomes[report.nodeid] = "error"


def pytest_sessionfinish(session, exitstatus):
    if not _outcomes:
        return
    by_suite = {}
    for nodeid, outcome in _outcomes.items():
        info = _items.get(nodeid)
        if info is None:
            continue
        by_suite.setdefault(info["suite"], []).append(dict(info, outcome=outcome, nodeid=nodeid))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for suite, records in by_suite.items():
        path = RESULTS_DIR / f"{suite}.json"
        # Merge: a run restricted to one target keeps what an earlier run recorded for the other.
        merged = {}
        try:
            for r in json.loads(path.read_text()).get("results", []):
                merged[(r["scenario"], r["target"])] = r
        except (OSError, ValueError, KeyError, AttributeError):
            pass
        for r in records:
            merged[(r["scenario"], r["target"])] = dict(r, recorded_at=now)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"suite": suite, "results": sorted(
            merged.values(), key=lambda r: (r["scenario"], str(r["target"])))}, indent=1) + "\n")
        tmp.replace(path)
