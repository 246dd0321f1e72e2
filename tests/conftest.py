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

import pytest

gc.disable()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    gc.collect()
