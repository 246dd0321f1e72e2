"""The group coordinator (the leader of the group's ``__consumer_offsets`` partition) killed with
kill -9 while two confluent-kafka members consume and commit: the group finds its new coordinator,
the members resume and commit again, and nothing is skipped (every offset up to the high
watermark consumed at least once, commits at the end equal to the high watermarks)."""
from collections import Counter

import pytest

from harness import unique_topic, wait_until
from harness.data import committed_offsets
from harness.replication import ConfluentLoad, GroupConsumer, high_watermarks, record_figure

PARTITIONS = 3
RATE = 300
PROGRESS = 200


def coordinator_of(c, group):
    admin = c.admin()
    return admin.describe_consumer_groups([group], request_timeout=20)[group].result(30).coordinator.id


@pytest.mark.timeout(600)
def test_group_coordinator_kill9(healthy_cluster, target_kind):
    c = healthy_cluster
    topic, group = unique_topic("groups"), unique_topic("group")
    c.create_topic(topic, partitions=PARTITIONS)
    load = ConfluentLoad(c.bootstrap(), topic, PARTITIONS, prefix=2, rate=RATE).start()
    members = [GroupConsumer(c.bootstrap(), group, topic, f"member-{i}").start() for i in range(2)]

    def consumed():
        return sum(len(m.consumed) for m in members)

    def commits():
        return sum(m.commits_ok for m in members)

    try:
        wait_until(lambda: consumed() >= PROGRESS and all(m.commits_ok for m in members), 120,
                   "both members consuming and committing")
        victim = coordinator_of(c, group)
        c.kill9(victim)
        seen, committed_before = consumed(), commits()
        # The members resume: they consume and commit again, through a new coordinator.
        wait_until(lambda: consumed() >= seen + PROGRESS and commits() >= committed_before + 5, 120,
                   f"the group consuming and committing again after kill -9 of coordinator {victim}")
        new = wait_until(lambda: (lambda n: n if n != victim else None)(coordinator_of(c, group)), 60,
                         "a new coordinator")
        c.start_node(victim)
        load.stop()
        hw = high_watermarks(c.healthy_bootstrap(), topic, range(PARTITIONS))
        wait_until(lambda: committed_offsets(c.healthy_bootstrap(), group, topic, PARTITIONS) == hw, 120,
                   f"the group's commits at the high watermarks {hw}")
    finally:
        load.stop()
        for m in members:
            m.stop()
    record_figure("group coordinator kill -9", f"{target_kind} coordinator {victim} -> {new}, commit errors",
                  dict(sum((m.commit_errors for m in members), Counter())))
    got = {p: set() for p in range(PARTITIONS)}
    for m in members:
        for r in m.consumed:
            got[r.partition].add(r.offset)
    skipped = {p: sorted(set(range(hw[p])) - got[p])[:10] for p in range(PARTITIONS) if set(range(hw[p])) - got[p]}
    assert not skipped, f"{target_kind}: offsets never consumed by the group (first 10 per partition): {skipped}"
    missing = [a for a in load.acked if a.offset not in got[a.partition]]
    assert not missing, f"{target_kind}: acknowledged records the group never consumed: {missing[:5]}"
