"""Fixtures of the failover suite (tests/failover): two single-node Strata clusters, a primary
and a standby, each its own process (so one can be killed, stopped or restarted alone), and
``strata active-standby`` between them with its discovery address. Clients bootstrap through
the discovery address only. The primary is always Strata: the write fence, the mandate and tail
truncation are Strata's extensions; ``test_translate.py`` also fails over to an Apache Kafka
standby.

Figures (RTO, records at risk) are printed as they are measured and written to
tests/.work/cluster-figures.jsonl with the replicated-cluster suite's (which prints them all at
the end of the run it shares with this suite).
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.pytest_plugin import *  # noqa: E402,F401,F403  (hooks: outcome recording)
from harness.pytest_plugin import TARGETS  # noqa: E402
from harness.failover import Pair  # noqa: E402


@pytest.fixture
def pair(tmp_path):
    if "strata" not in TARGETS:
        pytest.skip("the failover suite runs on Strata only (STRATA_TARGETS excludes strata)")
    p = Pair(tmp_path)
    try:
        p.start()
        yield p
    finally:
        p.close()

