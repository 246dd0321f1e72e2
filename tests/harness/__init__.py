"""Harness of the black-box suites: brokers under test (Strata and the reference Apache Kafka)
behind one interface, the Kafka command-line tools, and deadline-bounded waiting.

Suites import what they need::

    from harness import StrataBroker, KafkaBroker, make_broker, kafka_tool, wait_until, unique_topic
"""
from .brokers import (  # noqa: F401
    KAFKA_SH,
    REPO_ROOT,
    BrokerBase,
    BrokerStartError,
    KafkaBroker,
    StrataBroker,
    kafka_classpath,
    kafka_tool,
    make_broker,
    strata_broker_bin,
)
from .util import free_port, free_ports, port_accepts, unique_topic, wait_until  # noqa: F401
