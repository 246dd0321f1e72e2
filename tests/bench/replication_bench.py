"""Replicated-cluster benchmark: Strata beside the reference Apache Kafka, each as a cluster on this
machine with the same server properties (harness.cluster.CLUSTER_PROPS: RF 3,
min.insync.replicas 2, broker session 4 s, replica lag 6 s) and the same librdkafka load
(confluent-kafka; Debian does not package rdkafka_performance). Prints figures, never asserts.

- 3 nodes, RF 3, acks=all, 1 KiB records: peak records/s with p50/p99 latency (produce() to
  delivery report), then p50/p99 at half of Kafka's peak rate (the same rate for both);
- 1 broker, RF 1, acks=1, 1 KiB: peak records/s with p50/p99 (today's single-broker figure);
- leader kill -9 -> the first acknowledgement of a record produced after the kill (p50, max over
  ``--kills``), at equal timeouts (same server and client properties);
- 6 brokers in 3 racks under a steady acks=all load: resident memory per broker (mean and max of
  the brokers' peaks, VmRSS every 100 ms; for Kafka the JVM).

A target that cannot run a step (its cluster did not form, a step failed) gets the reason in its
cells. The table goes to stdout and tests/.work/bench-replication.md.

    $STRATA_VENV/bin/python tests/bench/replication_bench.py [--targets kafka,strata] [--records N]
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent))
sys.path.insert(0, str(here))

from compare import RssSampler, create_topic, librdkafka_producer, markdown_table  # noqa: E402
from harness.brokers import KAFKA_SH, REPO_ROOT, make_broker  # noqa: E402
from harness.cluster import CLUSTER_PROPS, ClusterFormationError, make_cluster  # noqa: E402
from harness.replication import producer_config  # noqa: E402

TOPIC = "bench"  # the name compare.librdkafka_producer writes to
RECORD_SIZE = 1024
PARTITIONS = 3
ALONE_TIMEOUT = 10.0  # nodes that each still list only themselves after this never form a cluster
COLUMNS = {"kafka": "Kafka", "strata": "Strata"}
ROWS = [
    ("rf3_rps", "RF 3 acks=all peak records/s (3 brokers)"),
    ("rf3_mbs", "RF 3 acks=all peak MB/s"),
    ("rf3_p50", "RF 3 acks=all p50 latency ms at peak"),
    ("rf3_p99", "RF 3 acks=all p99 latency ms at peak"),
    ("half_rate", "half of Kafka's peak: rate records/s"),
    ("half_p50", "RF 3 acks=all p50 latency ms at half of Kafka's peak"),
    ("half_p99", "RF 3 acks=all p99 latency ms at half of Kafka's peak"),
    ("rf1_rps", "RF 1 acks=1 peak records/s (1 broker)"),
    ("rf1_p50", "RF 1 acks=1 p50 latency ms"),
    ("rf1_p99", "RF 1 acks=1 p99 latency ms"),
    ("kill_p50", "leader kill -9 -> next acknowledged write p50 s"),
    ("kill_max", "leader kill -9 -> next acknowledged write max s"),
    ("rss_mean", "RSS per broker, 6 brokers under load, mean of peaks MiB"),
    ("rss_max", "RSS per broker, 6 brokers under load, max MiB"),
]


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def producer_conf(bootstrap, idempotent=False):
    """The suites' load settings (harness.replication.producer_config), equal for both targets."""
    conf = producer_config(bootstrap, idempotent)
    if not idempotent:  # plain acks=all with the client's default retries
        conf.pop("message.send.max.retries")
    return conf


def paced_latency(bootstrap, rate, seconds):
    """p50/p99 latency (ms) of acks=all 1 KiB records produced at ``rate`` records/s."""
    from confluent_kafka import Producer
    p = Producer(producer_conf(bootstrap))
    p.list_topics(TOPIC, timeout=30)
    payload = os.urandom(RECORD_SIZE)
    lat, errors = [], []
    clock = time.perf_counter
    n = int(rate * seconds)
    start = clock()
    for i in range(n):
        due = start + i / rate
        while (wait := due - clock()) > 0:
            p.poll(min(0.005, wait))  # pacing; serves delivery reports meanwhile (never a negative timeout)
        p.produce(TOPIC, payload, on_delivery=lambda e, m, t0=clock(): (errors if e else lat).append(
            e if e else clock() - t0))
        p.poll(0)
    left = p.flush(120)
    if left or errors:
        raise RuntimeError(f"{left} undelivered, {len(errors)} errors (first: {errors[:1]})")
    lat.sort()
    return {"p50": pct(lat, 0.5) * 1000, "p99": pct(lat, 0.99) * 1000}


class FailoverProbe(threading.Thread):
    """Produces acks=all (idempotent) to partition 0 at ``rate`` records/s and records, for every
    delivered record, when it was produced and when it was acknowledged."""

    def __init__(self, bootstrap, topic, rate=500):
        super().__init__(daemon=True)
        from confluent_kafka import Producer
        self.p = Producer(producer_conf(bootstrap, idempotent=True))
        self.topic, self.rate = topic, rate
        self.acks = []  # (produced_at, acked_at)
        self.errors = []
        self.halt = threading.Event()

    def run(self):
        clock = time.monotonic
        start, i = clock(), 0
        try:
            while not self.halt.is_set():
                wait = start + i / self.rate - clock()
                if wait > 0:
                    self.p.poll(min(0.005, wait))  # never negative: poll(<0) blocks until an event
                    continue
                self.p.produce(self.topic, b"x" * 100, partition=0, on_delivery=lambda e, m, t0=clock(): (
                    self.errors.append(e) if e else self.acks.append((t0, clock()))))
                self.p.poll(0)
                i += 1
            self.p.flush(120)
        except Exception as e:  # reported by failover()
            self.errors.append(e)
            self.crashed = e

    crashed = None

    def first_ack_after(self, t):
        """Acknowledgement time of the first record produced after ``t``, or None."""
        later = [acked for produced, acked in list(self.acks) if produced > t]
        return min(later) if later else None


def failover(cluster, kills):
    """Seconds from kill -9 of the partition leader to the first acknowledgement of a record
    produced after the kill, ``kills`` times (the node restarted and caught up in between)."""
    cluster.create_topic("failover", partitions=1)
    probe = FailoverProbe(cluster.bootstrap(), "failover")
    probe.start()
    times = []
    try:
        deadline = time.monotonic() + 60
        while not probe.acks and time.monotonic() < deadline:
            time.sleep(0.1)  # poll interval of the deadline loop
        for k in range(kills):
            victim = cluster.leader("failover", 0)
            t = time.monotonic()
            cluster.kill9(victim)
            deadline = t + 120
            while probe.first_ack_after(t) is None:
                if probe.crashed is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"no acknowledged write within 120 s of killing leader {victim}; "
                                       f"producer errors {probe.errors[:3]}")
                time.sleep(0.01)  # poll interval of the deadline loop
            times.append(probe.first_ack_after(t) - t)
            log(f"{cluster.kind}: kill {k + 1}/{kills} of leader {victim}: next ack after {times[-1]:.2f} s")
            cluster.start_node(victim)
            cluster.wait_isr_full("failover")
    finally:
        probe.halt.set()
        probe.join(timeout=150)
    times.sort()
    return {"kill_p50": pct(times, 0.5), "kill_max": times[-1]}


def run_replicated(kind, args, work, results, kafka_peak):
    out = results[kind]
    c = make_cluster(kind, work / f"{kind}-3", brokers=3, props=CLUSTER_PROPS)
    try:
        log(f"{kind}: starting 3 nodes")
        c.start(alone_timeout=ALONE_TIMEOUT)
        c.create_topic(TOPIC, partitions=PARTITIONS)
        log(f"{kind}: RF 3 acks=all peak, {args.records} records")
        res = librdkafka_producer(c.bootstrap(), args.records, "all")
        out.update({"rf3_rps": res["rps"], "rf3_mbs": res["mbs"], "rf3_p50": res["p50"], "rf3_p99": res["p99"]})
        rate = (kafka_peak.get("rps") or res["rps"]) / 2
        out["half_rate"] = rate
        log(f"{kind}: RF 3 acks=all at {rate:.0f} records/s for {args.seconds} s")
        res = paced_latency(c.bootstrap(), rate, args.seconds)
        out.update({"half_p50": res["p50"], "half_p99": res["p99"]})
        log(f"{kind}: leader kill -9 x{args.kills}")
        out.update(failover(c, args.kills))
    except ClusterFormationError as e:
        for key in ("rf3_rps", "half_p50", "kill_p50"):
            out.setdefault(key, "cluster did not form")
        log(f"{kind}: {str(e).splitlines()[0]}")
    except Exception as e:
        log(f"{kind}: replicated steps failed:\n{traceback.format_exc()}")
        out.setdefault("rf3_rps", f"error: {type(e).__name__}")
    finally:
        c.close()


def run_single(kind, args, work, results):
    out = results[kind]
    props = {"num.partitions": str(PARTITIONS), "offsets.topic.replication.factor": "1",
             "auto.create.topics.enable": "false"}
    b = make_broker(kind, work / f"{kind}-1", props)
    try:
        b.start()
        create_topic(b.bootstrap)
        log(f"{kind}: RF 1 acks=1 peak, {args.records} records")
        res = librdkafka_producer(b.bootstrap, args.records, "1")
        out.update({"rf1_rps": res["rps"], "rf1_p50": res["p50"], "rf1_p99": res["p99"]})
    except Exception as e:
        log(f"{kind}: single-broker step failed:\n{traceback.format_exc()}")
        out.setdefault("rf1_rps", f"error: {type(e).__name__}")
    finally:
        b.stop()


def run_rss(kind, args, work, results):
    out = results[kind]
    c = make_cluster(kind, work / f"{kind}-6", brokers=6, racks="a,b,c", props=CLUSTER_PROPS)
    samplers = []
    try:
        log(f"{kind}: starting 6 nodes in 3 racks")
        c.start(alone_timeout=ALONE_TIMEOUT)
        c.create_topic(TOPIC, partitions=6)
        samplers = [RssSampler(n.pid) for n in c.nodes.values()]
        for s in samplers:
            s.start()
        log(f"{kind}: steady acks=all load for {args.seconds} s")
        paced_latency(c.bootstrap(), args.rss_rate, args.seconds)
        peaks = [s.stop() / 1024.0 for s in samplers]
        samplers = []
        out.update({"rss_mean": sum(peaks) / len(peaks), "rss_max": max(peaks)})
    except ClusterFormationError as e:
        out.setdefault("rss_mean", "cluster did not form")
        log(f"{kind}: {str(e).splitlines()[0]}")
    except Exception as e:
        log(f"{kind}: RSS step failed:\n{traceback.format_exc()}")
        out.setdefault("rss_mean", f"error: {type(e).__name__}")
    finally:
        for s in samplers:
            s.stop()
        c.close()


def fmt(v, key):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if key.endswith(("_rps", "_rate")):
        return f"{v:,.0f}"
    if key.startswith("kill_"):
        return f"{v:.2f}"
    return f"{v:.1f}"


def machine_line(args):
    kafka_version = subprocess.run([str(KAFKA_SH), "version"], capture_output=True, text=True,
                                   timeout=30).stdout.strip() or "?"
    rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=30).stdout.strip() or "?"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        load = open("/proc/loadavg").read().split()[0]
    except OSError:
        load = "?"
    return (f"Machine: nproc={os.cpu_count()}, {platform.system()} {platform.release()}, load average "
            f"{load} at the end; date {now}; Kafka {kafka_version}; Strata {rev}; {args.records} records of "
            f"{RECORD_SIZE} B per peak run, {args.seconds} s paced runs, {args.kills} leader kills, "
            f"RSS load {args.rss_rate} records/s; librdkafka through confluent-kafka, linger.ms=5.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="kafka,strata")
    ap.add_argument("--records", type=int, default=100000, help="records per peak run")
    ap.add_argument("--seconds", type=float, default=15, help="length of the paced runs")
    ap.add_argument("--kills", type=int, default=5, help="leader kills for the failover figure")
    ap.add_argument("--rss-rate", type=int, default=2000, help="records/s of the 6-broker load")
    ap.add_argument("--steps", default="replicated,single,rss")
    args = ap.parse_args()
    targets = [t for t in ("kafka", "strata") if t in args.targets.split(",")]
    steps = args.steps.split(",")
    results = {t: {} for t in targets}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-replication-") as tmp:
        work = Path(tmp)
        for kind in targets:
            kafka_peak = {"rps": results.get("kafka", {}).get("rf3_rps")}
            if not isinstance(kafka_peak["rps"], float):
                kafka_peak = {}
            if "replicated" in steps:
                run_replicated(kind, args, work, results, kafka_peak)
            if "single" in steps:
                run_single(kind, args, work, results)
            if "rss" in steps:
                run_rss(kind, args, work, results)
    table = markdown_table({k: COLUMNS[k] for k in targets}, ROWS, results, fmt) + "\n\n" + machine_line(args) + "\n"
    out_dir = REPO_ROOT / "tests" / ".work"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench-replication.md").write_text(table)
    print(table)
    log(f"done in {time.monotonic() - started:.0f} s; table in {out_dir / 'bench-replication.md'}")


if __name__ == "__main__":
    main()
