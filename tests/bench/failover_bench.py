"""Active-standby failover benchmark: two single-node Strata clusters with ``strata
active-standby`` between them (Preserve, Automatic, the same engine the operator runs), a
librdkafka producer (confluent-kafka, acks=all, idempotent, 200 records/s) bootstrapping through
the discovery address only. Prints figures, never asserts.

- RTO of planned failovers (``strata failover --to``, alternating sides): from the request to
  the first acknowledged write after discovery pointed at the new side; p50 and max over
  ``--planned`` runs;
- RTO of unplanned failovers (the active cluster killed -9; Automatic mode, so promotion waits
  for the dead side's write mandate, at least 10 s): from the kill to the first acknowledged
  write on the standby; p50 and max over ``--unplanned`` runs (between runs the killed cluster
  restarts, rejoins and a planned failback makes it active again);
- the cost of the write-fence check on the produce path: ``kafka-producer-perf-test``
  (1 KiB, acks=1) against one broker without a write mandate and with one set (the check then
  also compares the clock with the mandate on every request), alternating, median MB/s of each.

The table goes to stdout and tests/.work/bench-failover.md.

    $STRATA_VENV/bin/python tests/bench/failover_bench.py [--planned 5] [--unplanned 5]
"""
import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent))
sys.path.insert(0, str(here))

from compare import create_topic as create_perf_topic, java_producer  # noqa: E402
from harness.brokers import REPO_ROOT, kafka_tool  # noqa: E402
from harness.data import create_topic, topic_partitions  # noqa: E402
from harness.failover import EXEMPT_CLIENT, ActiveStandby, Pair  # noqa: E402
from harness.replication import ConfluentLoad  # noqa: E402
from harness.util import wait_until  # noqa: E402

TOPIC = "orders"
PARTITIONS = 3
RATE = 200
SIDE = {"standby": "target", "primary": "source"}


def log(msg):
    print(f"[failover bench] {msg}", file=sys.stderr, flush=True)


def first_write_after(load, t, timeout=120):
    return wait_until(lambda: load.log.first_ack_after(t), timeout, f"an acknowledged write after {t:.1f}",
                      interval=0.05)


def pointed_at(state):
    last = state["last"]
    return (last["startedMs"] + last["durationMs"]) / 1000


def planned_runs(runner, load, runs):
    rtos = []
    for i in range(runs):
        to = "standby" if i % 2 == 0 else "primary"
        asked = time.time()
        _, _, state = runner.failover(to)
        first = first_write_after(load, pointed_at(state))
        rtos.append(first - asked)
        log(f"planned to the {to}: {rtos[-1]:.2f} s (engine: {state['last']['durationMs']} ms)")
    if runs % 2:
        runner.failover("primary")  # start the unplanned runs from the primary
    return rtos


def unplanned_runs(pair, runner, load, runs):
    rtos = []
    for i in range(runs):
        runner.wait_state(lambda s: s.get("mandateUntilMs"), 30, "a write mandate")
        killed = time.time()
        pair.primary.kill9(1)
        state = runner.wait_state(lambda s: s.get("active") == "target" and "operation" not in s, 120,
                                  "automatic failover to the standby")
        first = first_write_after(load, max(killed, pointed_at(state)))
        rtos.append(first - killed)
        log(f"unplanned (primary killed -9): {rtos[-1]:.2f} s, records at risk {state['last']['recordsAtRisk']}")
        pair.primary.start_node(1)
        runner.wait_mirroring("target", timeout=120)
        runner.failover("primary")
    return rtos


def fence_cost(work_dir, records, rounds):
    """Median MB/s of producer-perf-test without and with a write mandate on one broker."""
    pair = Pair(work_dir)
    pair.primary.start()
    try:
        bootstrap = pair.primary.bootstrap()
        create_perf_topic(bootstrap)
        figures = {"without": [], "with": []}
        for _ in range(rounds):
            for case in ("without", "with"):
                if case == "with":
                    until = int(time.time() * 1000) + 3_600_000
                    kafka_tool("configs", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "brokers",
                               "--entity-default", "--add-config", f"strata.write.mandate.expiry.ms={until}")
                else:
                    kafka_tool("configs", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "brokers",
                               "--entity-default", "--delete-config", "strata.write.mandate.expiry.ms", check=False)
                res = java_producer(bootstrap, records, 1)
                figures[case].append(res["mbs"])
                log(f"producer-perf-test {case} a mandate: {res['mbs']:.1f} MB/s")
        return {k: statistics.median(v) for k, v in figures.items()}
    finally:
        pair.close()


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--planned", type=int, default=5)
    ap.add_argument("--unplanned", type=int, default=5)
    ap.add_argument("--perf-records", type=int, default=500_000)
    ap.add_argument("--perf-rounds", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="strata-failover-bench-") as tmp:
        work = Path(tmp)
        pair = Pair(work / "pair").start()
        runner = ActiveStandby(work / "runner", pair.primary.bootstrap(), pair.standby.bootstrap(),
                               automatic=True).start()
        load = None
        try:
            runner.wait_mirroring("source")
            create_topic(runner.discovery, TOPIC, PARTITIONS)
            wait_until(lambda: topic_partitions(pair.standby.bootstrap(), TOPIC, extra=EXEMPT_CLIENT) == PARTITIONS,
                       60, f"{TOPIC} mirrored to the standby")
            load = ConfluentLoad(runner.discovery, TOPIC, PARTITIONS, prefix=1, rate=RATE).start()
            load.log.wait_acked(100, 60, "before the first failover")
            planned = planned_runs(runner, load, args.planned)
            unplanned = unplanned_runs(pair, runner, load, args.unplanned)
        finally:
            if load is not None:
                load.stop()
            runner.stop()
            pair.close()
        for name, values in (("planned", planned), ("unplanned (kill -9)", unplanned)):
            if values:
                rows.append((f"{name} failover RTO to the first acknowledged write, p50 / max s ({len(values)} runs)",
                             f"{statistics.median(values):.2f} / {max(values):.2f}"))
        if args.perf_rounds:
            cost = fence_cost(work / "perf", args.perf_records, args.perf_rounds)
            loss = 100.0 * (1 - cost["with"] / cost["without"])
            rows.append(("produce MB/s without / with a write mandate (median of "
                         f"{args.perf_rounds}, producer-perf-test 1 KiB acks=1)",
                         f"{cost['without']:.1f} / {cost['with']:.1f} ({loss:+.1f}% cost)"))
    table = ["| Measurement | Strata |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows]
    machine = (f"{platform.node()}, {datetime.date.today()}, {platform.machine()}, "
               f"{len(__import__('os').sched_getaffinity(0))} cores; load {RATE} records/s through discovery")
    text = "\n".join(table) + "\n\n" + machine + "\n"
    print(text)
    out = REPO_ROOT / "tests" / ".work"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-failover.md").write_text(text)


if __name__ == "__main__":
    main()
