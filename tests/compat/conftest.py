"""Fixtures of the compatibility suites: every scenario runs against the Strata broker and against
the reference Apache Kafka (STRATA_TARGETS=strata,kafka restricts the targets). See
tests/harness/pytest_plugin.py for ``target_kind``, ``broker`` and ``broker_factory``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.pytest_plugin import *  # noqa: E402,F401,F403  (fixtures and hooks)
from harness.pytest_plugin import COMMON_PROPS, TARGETS  # noqa: E402,F401
