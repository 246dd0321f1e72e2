"""Active-standby failover of a ``Translate`` flow (offsets differ between the clusters, as with
MirrorMaker 2): between two Strata clusters, and from a Strata primary to an Apache Kafka
standby. ``strata active-standby --offsets translate`` drives it; loads and checks as in
``test_active_standby.py``, but every check goes by value, since a record's offset differs
between the two sides.

Consumers follow a Translate failover the way MirrorMaker 2 users move them: the group's member
stops on the old side and a new member of the same group starts through the discovery address
on the new side, from the offsets the engine's final checkpoint translated there. What each run
shows:
- nothing acknowledged is lost: every acknowledged value is on the active side at the end, and
  each producer follows the discovery address without a restart (the fenced Strata side answers
  with REBOOTSTRAP_REQUIRED);
- the group resumes on the new side without skipping: every acknowledged value is consumed by
  one of its members, and what the new member re-reads of what the group had committed on the
  old side stays within ``offset.lag.max`` (100) per partition (a translated offset is the last
  offset sync at or before the commit);
- after the old side has rejoined as the standby, the mirror running the other way makes both
  clusters hold the same values.

An unplanned failover away from a Kafka active side (killed -9 while the mirror was stalled, so
it holds records the mirror never copied): when Kafka returns as the standby, its divergent tail
is copied to ``<topic>.divergent.<id>`` there and stays in its logs (Kafka cannot cut a
partition's tail; ``truncateUnreplicatedTail`` lets the flow go on), the reverse mirror appends
after it, and every acknowledged record is on the Strata side or in quarantine.

The Apache Kafka standby of that run has no authorizer, so it cannot be fenced and the run
ends on the Kafka side. Failing back from Kafka is the second test: both clusters also serve
SASL_PLAINTEXT, the clients authenticate as ``alice``, the engine and the mirror as ``admin``, a
super user of Kafka's StandardAuthorizer; ``--fence-foreign-with-acl`` fences Kafka with a DENY
WRITE ACL for every principal, which stops the clients and not the mirror.
"""
from collections import Counter

import pytest
from confluent_kafka import KafkaException, Producer

from harness.data import committed_offsets, create_topic, topic_partitions
from harness.failover import EXEMPT_CLIENT, ActiveStandby, Pair
from harness.pytest_plugin import TARGETS
from harness.replication import ConfluentLoad, GroupConsumer, VerifiableProducer, read_back, record_figure
from harness.sasl import PLAIN_USERS, client_conf, client_jaas
from harness.util import wait_until

TOPIC = "payments"
GROUP = "billing"
PARTITIONS = 3
RATE = 200  # records/s per client
PROGRESS = 40  # acknowledgements each client must add after a failover
CONSUMED = 150  # records a member consumes (and commits) before it stops
STALLED = 100  # acknowledgements the client adds on Kafka while the mirror is stalled
OFFSET_LAG_MAX = 100  # strata-mirror's default, as MirrorMaker 2's
JAVA_REBOOTSTRAP = {"metadata.recovery.strategy": "rebootstrap"}


@pytest.fixture(params=["strata", "kafka"], ids=["strata-standby", "kafka-standby"])
def translate_pair(request, tmp_path):
    if "strata" not in TARGETS:
        pytest.skip("the failover suite runs on Strata only (STRATA_TARGETS excludes strata)")
    if request.param not in TARGETS:
        pytest.skip(f"STRATA_TARGETS excludes {request.param}")
    p = Pair(tmp_path, standby_kind=request.param)
    try:
        p.start()
        yield p
    finally:
        p.close()


def values_of(bootstrap):
    """{partition: [value, ...]} of TOPIC on one cluster (values as the loads write them)."""
    return {p: [r.value.split(b" ", 1)[0].decode() for r in recs]
            for p, recs in read_back(bootstrap, TOPIC, extra=EXEMPT_CLIENT).items()}


def consume_and_stop(bootstrap, name):
    """A member of GROUP consumes through ``bootstrap`` until it has committed CONSUMED records,
    then leaves. Returns (member, {partition: values below its last commit})."""
    member = GroupConsumer(bootstrap, GROUP, TOPIC, name).start()
    try:
        wait_until(lambda: len(member.consumed) >= CONSUMED and member.commits_ok, 90,
                   f"{name} consuming and committing through {bootstrap}")
    finally:
        member.stop()
    committed = committed_offsets(bootstrap, GROUP, TOPIC, PARTITIONS)
    below = {p: {a.value for a in member.consumed if a.partition == p and a.offset < committed.get(p, 0)}
             for p in range(PARTITIONS)}
    return member, below


def test_translate_failover_keeps_records_and_resumes_the_group(translate_pair, tmp_path):
    pair = translate_pair
    kind = pair.standby.kind
    flips = [("standby", "target")] + ([("primary", "source")] if kind == "strata" else [])
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap(),
                           offsets="translate").start()
    loads, members = (), []
    try:
        runner.wait_mirroring("source")
        create_topic(runner.discovery, TOPIC, PARTITIONS)
        wait_until(lambda: topic_partitions(pair.standby.bootstrap(), TOPIC, extra=EXEMPT_CLIENT) == PARTITIONS,
                   60, f"{TOPIC} mirrored to the {kind} standby")
        vp = VerifiableProducer(tmp_path, runner.discovery, TOPIC, prefix=1, throughput=RATE,
                                config=JAVA_REBOOTSTRAP).start()
        cl = ConfluentLoad(runner.discovery, TOPIC, PARTITIONS, prefix=2, rate=RATE).start()
        loads = (vp, cl)
        for load in loads:
            load.log.wait_acked(PROGRESS, 90, "before any failover")
        rtos, rereads = [], []
        for i, (to, _) in enumerate(flips):
            member, committed_values = consume_and_stop(runner.discovery, f"member-{i}")
            members.append(member)
            rtos.append(runner.planned_flip(to, loads, PROGRESS))
            # The next member starts on the new side from the translated commit.
            nxt = GroupConsumer(runner.discovery, GROUP, TOPIC, f"member-{i + 1}").start()
            members.append(nxt)
            wait_until(lambda: len(nxt.consumed) >= CONSUMED, 90, f"member-{i + 1} consuming after the failover")
            nxt.stop()
            again = Counter(a.partition for a in nxt.consumed if a.value in committed_values[a.partition])
            rereads.append(dict(again))
            assert all(n <= OFFSET_LAG_MAX for n in again.values()), \
                f"re-read after the failover to the {to}, per partition: {dict(again)} (> {OFFSET_LAG_MAX})"
        runner.wait_mirroring(flips[-1][1], timeout=120)
        running, loads = loads, ()
        for load in running:
            load.stop()
        acked = {a.value: a.partition for load in running for a in load.acked}
        # The group goes on to the end on the active side: nothing acknowledged was skipped.
        last_member = GroupConsumer(runner.discovery, GROUP, TOPIC, "member-last").start()
        members.append(last_member)
        consumed = lambda: {a.value for m in members for a in m.consumed}  # noqa: E731
        try:
            wait_until(lambda: not (set(acked) - consumed()), 90, "the group consuming every acknowledged record")
        finally:
            last_member.stop()
        active_side = pair.standby if flips[-1][1] == "target" else pair.primary
        other_side = pair.primary if active_side is pair.standby else pair.standby
        runner.wait_state(lambda s: s.get("lastLag") == 0, 60, "the mirror to catch up")
        active = values_of(active_side.bootstrap())
        held = Counter(v for vs in active.values() for v in vs)
        lost = sorted(v for v in acked if v not in held)
        duplicates = sorted(v for v, n in held.items() if n > 1 and v in acked)
        record_figure("failover translate", f"{kind} standby: flips, acknowledged, lost, stored twice",
                      f"{len(flips)}, {len(acked)}, {len(lost)}, {len(duplicates)}")
        record_figure("failover translate", f"{kind} standby: RTO ms (engine, fence to discovery)", rtos)
        record_figure("failover translate", f"{kind} standby: records re-read by the group per partition",
                      rereads)
        assert not lost, f"acknowledged records missing on the active side: {lost[:5]}"
        misplaced = [v for v, p in acked.items() if v in held and v not in active[p]]
        assert not misplaced, f"records on another partition than they were acknowledged on: {misplaced[:5]}"
        wait_until(lambda: Counter(v for vs in values_of(other_side.bootstrap()).values() for v in vs) == held,
                   60, "the standby holding the active side's records (the mirror running the other way)")
    finally:
        for load in loads:
            load.stop()
        runner.stop()


KAFKA_AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin;User:ANONYMOUS",
    "allow.everyone.if.no.acl.found": "true",
}
TOPIC_AUTHORIZATION_FAILED = 29


def alice(bootstrap):
    """librdkafka settings of the clients' user."""
    conf = client_conf(bootstrap, "PLAIN", "alice", PLAIN_USERS["alice"])
    del conf["bootstrap.servers"]
    return conf


def test_failback_from_a_kafka_active_side_fences_it_with_a_deny_acl(tmp_path):
    if not {"strata", "kafka"} <= set(TARGETS):
        pytest.skip("needs both Strata and the Apache Kafka reference (STRATA_TARGETS)")
    pair = Pair(tmp_path, standby_kind="kafka", sasl=True, standby_props=KAFKA_AUTHORIZER)
    engine = tmp_path / "engine.properties"
    engine.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                      f"sasl.jaas.config={client_jaas('PLAIN', 'admin', PLAIN_USERS['admin'])}\n")
    runner = None
    loads = []
    try:
        pair.start()
        runner = ActiveStandby(tmp_path, pair.primary.sasl_bootstrap(), pair.standby.sasl_bootstrap(),
                               offsets="translate",
                               extra_args=["--primary-config", engine, "--standby-config", engine,
                                           "--fence-foreign-with-acl"]).start()
        runner.wait_mirroring("source")
        create_topic(pair.primary.bootstrap(), TOPIC, PARTITIONS)
        wait_until(lambda: topic_partitions(pair.standby.bootstrap(), TOPIC) == PARTITIONS, 60,
                   f"{TOPIC} mirrored to the Kafka standby")
        first = ConfluentLoad(runner.discovery, TOPIC, PARTITIONS, prefix=1, rate=RATE,
                              config=alice(runner.discovery)).start()
        loads.append(first)
        first.log.wait_acked(PROGRESS, 90, "on the Strata primary")
        # To Kafka: the Strata side's own fence sends the client over (REBOOTSTRAP_REQUIRED).
        rtos = [runner.planned_flip("standby", [first], PROGRESS)]
        # Back to Strata: Kafka is fenced with the ACL. Its clients are refused, not redirected:
        # they start again through discovery, as after any failover away from a foreign cluster.
        _, text, state = runner.failover("primary")
        last = state["last"]
        assert last["to"] == "source" and last["fenceConfirmed"], text
        rtos.append(last["durationMs"])
        loads.remove(first)
        try:
            first.stop()
            fenced_out = "no send refused"
        except KafkaException as e:  # the client, still on Kafka, met the fence
            assert e.args[0].code() == TOPIC_AUTHORIZATION_FAILED, e
            fenced_out = e.args[0].str()
        second = ConfluentLoad(runner.discovery, TOPIC, PARTITIONS, prefix=2, rate=RATE,
                               config=alice(runner.discovery)).start()
        loads.append(second)
        second.log.wait_acked(PROGRESS, 90, "on the Strata primary again")
        runner.wait_mirroring("source", timeout=120)

        # Kafka, the standby again, still refuses the clients' writes...
        refused = []
        p = Producer({**alice(None), "bootstrap.servers": pair.standby.sasl_bootstrap(),
                      "message.timeout.ms": 20000})
        p.produce(TOPIC, value=b"not-for-the-standby", partition=0,
                  on_delivery=lambda err, msg: refused.append(err))
        p.flush(30)
        assert refused and refused[0] is not None and refused[0].code() == TOPIC_AUTHORIZATION_FAILED, refused
        # ...while the mirror (a super user there) writes what Strata takes after the failback.
        loads.remove(second)
        second.stop()
        acked = {a.value: a.partition for load in (first, second) for a in load.acked}
        active = values_of(pair.primary.bootstrap())
        held = Counter(v for vs in active.values() for v in vs)
        lost = sorted(v for v in acked if v not in held)
        duplicates = sorted(v for v, n in held.items() if n > 1 and v in acked)
        record_figure("failover translate", "Kafka active side fenced with an ACL: acknowledged, lost, stored "
                      "twice", f"{len(acked)}, {len(lost)}, {len(duplicates)}")
        record_figure("failover translate", "Kafka active side fenced with an ACL: the client left on Kafka",
                      fenced_out)
        record_figure("failover translate", "Kafka active side fenced with an ACL: RTO ms (engine, fence to "
                      "discovery)", rtos)
        assert not lost, f"acknowledged records missing on the active side: {lost[:5]}"
        assert not duplicates, f"acknowledged records stored twice: {duplicates[:5]}"
        second_values = {v for v in acked if v.startswith("2.")}
        wait_until(lambda: second_values <= {v for vs in values_of(pair.standby.bootstrap()).values() for v in vs},
                   60, "the records written after the failback mirrored into the fenced Kafka standby")
    finally:
        for load in loads:
            load.stop()
        if runner is not None:
            runner.stop()
        pair.close()


def test_a_lost_kafka_active_side_rejoins_with_its_tail_kept_in_place(tmp_path):
    if not {"strata", "kafka"} <= set(TARGETS):
        pytest.skip("needs both Strata and the Apache Kafka reference (STRATA_TARGETS)")
    pair = Pair(tmp_path, standby_kind="kafka")
    runner, loads = None, []
    try:
        pair.start()
        runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap(), offsets="translate",
                               automatic=True).start()
        runner.wait_mirroring("source")
        create_topic(runner.discovery, TOPIC, PARTITIONS)
        wait_until(lambda: topic_partitions(pair.standby.bootstrap(), TOPIC) == PARTITIONS, 60,
                   f"{TOPIC} mirrored to the Kafka standby")
        load = ConfluentLoad(runner.discovery, TOPIC, PARTITIONS, prefix=1, rate=RATE).start()
        loads.append(load)
        load.log.wait_acked(PROGRESS, 90, "on the Strata primary")
        runner.planned_flip("standby", loads, PROGRESS)
        runner.wait_mirroring("target", timeout=120)
        # The Strata side (the standby now) stops, so the mirror copies nothing while the client
        # writes on Kafka; then Kafka is killed.
        pair.primary.sigstop(1)
        load.log.wait_more(STALLED, 60, "on Kafka while the Strata standby is stopped")
        pair.standby.kill9(1)
        pair.primary.sigcont(1)
        state = runner.wait_state(lambda s: s.get("active") == "source" and "operation" not in s, 120,
                                  "automatic failover to Strata")
        assert state["last"]["reason"] == "ProbeFailed", state["last"]
        load.log.wait_more(PROGRESS, 120, "on Strata through discovery")
        pair.standby.start_node(1)
        state = runner.wait_mirroring("source", timeout=180)
        last = state["last"]
        assert last["recordsAtRiskExact"] and last["recordsAtRisk"] > 0, last
        loads.remove(load)
        load.stop()
        acked = {a.value for a in load.acked}
        quarantine = f"{TOPIC}.divergent.{last['id']}"
        kept = [r.value.split(b" ", 1)[0].decode()
                for recs in read_back(pair.standby.bootstrap(), quarantine).values() for r in recs]
        on_strata = {v for vs in values_of(pair.primary.bootstrap()).values() for v in vs}
        lost = sorted(acked - on_strata)
        record_figure("failover translate", "Kafka active side killed -9: acknowledged, missing on Strata, "
                      "divergent (counted at the rejoin)", f"{len(acked)}, {len(lost)}, {last['recordsAtRisk']}")
        assert len(kept) == last["recordsAtRisk"], (len(kept), last)
        assert set(lost) <= set(kept), f"acknowledged records neither on Strata nor in {quarantine}: {lost[:5]}"
        # Kafka keeps its tail where it was, and the reverse mirror appends Strata's records after it.
        wait_until(lambda: on_strata | set(kept) <= {v for vs in values_of(pair.standby.bootstrap()).values()
                                                     for v in vs}, 60,
                   "Kafka holding its own tail and every record of the Strata side")
    finally:
        for load in loads:
            load.stop()
        if runner is not None:
            runner.stop()
        pair.close()
