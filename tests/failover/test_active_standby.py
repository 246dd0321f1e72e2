"""Active-standby failover of two Strata clusters under load from independent clients, driven the
way a user drives ``strata active-standby``: ``strata failover --to …`` for planned flips, a
primary killed with -9 for automatic failover, SIGSTOP flaps that must not fail over.

Loads: Kafka's ``kafka-verifiable-producer`` (the Java client, idempotent, bootstrap = the
discovery address, ``metadata.recovery.strategy=rebootstrap``: the fenced side answers Metadata
v13 with REBOOTSTRAP_REQUIRED) and a confluent-kafka (librdkafka) producer, both acks=all; the
replication checker compares every acknowledged record with what the active side holds.

What each scenario shows:
- planned flips ×3: the old side is fenced before the standby is promoted and drained first
  (its brokers report the fence drained: ``strata.write.fence.drained``), so nothing
  acknowledged is lost and (offsets preserved, idempotent producers) nothing is written twice;
  both clusters end equal offset for offset; RTO printed.
- the engine crashed at each point a planned flip saves its state (9 flips): started again, it
  runs the interrupted step again and finishes the flip, as one operation; the user's request
  outlives the crash; nothing lost or stored twice.
- the primary killed -9 (automatic): the standby is promoted only after the primary's write
  mandate has run out; clients go on writing on the standby through discovery; when the
  primary returns, its divergent tail is copied to ``<topic>.divergent.<id>`` and truncated,
  and every acknowledged record missing from the standby is found there (loss ≤ the counted
  records at risk); RTO and loss printed.
- the primary cut off from the engine and the mirror but not from its clients (×2): it fences
  itself when its mandate runs out, and the standby is promoted only after that, so no record
  is acknowledged by the primary after the promotion (every record the primary acknowledged
  that the standby lacks ends in quarantine, acknowledged before the promotion).
- probe flaps ×10 (SIGSTOP shorter than threshold × interval): never a failover.
"""
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.failover import CRASH_EXIT_STATUS, EXEMPT_CLIENT, ActiveStandby, fence_drained
from harness.raw_producer import NONE, OUT_OF_ORDER_SEQUENCE_NUMBER, init_producer_id, produce_idempotent
from harness.replication import ConfluentLoad, VerifiableProducer, check_records, read_back, record_figure
from harness.data import create_topic, topic_partitions
from harness.util import wait_until

TOPIC = "orders"
PARTITIONS = 3
RATE = 200  # records/s per client
PROGRESS = 40  # acknowledgements each client must add after a failover
STALLED = 100  # acknowledgements each client adds on the primary while the mirror is stalled

# The Java client re-bootstraps on REBOOTSTRAP_REQUIRED (KIP-1102) and, with this strategy, when
# no known broker answers (KIP-899); metadata is refreshed every 5 s either way.
JAVA_REBOOTSTRAP = {"metadata.recovery.strategy": "rebootstrap"}


def create_mirrored_topic(runner, standby):
    """Creates TOPIC through discovery and waits until the mirror has created it on the standby
    (a topic younger than the mirror's topic refresh is not on the standby yet: a failover then
    would lose the topic itself)."""
    create_topic(runner.discovery, TOPIC, PARTITIONS)
    wait_until(lambda: topic_partitions(standby, TOPIC, extra=EXEMPT_CLIENT) == PARTITIONS, 60,
               f"{TOPIC} mirrored to the standby")


def start_loads(work_dir, bootstrap):
    vp = VerifiableProducer(work_dir, bootstrap, TOPIC, prefix=1, throughput=RATE, config=JAVA_REBOOTSTRAP).start()
    cl = ConfluentLoad(bootstrap, TOPIC, PARTITIONS, prefix=2, rate=RATE).start()
    vp.log.wait_acked(PROGRESS, 90, "from kafka-verifiable-producer")
    cl.log.wait_acked(PROGRESS, 90, "from confluent-kafka")
    return vp, cl


def stop_loads(loads):
    for load in loads:
        load.stop()
    return [a for load in loads for a in load.acked]


def read_side(bootstrap):
    """Every record of TOPIC on one cluster, read with a client id the fence lets through."""
    return {p: [(r.offset, r.value) for r in recs]
            for p, recs in read_back(bootstrap, TOPIC, extra=EXEMPT_CLIENT).items()}


def test_planned_flips_lose_nothing_and_write_nothing_twice(pair, tmp_path):
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap()).start()
    try:
        runner.wait_mirroring("source")
        create_mirrored_topic(runner, pair.standby.bootstrap())
        loads = start_loads(tmp_path, runner.discovery)
        rtos = []
        for to in ("standby", "primary", "standby"):
            rtos.append(runner.planned_flip(to, loads, PROGRESS))
            # The drain waited for each broker of the fenced side to report the fence drained
            # (`strata.write.fence.drained`, read here with kafka-python); the active side's
            # brokers report none.
            old, new = (pair.primary, pair.standby) if to == "standby" else (pair.standby, pair.primary)
            fence = runner.state()["last"]["id"]
            wait_until(lambda: set(fence_drained(old.bootstrap()).values()) == {fence}, 30,
                       f"the {'primary' if to == 'standby' else 'standby'}'s brokers to report fence {fence} drained")
            assert set(fence_drained(new.bootstrap()).values()) == {""}, "the active side is not fenced"
        acks = stop_loads(loads)
        runner.wait_state(lambda s: s.get("lastLag") == 0, 60, "the mirror to catch up")
        active = read_side(pair.standby.bootstrap())
        res = check_records(acks, active)
        record_figure("failover", "planned flips: records", str(res))
        record_figure("failover", "planned flips: RTO ms (engine, fence to discovery)", rtos)
        assert res.ok, res
        assert not res.duplicates and res.acked > 0
        assert read_side(pair.primary.bootstrap()) == active, "both clusters hold the same records at the same offsets"
        failed = {type(load).__name__: dict(load.log.errors)
                  for load in loads if load.log.errors}
        record_figure("failover", "planned flips: sends that failed (not acknowledged)", failed or "none")
    finally:
        runner.stop()


def test_a_batch_sent_again_after_a_planned_flip_is_not_stored_twice(pair, tmp_path):
    """The in-flight batch of a planned flip: stored on the old side, its answer lost in the
    move, sent again through discovery to the new side, which knows it from the mirror (the
    batch kept its producer identity) and answers with its original offset. The producer is the
    raw client of ``harness.raw_producer`` (librdkafka shows neither producer ids nor retries)."""
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap()).start()
    try:
        runner.wait_mirroring("source")
        topic = "retried"
        create_topic(runner.discovery, topic, 1)
        wait_until(lambda: topic_partitions(pair.standby.bootstrap(), topic, extra=EXEMPT_CLIENT) == 1, 60,
                   f"{topic} mirrored to the standby")
        pid, epoch = init_producer_id(runner.discovery)
        assert produce_idempotent(runner.discovery, topic, pid, epoch, 0, 5) == (NONE, 0)
        assert produce_idempotent(runner.discovery, topic, pid, epoch, 5, 5) == (NONE, 5)
        for to, last in (("standby", 5), ("primary", 10)):
            runner.failover(to)
            # The last batch again (its answer lost): its original offset, nothing appended.
            assert produce_idempotent(runner.discovery, topic, pid, epoch, last, 5) == (NONE, last)
            # The next batch follows on; a gap in the sequence is still refused.
            assert produce_idempotent(runner.discovery, topic, pid, epoch, last + 5, 5) == (NONE, last + 5)
            assert produce_idempotent(runner.discovery, topic, pid, epoch, 99, 1)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        runner.wait_state(lambda s: s.get("lastLag") == 0, 60, "the mirror to catch up")
        sides = [read_back(c.bootstrap(), topic, extra=EXEMPT_CLIENT) for c in (pair.primary, pair.standby)]
        for side in sides:
            assert [r.offset for r in side[0]] == list(range(20)), side
            assert [r.value for r in side[0]] == [f"{pid}-{seq}".encode() for seq in range(20)], side
    finally:
        runner.stop()


# Every point a planned flip saves the engine's state at, in order (`FailoverState::progress`):
# the operation's steps, then the old side's rejoin as the standby, then the reverse mirror.
CRASH_POINTS = ["Fence", "Drain", "StopMirror", "FinalCheckpoint", "Promote", "PointDiscovery",
                "RejoinQuarantine", "RejoinStartMirror", "Mirroring"]


def test_an_engine_crashed_at_each_step_finishes_each_flip_once(pair, tmp_path):
    """One planned flip per point of CRASH_POINTS, the engine crashing there: it exits at once,
    after the step before it ran and before the outcome was saved, so the engine started again
    finds the state naming that step and must run it a second time. The user's ``strata
    failover`` request outlives the crash and succeeds; each flip is one operation (one failover
    id, one promotion recorded); nothing acknowledged is lost or stored twice."""
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap()).start()
    loads = ()
    try:
        runner.wait_mirroring("source")
        create_mirrored_topic(runner, pair.standby.bootstrap())
        loads = start_loads(tmp_path, runner.discovery)
        serial = runner.state()["serial"]
        ids = []
        for i, point in enumerate(CRASH_POINTS):
            to, side = ("standby", "target") if i % 2 == 0 else ("primary", "source")
            runner.stop()
            runner.start(crash_before=point)
            request = runner.request_failover(to)
            try:
                status = runner.wait_exit(90)
                assert status == CRASH_EXIT_STATUS, \
                    f"the engine did not crash before saving {point} (exit {status}):\n{runner.log_tail(40)}"
                runner.start()
                out, _ = request.communicate(timeout=150)
            finally:
                if request.poll() is None:
                    request.kill()
            assert request.returncode == 0, f"strata failover --to {to} across a crash at {point}: {out}"
            state = runner.wait_mirroring(side, timeout=120)
            serial += 1
            assert state["serial"] == serial, f"crash at {point}: {state['serial'] - serial + 1} operations, not one"
            last = state["last"]
            assert last["to"] == side and last["fenceConfirmed"] and last["recordsAtRisk"] == 0, (point, last)
            ids.append(last["id"])
            for load in loads:
                load.log.wait_more(PROGRESS, 90, f"through discovery after the flip crashed at {point}")
        assert len(set(ids)) == len(CRASH_POINTS), ids
        running, loads = loads, ()
        acks = stop_loads(running)
        runner.wait_state(lambda s: s.get("lastLag") == 0, 60, "the mirror to catch up")
        active = read_side(pair.standby.bootstrap())
        res = check_records(acks, active)
        record_figure("failover", "an engine crash at each step of 9 flips: records", str(res))
        assert res.ok and not res.duplicates and res.acked > 0, res
        assert read_side(pair.primary.bootstrap()) == active, "both clusters hold the same records at the same offsets"
    finally:
        stop_loads(loads)
        runner.stop()


def kill_primary_and_fail_over(pair, runner, loads, stall_mirror):
    """Kills the primary with -9 (after stalling the mirror with a SIGSTOPped standby while the
    clients go on writing, when ``stall_mirror``: a tail the standby never gets) and waits for
    the automatic failover; returns the engine's record of it."""
    mandate = runner.wait_state(lambda s: s.get("mandateUntilMs"), 30, "a write mandate")["mandateUntilMs"]
    if stall_mirror:
        pair.standby.sigstop(1)
        for load in loads:
            load.log.wait_more(STALLED, 60, "on the primary while the standby is stopped")
    killed_at = time.time()
    pair.primary.kill9(1)
    if stall_mirror:
        pair.standby.sigcont(1)
    state = runner.wait_state(lambda s: s.get("active") == "target" and "operation" not in s, 120,
                              "automatic failover to the standby")
    last = state["last"]
    assert last["reason"] == "ProbeFailed" and not last["fenceConfirmed"], last
    promoted_ms = last["startedMs"] + last["durationMs"]
    assert promoted_ms >= mandate, f"promoted at {promoted_ms} before the primary's mandate ran out at {mandate}"
    for load in loads:
        load.log.wait_more(PROGRESS, 120, "on the standby through discovery")
    record_figure("failover", f"kill -9{' (mirror stalled)' if stall_mirror else ''}: RTO s (kill to discovery on "
                  "the standby)", round(promoted_ms / 1000 - killed_at, 1))
    record_figure("failover", f"kill -9{' (mirror stalled)' if stall_mirror else ''}: records at risk "
                  "(last lag seen)", last["recordsAtRisk"])
    return last


@pytest.mark.parametrize("stall_mirror", [False, True], ids=["caught-up", "mirror-stalled"])
def test_a_killed_primary_fails_over_automatically_and_its_tail_is_quarantined(pair, tmp_path, stall_mirror):
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap(), automatic=True).start()
    try:
        runner.wait_mirroring("source")
        create_mirrored_topic(runner, pair.standby.bootstrap())
        loads = start_loads(tmp_path, runner.discovery)
        kill_primary_and_fail_over(pair, runner, loads, stall_mirror)
        pair.primary.start_node(1)
        state = runner.wait_mirroring("target", timeout=120)
        last = state["last"]
        assert last["recordsAtRiskExact"], last
        acks = stop_loads(loads)
        runner.wait_state(lambda s: s.get("lastLag") == 0, 60, "the mirror to catch up")
        active = read_side(pair.standby.bootstrap())
        res = check_records(acks, active)
        what = "kill -9 (mirror stalled)" if stall_mirror else "kill -9"
        record_figure("failover", f"{what}: records on the standby", str(res))
        record_figure("failover", f"{what}: divergent records (counted at failback)", last["recordsAtRisk"])
        # The standby reuses the offsets of the primary's unmirrored tail: such an offset was
        # acknowledged twice, once for a record that is lost (and kept in quarantine) — the first
        # or the second of the two acknowledgements, as the clients' lists are checked in turn.
        # Any other conflict is a fault.
        lost = {a.value for a in res.lost}
        unexpected = [c for c in res.conflicts
                      if not (c[0] == "two acks for one offset" and (c[3] in lost) != (c[4] in lost))]
        assert not unexpected and not res.reordered, res
        assert len(res.lost) <= last["recordsAtRisk"], (res, last)
        if stall_mirror:
            assert res.lost and last["recordsAtRisk"] > 0, "the stalled mirror left acknowledged records behind"
        if last["recordsAtRisk"]:
            quarantine = f"{TOPIC}.divergent.{last['id']}"
            kept = read_back(pair.primary.bootstrap(), quarantine, extra=EXEMPT_CLIENT)
            assert sum(len(r) for r in kept.values()) == last["recordsAtRisk"]
            values = {r.value.split(b" ", 1)[0].decode() for recs in kept.values() for r in recs}
            missing = [a for a in res.lost if a.value not in values]
            assert not missing, f"acknowledged records neither on the standby nor in {quarantine}: {missing[:5]}"
        assert read_side(pair.primary.bootstrap()) == active, "after the rejoin both clusters are equal"
    finally:
        runner.stop()


def test_a_divergent_tail_kept_blocks_failback(pair, tmp_path):
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap(), automatic=True,
                           keep_divergent_tail=True).start()
    try:
        runner.wait_mirroring("source")
        create_mirrored_topic(runner, pair.standby.bootstrap())
        loads = start_loads(tmp_path, runner.discovery)
        kill_primary_and_fail_over(pair, runner, loads, stall_mirror=True)
        pair.primary.start_node(1)
        state = runner.wait_state(lambda s: s.get("blocked"), 120, "failback blocked by the divergent tail")
        assert state["blocked"].startswith("FailbackBlocked: "), state["blocked"]
        assert "rejoin" in state and state["active"] == "target"
        code, text, _ = runner.failover("primary", timeout=20, check=False)
        assert code != 0 and "FailbackBlocked" in text, text
        stop_loads(loads)
    finally:
        runner.stop()


ENGINE_UID = 65534  # nobody: the user `strata active-standby` runs as in the partition test


class EnginePartition:
    """Drops every packet from processes of ENGINE_UID to ``port`` on this host (nftables, its
    own table): the engine and its in-process mirror lose the primary, the clients (root) keep
    it."""

    def __init__(self, port):
        self.table = f"strata_partition_{port}"
        self.port = port

    def cut(self):
        script = (f"add table inet {self.table}\n"
                  f"add chain inet {self.table} out {{ type filter hook output priority 0; }}\n"
                  f"add rule inet {self.table} out meta skuid {ENGINE_UID} tcp dport {self.port} drop\n")
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True)

    def heal(self):
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)


@pytest.mark.parametrize("run", [1, 2])
def test_a_primary_cut_off_from_the_engine_fences_itself_before_the_standby_is_promoted(pair, run):
    if shutil.which("nft") is None:
        pytest.fail("nft missing: tests/env/install/netns.sh installs nftables")
    work = Path(tempfile.mkdtemp(prefix="strata-partition-"))
    work.chmod(0o777)
    runner = ActiveStandby(work, pair.primary.bootstrap(), pair.standby.bootstrap(), automatic=True,
                           uid=ENGINE_UID).start()
    partition = EnginePartition(int(pair.primary.bootstrap().rsplit(":", 1)[1]))
    loads = ()
    try:
        runner.wait_mirroring("source")
        create_mirrored_topic(runner, pair.standby.bootstrap())
        loads = start_loads(work, runner.discovery)
        mandate = runner.wait_state(lambda s: s.get("mandateUntilMs"), 30, "a write mandate")["mandateUntilMs"]
        partition.cut()
        cut_at = time.time()
        # the clients still reach the primary and go on writing until its mandate runs out
        for load in loads:
            load.log.wait_more(PROGRESS, 60, "on the primary after the engine lost it")
        state = runner.wait_state(lambda s: s.get("active") == "target" and "operation" not in s, 120,
                                  "automatic failover to the standby")
        last = state["last"]
        promoted = (last["startedMs"] + last["durationMs"]) / 1000
        assert last["reason"] == "ProbeFailed" and not last["fenceConfirmed"], last
        assert promoted * 1000 >= mandate, f"promoted at {promoted} before the primary's mandate ran out at {mandate}"
        for load in loads:
            load.log.wait_more(PROGRESS, 120, "on the standby through discovery")
        partition.heal()
        state = runner.wait_mirroring("target", timeout=120)
        last = state["last"]
        assert last["recordsAtRiskExact"], last
        running, loads = loads, ()
        acks = stop_loads(running)
        ack_time = {a.value: t for load in running for a, t in zip(load.log.acked, load.log.ack_times)}
        runner.wait_state(lambda s: s.get("lastLag") == 0, 60, "the mirror to catch up")
        standby = read_side(pair.standby.bootstrap())
        res = check_records(acks, standby)
        # Records the primary acknowledged that the standby never got: in quarantine, and every
        # one of them acknowledged before the standby took writes (the primary fenced itself
        # when its mandate ran out; promotion waited for that and a clock margin).
        quarantine = f"{TOPIC}.divergent.{last['id']}"
        kept = read_back(pair.primary.bootstrap(), quarantine, extra=EXEMPT_CLIENT) if last["recordsAtRisk"] else {}
        values = {r.value.split(b" ", 1)[0].decode() for recs in kept.values() for r in recs}
        lost = {a.value for a in res.lost}
        assert lost <= values, f"acknowledged records neither on the standby nor in {quarantine}: {sorted(lost - values)[:5]}"
        late = sorted((ack_time[v] - promoted, v) for v in values if v in ack_time and ack_time[v] >= promoted)
        record_figure("failover", f"primary cut off from the engine (run {run}): cut to promotion s",
                      round(promoted - cut_at, 1))
        record_figure("failover", f"primary cut off from the engine (run {run}): records acknowledged by the "
                      "primary and kept in quarantine", last["recordsAtRisk"])
        assert not late, f"the primary acknowledged records after the standby's promotion: {late[:5]}"
        assert not [c for c in res.conflicts if c[0] != "two acks for one offset"] and not res.reordered, res
    finally:
        partition.heal()
        for load in loads:
            load.stop()
        runner.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_probe_flaps_shorter_than_the_threshold_never_fail_over(pair, tmp_path):
    runner = ActiveStandby(tmp_path, pair.primary.bootstrap(), pair.standby.bootstrap(), automatic=True).start()
    try:
        runner.wait_mirroring("source")
        for _ in range(10):
            pair.primary.sigstop(1)
            time.sleep(1.5)  # the fault's length: shorter than 3 probes a second apart
            pair.primary.sigcont(1)
            runner.wait_state(lambda s: s.get("probeFailures", 0) == 0, 30, "a good probe after the flap")
        state = runner.state()
        assert state["active"] == "source" and "last" not in state and "operation" not in state, state
    finally:
        runner.stop()

