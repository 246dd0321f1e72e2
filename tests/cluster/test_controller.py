"""The active controller (the metadata quorum's leader, as ``kafka-metadata-quorum describe
--status`` names it) killed with kill -9, again and again: the two other voters elect a new leader
with a higher epoch, and topic creation (a metadata write) resumes while the old one is down."""
import time

import pytest
from confluent_kafka import KafkaException

from harness import unique_topic, wait_until
from harness.replication import record_figure

# Kafka restarts a voter in 15-25 s on a busy 2-core machine; Strata the full count.
CONTROLLER_KILLS = {"strata": 10, "kafka": 3}


def create_when_possible(c, topic, timeout):
    """Creates ``topic`` (RF 3), retrying while the quorum has no leader; returns the seconds taken."""
    t0 = time.monotonic()

    def created():
        try:
            c.create_topic(topic, partitions=1, timeout=30)
            return True
        except KafkaException as e:
            if e.args[0].name() == "TOPIC_ALREADY_EXISTS":  # an earlier attempt went through
                c.wait_isr_full(topic)
                return True
            raise

    wait_until(created, timeout, f"topic {topic} created", interval=0.5)
    return time.monotonic() - t0


@pytest.mark.timeout(900)
def test_active_controller_kill9(healthy_cluster, target_kind):
    c = healthy_cluster
    elections, creations = [], []
    for i in range(CONTROLLER_KILLS[target_kind]):
        before = c.quorum_status()
        victim = before["LeaderId"]
        assert victim in c.voters, before
        t0 = time.monotonic()
        c.kill9(victim)

        def new_leader():
            s = c.quorum_status()
            return s if s["LeaderId"] not in (-1, victim) and s["LeaderEpoch"] > before["LeaderEpoch"] else None

        after = wait_until(new_leader, 60, f"a quorum leader other than killed node {victim}", interval=0.2)
        elections.append(time.monotonic() - t0)
        assert after["LeaderId"] in c.voters, after
        creations.append(create_when_possible(c, unique_topic(f"after-kill-{i}"), 90))
        c.start_node(victim)
    record_figure("controller kill -9", f"{target_kind} kills", len(elections))
    record_figure("controller kill -9", f"{target_kind} kill to new quorum leader max s", f"{max(elections):.1f}")
    record_figure("controller kill -9", f"{target_kind} topic creation after election max s", f"{max(creations):.1f}")
