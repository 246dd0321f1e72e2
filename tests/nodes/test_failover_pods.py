"""Active-standby failover on real nodes, as the example's header tells a user to run it:
`deploy/examples/active-standby.yaml` (KafkaCluster `primary`, 3 brokers in zone-a; `standby`, 3
brokers in zone-b; topic `checkout`; MirrorFlow `primary-to-standby`, Preserve, Automatic, the
discovery Service `kafka-active`) applied to a namespace; broker pods, the mirror pod and the
operator pods all run the project's image. Host clients (librdkafka) bootstrap through the
discovery Service only, acks=all, idempotent.

1. The example mirrors: both clusters Ready, `kubectl get mf` shows Phase Mirroring, Active
   source and the lag; records written through discovery land on the primary and reach the
   standby at the same offsets. Then a benchmark (printed): the mirror pod as the operator runs
   it against the same binary and flow file on the host, each copying a 100,000-record backlog
   of 1 KiB while the other stands still.
2. Planned flips (`kubectl patch` of `spec.failover.active`) to the standby and back, under load
   through discovery; the leading operator is killed -9 as each flip starts (first its process,
   which restarts in its pod; then its process and its pod, so the other operator pod takes the
   Lease): the operator that takes over finishes the flip from the step saved in the status, one
   operation per flip, nothing lost, nothing stored twice, both clusters equal per offset. (A
   batch in flight as the fence lands can be stored on the old side while its answer is lost to
   the client's re-bootstrap, and sent again to the new side: the mirror carried it over with
   its producer identity, so the new side answers it as a duplicate.)
3. The primary's zone goes down under load (Automatic mode): the standby is promoted once the
   primary's mandate ran out, clients go on writing through discovery; the zone comes back, the
   primary rejoins as the standby (its divergent tail quarantined, or FailbackBlocked while the
   flow keeps it), and a planned failback makes it active again with the clusters equal.

Figures (RTO, records at risk) are printed, not asserted.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.kube import has_condition
from harness.replication import Ack, check_records

pytestmark = pytest.mark.timeout(1500)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "examples" / "active-standby.yaml"
NS = "failover-pods"
FLOW = "primary-to-standby"
TOPIC = "checkout"
PARTITIONS = 6
GROUP = "checkout-readers"
SYSTEM_NS = "strata-system"
# Reads of a fenced cluster (the standby) with a client id the write fence lets through.
EXEMPT = "strata-failover-check"
DISCOVERY = f"kafka-active.{NS}.svc:9092"
FIGURES: list[str] = []


def figure(text: str) -> None:
    FIGURES.append(text)
    print(f"\n[failover on real nodes] {text}")


def bootstrap(side: str) -> str:
    return f"{side}-bootstrap.{NS}.svc:9092"


def flow(nodes) -> dict:
    return nodes.get_json("mirrorflow", FLOW, namespace=NS)


def state(mf: dict) -> dict:
    return (mf.get("status") or {}).get("failover") or {}


def settled(nodes, active: str, timeout: float, what: str) -> dict:
    """Waits until `active` is the active side, no operation or rejoin is pending and the mirror
    runs from it (the flow is back to mirroring, in one direction or the other)."""
    def done():
        mf = flow(nodes)
        st, fo = mf.get("status") or {}, state(mf)
        return mf if (st.get("activeCluster") == active and not fo.get("operation")
                      and not fo.get("rejoin") and fo.get("mirrorFrom") == active) else None
    return nodes.wait_until(done, timeout=timeout, interval=1, what=what,
                            describe=lambda: {k: v for k, v in state(flow(nodes)).items() if k != "last"})


def side_of(kafka, address: str) -> set[str]:
    """Which clusters' brokers Metadata through `address` lists (by their pod names)."""
    hosts = kafka.metadata(address)["brokers"].values()
    return {h.split("-", 1)[0] for h in hosts}


def discovery_leads_to(nodes, kafka, side: str) -> None:
    """Waits until Metadata through the discovery Service lists only `side`'s brokers (the
    Service's endpoints reach kube-proxy a moment after the operator moved its selector; until
    then a fenced broker may answer, with REBOOTSTRAP_REQUIRED)."""
    def leads():
        try:
            return side_of(kafka, DISCOVERY) == {side}
        except AssertionError:  # the host client failed (REBOOTSTRAP_REQUIRED from a fenced broker)
            return False
    nodes.wait_until(leads, timeout=60, interval=1, what=f"discovery leading to the {side}'s brokers")


def read_side(kafka, side: str) -> dict[int, list[tuple[int, str]]]:
    out: dict[int, list[tuple[int, str]]] = {}
    for p, offset, value in kafka.consume(bootstrap(side), TOPIC, timeout=120, client_id=EXEMPT):
        out.setdefault(int(p), []).append((offset, value))
    return {p: sorted(r) for p, r in out.items()}


def wait_equal(nodes, kafka, timeout: float = 180) -> dict:
    """Waits for lag 0, then for both clusters to hold the same records at the same offsets."""
    nodes.wait_until(lambda: (flow(nodes).get("status") or {}).get("lagRecords") == 0,
                     timeout=timeout, interval=1, what="the mirror's lag to reach 0")
    last = {}

    def equal():
        a, b = read_side(kafka, "primary"), read_side(kafka, "standby")
        last.update(primary=sum(map(len, a.values())), standby=sum(map(len, b.values())))
        return a if a == b else None
    return nodes.wait_until(equal, timeout=timeout, interval=2,
                            what=f"primary and standby equal per offset (last seen {last})")


def operator_leader(nodes) -> str:
    lease = nodes.get_json("lease", "strata-operator", namespace=SYSTEM_NS)
    return lease["spec"]["holderIdentity"]


def kill9_pod_process(pod: str, binary: str = "strata-operator") -> int:
    """kill -9 of the process of `binary` running in pod `pod` on this host's real nodes.
    Returns the PID killed."""
    pid = pod_process(pod, binary)
    os.kill(pid, signal.SIGKILL)
    return pid


def cpu_cgroup_procs(pid: int) -> Path:
    """The `cgroup.procs` file of the CPU cgroup of process `pid` (cgroup v1's cpu controller,
    or the v2 unified hierarchy)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            return Path("/sys/fs/cgroup") / path.lstrip("/") / "cgroup.procs"
        if "cpu" in controllers.split(","):
            return Path("/sys/fs/cgroup/cpu") / path.lstrip("/") / "cgroup.procs"
    raise AssertionError(f"no CPU cgroup for process {pid}")


def pod_process(pod: str, binary: str) -> int:
    """The PID of the process of `binary` running in pod `pod` on this host's real nodes (a
    container's HOSTNAME is its pod's name)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0]
            if not cmd.endswith(binary.encode()):
                continue
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"HOSTNAME={pod}".encode() in env:
            return int(entry)
    raise AssertionError(f"no {binary} process of pod {pod} on this host")


def patch_active(nodes, side: str, **failback) -> None:
    spec = {"failover": {"active": side, **({"failback": failback} if failback else {})}}
    nodes.kubectl("patch", "-n", NS, "mirrorflow", FLOW, "--type=merge", "-p", json.dumps({"spec": spec}))


def checked(result: dict, records: dict) -> object:
    acks = [Ack(*r) for r in result["acked"]]
    return check_records(acks, records)


@pytest.fixture(scope="module")
def example(nodes, kafka, operator_release, namespaces):
    namespaces.make(NS)
    nodes.kubectl("apply", "-n", NS, "-f", str(EXAMPLE))

    def clusters_ready():
        return all(len(nodes.ready_pods(NS, f"kafka.strata.dev/cluster={c}")) == 3
                   for c in ("primary", "standby"))
    nodes.wait_until(clusters_ready, timeout=300, interval=1, what="3 primary and 3 standby broker pods Ready")
    nodes.wait_until(lambda: has_condition(nodes.get_json("kafkatopic", TOPIC, namespace=NS), "Ready", "True"),
                     timeout=180, what=f"KafkaTopic {TOPIC} Ready")
    settled(nodes, "source", timeout=240, what="the flow mirroring from the primary")
    nodes.wait_until(lambda: has_condition(flow(nodes), "Ready", "True"), timeout=180, interval=1,
                     what=f"MirrorFlow {FLOW} Ready (its mirror pod running)")
    return True


def test_1_the_example_mirrors_through_the_discovery_service(nodes, kafka, example):
    # `kubectl get mf` as a user reads it
    table = nodes.kubectl("get", "-n", NS, "mf", FLOW)
    header, row = table.strip().splitlines()
    assert header.split()[:4] == ["NAME", "PHASE", "ACTIVE", "LAG"], table
    assert row.split()[:3] == [FLOW, "Mirroring", "source"], table
    mf = flow(nodes)
    assert has_condition(mf, "Ready", "True"), mf["status"]["conditions"]
    # the mirror runs as a pod of the project's image in the standby's zone
    (mirror,) = nodes.ready_pods(NS, f"kafka.strata.dev/mirrorflow={FLOW}")
    node = nodes.get_json("node", mirror["spec"]["nodeName"])
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-b", mirror["spec"]["nodeName"]
    # discovery leads clients to the primary's brokers
    discovery_leads_to(nodes, kafka, "primary")
    acked = kafka.produce(DISCOVERY, TOPIC, 2000, prefix="first")
    records = wait_equal(nodes, kafka)
    check = check_records([Ack(*a) for a in acked], records)
    assert not check.lost and not check.conflicts, check
    # a consumer group reads 1000 records through discovery and commits: its offsets reach the
    # standby unchanged (Preserve), and the status says when the mirror last checkpointed
    kafka.consume(DISCOVERY, TOPIC, count=1000, group=GROUP)
    committed = kafka.group_offsets(bootstrap("primary"), GROUP, TOPIC, PARTITIONS)
    assert sum(committed.values()) >= 1000, committed
    nodes.wait_until(lambda: kafka.group_offsets(bootstrap("standby"), GROUP, TOPIC, PARTITIONS,
                                                 client_id=EXEMPT) == committed,
                     timeout=120, interval=2, what=f"group {GROUP}'s offsets on the standby")
    nodes.wait_until(lambda: (flow(nodes).get("status") or {}).get("lastCheckpointTime"), timeout=120,
                     interval=2, what="status.lastCheckpointTime")


BENCH_TOPIC = "mirror-bench"
BENCH_RECORDS = 100_000
BENCH_SIZE = 1024


def copy_rate(run) -> tuple[float, float]:
    """(records/s, MB/s) of a catch-up watcher's samples, from the first sample that shows
    progress to the last (the mirror's start-up and its first round trip left out)."""
    result = run.result()
    samples = result["samples"]
    assert samples[-1][1] >= result["source_end"], \
        f"the standby did not catch up: {samples[-1][1]} of {result['source_end']} records"
    first = next(i for i, (_, n) in enumerate(samples) if n > samples[0][1])
    (t0, n0), (t1, n1) = samples[first], samples[-1]
    records = (n1 - n0) / (t1 - t0)
    return records, records * BENCH_SIZE / 1e6


def test_1b_the_mirror_pod_copies_as_fast_as_the_same_mirror_on_the_host(nodes, kafka, example, tmp_path):
    """Benchmark (printed, not asserted): the flow's mirror as the operator runs it (its pod, its
    ConfigMap) against the same `strata-mirror` binary and flow file run on the host (in the
    pod's CPU cgroup: the pods here have no CPU requests, and a host process would otherwise
    get a far larger share of the two cores than any pod), each
    copying a backlog of BENCH_RECORDS records of 1 KiB between the same two clusters while the
    other stands still (SIGSTOP); rounds in the order pod, host, host, pod, so that a drift of
    the machine over the test weighs on both alike."""
    created = kafka.create_topic(bootstrap("primary"), BENCH_TOPIC, PARTITIONS, 3)
    assert created["created"], created
    nodes.wait_until(lambda: kafka.ends(bootstrap("standby"), BENCH_TOPIC, PARTITIONS, EXEMPT) is not None,
                     timeout=120, interval=2, what=f"{BENCH_TOPIC} mirrored to the standby")
    (mirror,) = nodes.ready_pods(NS, f"kafka.strata.dev/mirrorflow={FLOW}")
    pod = mirror["metadata"]["name"]
    (config_map,) = nodes.get_json("configmap", namespace=NS, selector=f"kafka.strata.dev/mirrorflow={FLOW}")["items"]
    flow_file = tmp_path / "flow.yaml"
    flow_file.write_text(config_map["data"]["flow.yaml"])
    rates: dict[str, list[tuple[float, float]]] = {"pod": [], "host": []}
    for where in ("pod", "host", "host", "pod"):
        pid = pod_process(pod, "strata-mirror")
        os.kill(pid, signal.SIGSTOP)
        host = None
        try:  # the pod's process is never left stopped
            fill_s = kafka.fill(bootstrap("primary"), BENCH_TOPIC, BENCH_RECORDS, BENCH_SIZE)
            watch = kafka.catch_up(bootstrap("primary"), bootstrap("standby"), BENCH_TOPIC, PARTITIONS, EXEMPT)
            with watch:
                nodes.wait_until(lambda: watch.acked() >= 1, timeout=60, interval=0.2, what="the catch-up watcher")
                if where == "pod":
                    os.kill(pid, signal.SIGCONT)
                else:
                    # In the pod's CPU cgroup (its share of the CPU beside the broker pods),
                    # outside its namespaces.
                    join = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cpu_cgroup_procs(pid))]
                    with open(tmp_path / "host-mirror.log", "ab") as log:
                        host = subprocess.Popen(nodes.cluster_dns_command(
                            [*join, os.environ["STRATA_MIRROR_BIN"], "--config", str(flow_file)]),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                rate = copy_rate(watch)
            rates[where].append(rate)
            figure(f"mirror copying a backlog of {BENCH_RECORDS} x 1 KiB ({where}): {rate[0]:,.0f} records/s, "
                   f"{rate[1]:.1f} MB/s (backlog written in {fill_s:.1f} s)")
        finally:
            if host is not None:
                host.terminate()
                host.wait(timeout=60)
            # After a host round the pod's process, which stood still while the host's mirror
            # copied, starts again from the standby's log end (kill -9; its container restarts).
            try:
                os.kill(pid, signal.SIGKILL if where == "host" else signal.SIGCONT)
            except ProcessLookupError:
                pass
        if where == "host":
            def restarted(old=pid):
                try:
                    return (pod_process(pod, "strata-mirror") != old
                            and len(nodes.ready_pods(NS, f"kafka.strata.dev/mirrorflow={FLOW}")) == 1)
                except AssertionError:  # between the old process and the new one
                    return False
            nodes.wait_until(restarted, timeout=180, interval=1, what="the mirror pod's process restarted and Ready")
    mean = {where: sum(r[0] for r in rs) / len(rs) for where, rs in rates.items()}
    figure(f"mirror under the operator vs on the host (mean of 2 rounds each): {100 * mean['pod'] / mean['host']:.0f}% "
           "(goal >= 95%)")
    wait_equal(nodes, kafka)


def test_2_planned_flips_with_the_leading_operator_killed(nodes, kafka, example):
    serial = state(flow(nodes))["serial"]
    rto = []
    with kafka.load(DISCOVERY, TOPIC, seconds=900, rate=200, prefix="flips") as load:
        nodes.wait_until(lambda: load.acked() >= 500, timeout=120, what="500 records acknowledged")
        for n, (to, name) in enumerate([("target", "standby"), ("source", "primary")]):
            leader = operator_leader(nodes)
            patch_active(nodes, to)
            # the leading operator dies as the flip starts: in the first flip its container
            # restarts in the same pod and resumes from the step saved in the status; in the
            # second its pod is gone too, and the other operator pod takes the Lease once it
            # expires and finishes the flip
            nodes.wait_until(lambda: state(flow(nodes)).get("serial", 0) > serial, timeout=60,
                             interval=0.2, what="the flip to start")
            kill9_pod_process(leader)
            if n == 1:
                nodes.kubectl("delete", "pod", "-n", SYSTEM_NS, leader, "--grace-period=0", "--force",
                              "--wait=false")
                nodes.wait_until(lambda: operator_leader(nodes) != leader, timeout=120, interval=1,
                                 what="the other operator pod to take the Lease")
            mf = settled(nodes, to, timeout=240, what=f"the flow failed over to the {name}")
            serial += 1
            fo = state(mf)
            assert fo["serial"] == serial, f"one operation per flip, saw serial {fo['serial']} (expected {serial})"
            last = fo["last"]
            assert (last["to"], last["reason"], last["recordsAtRisk"]) == (to, "DesiredActiveChanged", 0), last
            assert last["fenceConfirmed"], last
            rto.append(last["durationMs"])
            discovery_leads_to(nodes, kafka, name)
            at = load.acked()
            nodes.wait_until(lambda: load.acked() >= at + 500, timeout=180, interval=1,
                             what=f"500 more records acknowledged through discovery on the {name}")
        load.stop()
        result = load.result()
    records = wait_equal(nodes, kafka)
    check = checked(result, records)
    figure(f"planned flips (leading operator killed -9 in each): RTO {rto} ms; sent {result['sent']}, "
           f"errors {result['errors']}; {check}")
    assert not check.lost and not check.conflicts and not check.duplicates, check


def test_3_the_primary_zone_goes_down_and_the_standby_takes_over(nodes, kafka, example):
    serial = state(flow(nodes))["serial"]
    with kafka.load(DISCOVERY, TOPIC, seconds=900, rate=200, prefix="zone") as load:
        nodes.wait_until(lambda: load.acked() >= 1000, timeout=120, what="1000 records acknowledged")
        down_at = time.time()
        nodes.zone_down("zone-a")
        try:
            def failed_over():
                mf = flow(nodes)
                return mf if (mf.get("status") or {}).get("activeCluster") == "target" else None
            mf = nodes.wait_until(failed_over, timeout=180, interval=1, what="automatic failover to the standby")
            at = load.acked()
            nodes.wait_until(lambda: load.acked() >= at + 1000, timeout=180, interval=1,
                             what="1000 more records acknowledged through discovery on the standby")
            write_at = time.time()
        finally:
            nodes.zone_up("zone-a")
        last = state(mf)["last"]
        assert (last["reason"], last["to"]) == ("ProbeFailed", "target"), last
        assert state(mf)["serial"] == serial + 1, state(mf)
        figure(f"zone-a down: failover RTO (first failed probe to discovery) {last['durationMs']} ms; "
               f"zone down to 1000 writes acknowledged on the standby {write_at - down_at:.1f} s; "
               f"records at risk (last lag seen) {last['recordsAtRisk']}")

        # the primary's brokers return and it rejoins: its divergent tail (records acknowledged
        # by the primary that the mirror had not copied) is counted, copied to quarantine and,
        # since the example keeps it, blocks failback until a person lets it go
        nodes.wait_until(lambda: len(nodes.ready_pods(NS, "kafka.strata.dev/cluster=primary")) == 3,
                         timeout=300, interval=1, what="the primary's brokers Ready again")

        def rejoined():
            mf = flow(nodes)
            fo = state(mf)
            if fo.get("blocked"):
                return mf
            return mf if (fo.get("mirrorFrom") == "target" and not fo.get("rejoin")) else None
        mf = nodes.wait_until(rejoined, timeout=300, interval=1, what="the primary to rejoin as the standby")
        fo = state(mf)
        blocked = fo.get("blocked")
        if blocked:
            # the count is in the message; truncating lets the primary rejoin
            assert blocked.startswith("FailbackBlocked: "), blocked
            assert has_condition(mf, "Degraded", "True", "FailbackBlocked"), mf["status"]["conditions"]
            patch_active(nodes, "target", truncateUnreplicatedTail=True)
        else:
            patch_active(nodes, "target")
        last = state(settled(nodes, "target", timeout=300, what="the primary mirroring from the standby"))["last"]
        assert last["recordsAtRiskExact"], last
        if blocked:
            assert blocked.startswith(f"FailbackBlocked: {last['recordsAtRisk']} records on source"), (blocked, last)
        figure(f"zone-a down: the primary rejoined {'after FailbackBlocked was lifted' if blocked else 'at once'}")
        load.stop()
        result = load.result()
    records = wait_equal(nodes, kafka)
    check = checked(result, records)
    lost = {a.value for a in check.lost}
    figure(f"zone-a down: divergent records counted at rejoin {last['recordsAtRisk']}; acknowledged and lost "
           f"{len(check.lost)}; stored twice {len(check.duplicates)}; sent {result['sent']}, "
           f"errors {result['errors']}")
    # a reused offset of the unmirrored tail was acknowledged twice, once for a lost record
    unexpected = [c for c in check.conflicts
                  if not (c[0] == "two acks for one offset" and (c[3] in lost) != (c[4] in lost))]
    # a record stored twice reads as going back once: printed, not expected (a retry of a batch
    # the mirror carried over is answered as a duplicate on the standby), not asserted in this
    # unplanned case
    twice = {val for val, _ in check.duplicates}
    reordered = [r for r in check.reordered if r[2] not in twice]
    assert not unexpected and not reordered, check
    assert len(check.lost) <= last["recordsAtRisk"], (check, last)
    if last["recordsAtRisk"]:
        quarantine = f"{TOPIC}.divergent.{last['id']}"
        kept = {v.split(" ", 1)[0] for _, _, v in
                kafka.consume(bootstrap("primary"), quarantine, timeout=120, client_id=EXEMPT)}
        missing = [a for a in check.lost if a.value not in kept]
        assert not missing, f"acknowledged records neither on the standby nor in {quarantine}: {missing[:5]}"

    # planned failback: the primary is active again, both clusters equal
    patch_active(nodes, "source", truncateUnreplicatedTail=False)
    mf = settled(nodes, "source", timeout=240, what="failback to the primary")
    assert state(mf)["last"]["recordsAtRisk"] == 0, state(mf)["last"]
    discovery_leads_to(nodes, kafka, "primary")
    wait_equal(nodes, kafka)
