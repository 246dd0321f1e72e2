"""Mirror benchmark: strata-mirror next to Apache Kafka MirrorMaker 2 (dedicated mode) on one
flow between two Strata brokers, with direct produce into a Strata broker as the baseline.

Prints figures, never asserts them. One run on one machine, one thing at a time:

- direct produce: N records (default 500,000 x 1 KiB over 8 partitions) produced with Kafka's
  ``producer-perf-test`` (the Java client: acks=all, linger.ms=5, batch.size=256 KiB, no
  compression) into a fresh Strata broker; records/s and MB/s;
- per mirror (strata-mirror, then MirrorMaker 2), on a fresh pair of Strata brokers ``a`` ->
  ``b`` and the same MM2 properties file (``topics=bench``, DefaultReplicationPolicy, every other
  setting at its default): the same N records are produced into ``a`` first, then ``a.bench`` is
  created on ``b`` and a consumer there (assigned to every partition, fetching) watches the
  records arrive while the mirror starts and copies them. Throughput = records / time between the first and the last record arriving,
  as that consumer sees it, also as % of direct produce;
- replication latency, once the mirror is caught up: a steady producer on ``a`` (default 1,000
  records/s of 1 KiB for 15 s, ``linger.ms=0``) while the consumer on ``b`` computes receive time
  minus record timestamp (CreateTime, kept by both mirrors); p50 and p99;
- peak resident memory of the mirror process (VmRSS of /proc/<pid>/status every 100 ms from the
  moment it is ready, through the copy and the latency probe, to its stop; for MirrorMaker 2 the
  JVM, with the default heap options of kafka.sh);
- the time from starting the mirror process to the first record arriving on the target.

The result is one markdown table on stdout, also written to tests/.work/bench-mirror.md.

    $STRATA_VENV/bin/python tests/bench/mirror_bench.py [--records N] [--mirrors strata,mm2]
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.brokers import KAFKA_SH, REPO_ROOT, StrataBroker, kafka_tool  # noqa: E402
from harness.data import create_topic, produce  # noqa: E402
from harness.mirror import MirrorProcess, strata_mirror_bin  # noqa: E402
from harness.mm2 import MirrorMaker2Process, mm2_properties  # noqa: E402

from compare import RssSampler, markdown_table  # noqa: E402  (tests/bench/compare.py)

TOPIC = "bench"
SOURCE, TARGET = "a", "b"
REMOTE = f"{SOURCE}.{TOPIC}"
BROKER_PROPS = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "num.partitions": "1",
    "auto.create.topics.enable": "false",
}
COLUMNS = {"direct": "Direct produce", "strata": "strata-mirror",
           "strata-identity": "strata-mirror, Identity naming", "mm2": "MirrorMaker 2"}
MIRROR_LABELS = {"strata": "strata-mirror", "strata-identity": "strata-mirror, Identity naming",
                 "mm2": "MirrorMaker 2"}
IDENTITY_POLICY = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
DEFAULT_POLICY = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy"
ROWS = [
    ("rps", "records/s"),
    ("mbs", "MB/s"),
    ("pct", "% of direct produce"),
    ("lat_p50", "replication latency p50 ms"),
    ("lat_p99", "replication latency p99 ms"),
    ("lat_n", "latency samples"),
    ("rss_peak", "peak RSS MiB (mirror process)"),
    ("first", "start to first record on target s"),
]


def log(msg):
    print(f"[bench-mirror] {msg}", file=sys.stderr, flush=True)


def mib(n_records, record_size):
    return n_records * record_size / (1024 * 1024)


class TargetWatcher(threading.Thread):
    """A librdkafka consumer on the target, assigned to every partition of the remote topic from
    the beginning before the mirror starts. Counts the bulk records, noting when the first and
    the ``bulk``-th arrived; every record after those is a latency probe whose receive time minus
    CreateTime is kept. Batches are taken with a 5 ms timeout (a batch call waits for its whole
    timeout unless it fills up), probes one by one."""

    def __init__(self, bootstrap, topic, partitions, bulk):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.partitions, self.bulk = bootstrap, topic, partitions, bulk
        self.count = 0
        self.first_at = None  # (monotonic time, records counted by then)
        self.bulk_at = None  # monotonic time the bulk-th record arrived
        self.latencies = []  # ms
        self.error = None
        self._stop_event = threading.Event()
        self.assigned = threading.Event()
        self.bulk_done = threading.Event()

    def run(self):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        try:
            c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "bench-watcher",
                          "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                          "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 8388608,
                          "queued.max.messages.kbytes": 262144})
            try:
                c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
                self.assigned.set()
                while not self._stop_event.is_set() and self.count < self.bulk:
                    msgs = c.consume(num_messages=10000, timeout=0.005)
                    if not msgs:
                        continue
                    now = time.monotonic()
                    bad = [m.error() for m in msgs if m.error() is not None]
                    if bad:
                        raise RuntimeError(f"consumer error on {self.topic}: {bad[0]}")
                    if self.first_at is None:
                        self.first_at = (now, len(msgs))
                    self.count += len(msgs)
                    if self.count >= self.bulk:
                        self.bulk_at = now
                        self.bulk_done.set()
                while not self._stop_event.is_set():
                    m = c.poll(0.1)
                    if m is None:
                        continue
                    if m.error() is not None:
                        raise RuntimeError(f"consumer error on {self.topic}: {m.error()}")
                    self.latencies.append(time.time() * 1000.0 - m.timestamp()[1])
            finally:
                c.close()
        except Exception as e:  # reported by the waits of the main thread
            self.error = e
            self.assigned.set()
            self.bulk_done.set()

    def stop(self):
        self._stop_event.set()
        self.join(timeout=30)


def steady_producer(bootstrap, rate, seconds, record_size):
    """Produces ``rate`` records/s for ``seconds`` (each timestamped when produced); returns how
    many were acknowledged."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    payload = os.urandom(record_size)
    total = int(rate * seconds)
    errors = []
    start = time.monotonic()
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing of the rate-limited producer
        p.produce(TOPIC, payload, key=b"lat-%d" % i,
                  on_delivery=lambda err, _m: errors.append(err) if err is not None else None)
        p.poll(0)
    left = p.flush(60)
    if left or errors:
        raise RuntimeError(f"latency producer: {left} undelivered, {len(errors)} errors (first: {errors[:1]})")
    return total


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def wait_event(event, timeout, what, watcher):
    if not event.wait(timeout) or watcher.error is not None:
        raise RuntimeError(f"{what}: {watcher.error or f'not within {timeout:.0f} s'} "
                           f"({watcher.count} records seen on the target)")


PERF_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def run_direct(args, work_root):
    out = {}
    b = StrataBroker(work_root / "direct", dict(BROKER_PROPS))
    log("direct: starting a Strata broker")
    b.start()
    try:
        create_topic(b.bootstrap, TOPIC, args.partitions)
        proc = kafka_tool("producer-perf-test", "--topic", TOPIC, "--num-records", args.records,
                          "--record-size", args.record_size, "--throughput", "-1",
                          "--producer-props", f"bootstrap.servers={b.bootstrap}", "acks=all",
                          "linger.ms=5", "batch.size=262144", "compression.type=none",
                          timeout=args.timeout)
        summary = [m for m in PERF_LINE.finditer(proc.stdout)][-1]
        out["rps"] = float(summary.group(2))
        out["mbs"] = mib(args.records, args.record_size) * out["rps"] / args.records
        out["pct"] = 100.0
        log(f"direct: {out['rps']:.0f} records/s, {out['mbs']:.1f} MB/s")
    except Exception:
        log(f"direct: failed:\n{traceback.format_exc()}")
        out["rps"] = "error"
    finally:
        b.stop()
        if not args.keep:
            shutil.rmtree(work_root / "direct", ignore_errors=True)
    return out


def flow_properties(args, source_bootstrap, target_bootstrap, identity=False):
    return mm2_properties({SOURCE: source_bootstrap, TARGET: target_bootstrap}, SOURCE, TARGET, {
        "topics": TOPIC,
        "replication.policy.class": IDENTITY_POLICY if identity else DEFAULT_POLICY,
        "tasks.max": str(args.tasks),
        "sync.topic.acls.enabled": "false",  # Strata brokers have no DescribeAcls
    })


def run_mirror(kind, args, work_root):
    """Bulk copy, then latency, through mirror ``kind`` between two fresh Strata brokers."""
    out = {}
    root = work_root / kind
    brokers, mirror, watcher, sampler = [], None, None, None
    try:
        for name in (SOURCE, TARGET):
            b = StrataBroker(root / f"strata-{name}", dict(BROKER_PROPS))
            brokers.append(b)
            b.start()
        a, b = brokers
        create_topic(a.bootstrap, TOPIC, args.partitions)
        log(f"{kind}: producing {args.records} records into the source")
        t0 = time.monotonic()
        produce(a.bootstrap, TOPIC, args.records, args.partitions, value_size=args.record_size,
                timeout=args.timeout)
        log(f"{kind}: source loaded in {time.monotonic() - t0:.1f} s")
        # The remote topic exists before the mirror starts (both mirrors take it as it is), so the
        # watcher is fetching when the first record lands.
        identity = kind == "strata-identity"
        remote = TOPIC if identity else REMOTE
        create_topic(b.bootstrap, remote, args.partitions)
        watcher = TargetWatcher(b.bootstrap, remote, args.partitions, args.records)
        watcher.start()
        wait_event(watcher.assigned, 60, f"{kind}: watcher assigned", watcher)
        props = flow_properties(args, a.bootstrap, b.bootstrap, identity)
        if kind == "mm2":
            mirror = MirrorMaker2Process(root / "mirror", props, clusters=[TARGET])
        else:
            mirror = MirrorProcess(root / "mirror", mm2_properties=props, source=SOURCE, target=TARGET)
        log(f"{kind}: starting the mirror")
        spawned = time.monotonic()
        mirror.start()
        sampler = RssSampler(mirror.pid)
        sampler.start()
        wait_event(watcher.bulk_done, args.timeout, f"{kind}: bulk copy", watcher)
        first_t, first_n = watcher.first_at
        elapsed = watcher.bulk_at - first_t
        copied = args.records - first_n
        out["first"] = first_t - spawned
        if elapsed > 0 and copied > 0:
            out["rps"] = copied / elapsed
            out["mbs"] = mib(copied, args.record_size) / elapsed
        log(f"{kind}: bulk copy {out.get('rps', 0):.0f} records/s, {out.get('mbs', 0):.1f} MB/s "
            f"(first record {out['first']:.1f} s after the start, last {watcher.bulk_at - spawned:.1f} s)")
        log(f"{kind}: latency probe, {args.latency_rate} records/s for {args.latency_seconds} s")
        sent = steady_producer(a.bootstrap, args.latency_rate, args.latency_seconds, args.record_size)
        deadline = time.monotonic() + 120
        while len(watcher.latencies) < sent and watcher.error is None and time.monotonic() < deadline:
            time.sleep(0.1)  # poll interval of the deadline loop
        lat = sorted(watcher.latencies)
        if watcher.error is not None or len(lat) < sent:
            raise RuntimeError(f"{kind}: {len(lat)} of {sent} latency probes arrived ({watcher.error})")
        out["lat_p50"], out["lat_p99"], out["lat_n"] = percentile(lat, 0.50), percentile(lat, 0.99), len(lat)
        log(f"{kind}: latency p50 {out['lat_p50']:.1f} ms, p99 {out['lat_p99']:.1f} ms ({len(lat)} probes)")
    except Exception:
        log(f"{kind}: failed:\n{traceback.format_exc()}")
        if mirror is not None:
            log(f"{kind}: tail of {mirror.log_path}:\n{mirror.log_tail(30)}")
        out.setdefault("rps", "error")
    finally:
        if sampler is not None:
            out["rss_peak"] = sampler.stop() / 1024.0
        if watcher is not None:
            watcher.stop()
        if mirror is not None:
            mirror.stop()
        for br in reversed(brokers):
            br.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return out


def fmt(v, key):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if key in ("rps", "lat_n"):
        return f"{v:,.0f}"
    if key.startswith("lat_"):
        return f"{v:.1f}" if v < 100 else f"{v:.0f}"
    return f"{v:.1f}"


def machine_line(args):
    kafka_version = subprocess.run([str(KAFKA_SH), "version"], capture_output=True, text=True,
                                   timeout=30).stdout.strip() or "?"
    mirror_version = subprocess.run([str(strata_mirror_bin()), "--version"], capture_output=True, text=True,
                                    timeout=30).stdout.strip() or "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Machine: nproc={os.cpu_count()}, {cpu}, {platform.system()} {platform.release()}; date {now}; "
            f"{mirror_version}; MirrorMaker 2 from Kafka {kafka_version} (dedicated mode, kafka.sh heap "
            f"defaults). Brokers: Strata for every column (one for direct produce, a fresh source/target "
            f"pair per mirror). {args.records:,} records of {args.record_size} B over {args.partitions} "
            f"partitions; both mirrors run the same MM2 properties file (topics={TOPIC}, remote topic "
            f"created beforehand, "
            f"tasks.max={args.tasks}, DefaultReplicationPolicy; IdentityReplicationPolicy for the Identity "
            f"column; other settings default). Throughput: "
            f"records between the first and the last arriving on the target, as a consumer there sees "
            f"them; direct produce is Kafka's producer-perf-test (Java client, acks=all, linger.ms=5, "
            f"batch.size=256 KiB) into a fresh Strata broker. Latency: {args.latency_rate} records/s "
            f"for {args.latency_seconds} s produced into the caught-up source, receive time on the target "
            f"minus CreateTime.")


def render(results, columns, args):
    table = markdown_table({c: COLUMNS[c] for c in columns}, ROWS, results, fmt)
    return table + "\n\n" + machine_line(args) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=500_000, help="records mirrored (default 500,000)")
    ap.add_argument("--record-size", type=int, default=1024, help="value bytes per record (default 1024)")
    ap.add_argument("--partitions", type=int, default=8, help="partitions of the topic (default 8)")
    ap.add_argument("--tasks", type=int, default=1, help="tasks.max of the flow (default 1)")
    ap.add_argument("--latency-rate", type=int, default=1000, help="latency probe records/s (default 1000)")
    ap.add_argument("--latency-seconds", type=int, default=15, help="latency probe duration (default 15)")
    ap.add_argument("--mirrors", default="strata,strata-identity,mm2",
                    help="comma-separated: strata (default policy: whole source batches forwarded), "
                         "strata-identity (identity policy: records re-encoded with a provenance "
                         "header), mm2")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (data and logs)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds for one load or copy (default: 300 + 1 s per 2,000 records)")
    args = ap.parse_args()
    mirrors = [m.strip() for m in args.mirrors.split(",") if m.strip()]
    unknown = [m for m in mirrors if m not in MIRROR_LABELS]
    if unknown:
        ap.error(f"unknown mirrors {unknown}; known: {sorted(MIRROR_LABELS)}")
    if args.timeout is None:
        args.timeout = 300 + args.records / 2000

    work_dir = REPO_ROOT / "tests" / ".work"
    work_dir.mkdir(parents=True, exist_ok=True)
    work_root = Path(tempfile.mkdtemp(prefix="bench-mirror-", dir=work_dir))
    started = time.monotonic()
    results = {}
    try:
        results["direct"] = run_direct(args, work_root)
        for kind in mirrors:
            results[kind] = run_mirror(kind, args, work_root)
            base = results["direct"].get("rps")
            if isinstance(base, float) and isinstance(results[kind].get("rps"), float):
                results[kind]["pct"] = 100.0 * results[kind]["rps"] / base
    finally:
        if args.keep:
            log(f"work directory kept: {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)
    table = render(results, ["direct", *mirrors], args)
    (work_dir / "bench-mirror.md").write_text(table)
    print(table)
    log(f"done in {time.monotonic() - started:.0f} s; table in {work_dir / 'bench-mirror.md'}")


if __name__ == "__main__":
    main()
