"""Side-by-side benchmark of the reference Apache Kafka broker and the Strata broker.

Prints figures, never asserts them. Each target runs alone on this machine (one broker at a time,
same server properties: a single node and one topic with 3 partitions), and gets the same load:

- ``kafka-producer-perf-test`` (Java client), 1 KiB records, acks=1 then acks=all;
- a librdkafka producer (confluent-kafka), 1 KiB records, linger.ms=5, acks=1 then acks=all,
  latency measured from produce() to the delivery callback;
- ``kafka-consumer-perf-test`` reading back everything produced (fetch throughput, group join
  time on a row of its own);
- the broker's resident memory while idle (after start, before load) and its peak during the load
  (VmRSS of /proc/<pid>/status every 100 ms; for Kafka the pid is the JVM);
- the CPU time the broker process spent during the four producer runs (utime + stime of
  /proc/<pid>/stat), which shows the broker's own cost of a produce where the load generators
  on the same cores blur the throughput figures.

The result is one markdown table on stdout, also written to tests/.work/bench-compare.md.

    $STRATA_VENV/bin/python tests/bench/compare.py [--records N] [--targets strata,kafka]
        [--compression none|gzip|snappy|lz4|zstd]

``--compression`` sets both producers' codec (default none), so that the brokers' handling of
compressed batches (Strata and Kafka both decompress every produced batch to check its
records) is measured too.
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

from harness.brokers import KAFKA_SH, REPO_ROOT, kafka_tool, make_broker  # noqa: E402

TOPIC = "bench"
PARTITIONS = 3
RECORD_SIZE = 1024
TOOL_TIMEOUT = 240  # seconds for one perf-test run
CLIENT_TIMEOUT = 240  # seconds for one librdkafka producer run

# Server properties both targets get: a single node, single-replica internal topics.
PROPS = {
    "num.partitions": str(PARTITIONS),
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
}

COLUMNS = {"kafka": "Kafka", "strata": "Strata"}

COMPRESSION = "none"  # both producers' codec; set from --compression

# Rows of the table, in order: (key, label).
ROWS = [
    ("java_acks1_rps", "producer-perf-test acks=1 records/s"),
    ("java_acks1_mbs", "producer-perf-test acks=1 MB/s"),
    ("java_acks1_avg", "producer-perf-test acks=1 avg latency ms"),
    ("java_acks1_p50", "producer-perf-test acks=1 p50 latency ms"),
    ("java_acks1_p99", "producer-perf-test acks=1 p99 latency ms"),
    ("java_acksall_rps", "producer-perf-test acks=all records/s"),
    ("java_acksall_mbs", "producer-perf-test acks=all MB/s"),
    ("java_acksall_avg", "producer-perf-test acks=all avg latency ms"),
    ("java_acksall_p50", "producer-perf-test acks=all p50 latency ms"),
    ("java_acksall_p99", "producer-perf-test acks=all p99 latency ms"),
    ("rdk_acks1_rps", "librdkafka producer acks=1 records/s"),
    ("rdk_acks1_mbs", "librdkafka producer acks=1 MB/s"),
    ("rdk_acks1_p50", "librdkafka producer acks=1 p50 latency ms"),
    ("rdk_acks1_p99", "librdkafka producer acks=1 p99 latency ms"),
    ("rdk_acksall_rps", "librdkafka producer acks=all records/s"),
    ("rdk_acksall_mbs", "librdkafka producer acks=all MB/s"),
    ("rdk_acksall_p50", "librdkafka producer acks=all p50 latency ms"),
    ("rdk_acksall_p99", "librdkafka producer acks=all p99 latency ms"),
    ("cons_rps", "consumer-perf-test records/s"),
    ("cons_mbs", "consumer-perf-test MB/s"),
    ("cons_join", "consumer-perf-test group join ms"),
    ("cpu_produce", "broker CPU s during the producer runs"),
    ("rss_idle", "RSS idle MiB"),
    ("rss_peak", "RSS peak MiB"),
]


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def rss_kib(pid):
    """VmRSS of ``pid`` in KiB, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class RssSampler(threading.Thread):
    """Reads the VmRSS of ``pid`` every ``interval`` seconds and keeps the peak (KiB)."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            v = rss_kib(self.pid)
            if v is not None:
                self.peak = max(self.peak, v)
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak


def cpu_seconds(pid):
    """User plus system CPU time of process ``pid`` so far, in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# "200000 records sent, 41152.3 records/sec (40.19 MB/sec), 650.31 ms avg latency, 1234.00 ms max
# latency, 600 ms 50th, 1100 ms 95th, 1200 ms 99th, 1230 ms 99.9th."
PERF_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th")


def java_producer(bootstrap, records, acks):
    res = kafka_tool("producer-perf-test", "--topic", TOPIC, "--num-records", records,
                     "--record-size", RECORD_SIZE, "--throughput", "-1",
                     "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}",
                     f"compression.type={COMPRESSION}", timeout=TOOL_TIMEOUT)
    matches = PERF_LINE.findall(res.stdout)
    if not matches:
        raise RuntimeError(f"no summary line in producer-perf-test output:\n{res.stdout[-2000:]}")
    sent, rps, mbs, avg, _mx, p50, _p95, p99 = matches[-1]
    if int(sent) != records:
        raise RuntimeError(f"producer-perf-test sent {sent} of {records} records")
    return {"rps": float(rps), "mbs": float(mbs), "avg": float(avg), "p50": float(p50), "p99": float(p99)}


def librdkafka_producer(bootstrap, records, acks, topic=TOPIC, conf=None):
    """``records`` of RECORD_SIZE bytes to ``topic`` with confluent-kafka (``conf``: more client
    properties, e.g. TLS); throughput and delivery latency percentiles."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": str(acks), "linger.ms": 5,
                  "compression.codec": COMPRESSION, "client.id": f"bench-rdk-acks{acks}",
                  **(conf or {})})
    payload = os.urandom(RECORD_SIZE)
    latencies = []
    errors = []
    clock = time.perf_counter

    def delivered(err, _msg, t0):
        if err is not None:
            errors.append(err)
        else:
            latencies.append(clock() - t0)

    # Connect and fetch metadata before the clock starts.
    p.list_topics(topic, timeout=30)
    deadline = time.monotonic() + CLIENT_TIMEOUT
    start = clock()
    for i in range(records):
        while True:
            try:
                p.produce(topic, payload, on_delivery=lambda e, m, t0=clock(): delivered(e, m, t0))
                break
            except BufferError:
                p.poll(0.01)
                if time.monotonic() > deadline:
                    raise RuntimeError("librdkafka producer timed out (local queue full)")
        if i % 1000 == 999:
            p.poll(0)
    left = p.flush(max(1.0, deadline - time.monotonic()))
    elapsed = clock() - start
    if left or errors:
        raise RuntimeError(f"librdkafka producer: {left} undelivered, {len(errors)} errors "
                           f"(first: {errors[:1]})")
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000.0

    return {"rps": records / elapsed, "mbs": records * RECORD_SIZE / (1024 * 1024) / elapsed,
            "p50": pct(0.50), "p99": pct(0.99)}


def java_consumer(bootstrap, records):
    res = kafka_tool("consumer-perf-test", "--bootstrap-server", bootstrap, "--topic", TOPIC,
                     "--messages", records, "--timeout", "60000", timeout=TOOL_TIMEOUT)
    rows = [line for line in res.stdout.splitlines() if line.strip()]
    hdr_idx = next((i for i, r in enumerate(rows) if r.startswith("start.time")), None)
    if hdr_idx is None or hdr_idx + 1 >= len(rows):
        raise RuntimeError(f"unexpected consumer-perf-test output:\n{res.stdout[-2000:]}")
    header = [h.strip() for h in rows[hdr_idx].split(",")]
    values = [v.strip() for v in rows[hdr_idx + 1].split(",")]
    stats = dict(zip(header, values))
    got = int(stats["data.consumed.in.nMsg"])
    if got < records:
        raise RuntimeError(f"consumer-perf-test read {got} of {records} records")
    # The fetch.* figures leave out the group join (rebalance.time.ms), reported on its own row.
    return {"rps": float(stats["fetch.nMsg.sec"]), "mbs": float(stats["fetch.MB.sec"]),
            "join": float(stats["rebalance.time.ms"])}


def create_topic(bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)],
                              operation_timeout=30, request_timeout=30)
    fut[TOPIC].result(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(TOPIC, timeout=10)
        t = md.topics.get(TOPIC)
        if t is not None and t.error is None and len(t.partitions) == PARTITIONS and \
                all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"topic {TOPIC} has no leaders after 30 s")


def run_target(kind, records, work_root):
    """Runs the whole load against one broker of ``kind``; returns {row key: value or error}."""
    out = {}
    b = make_broker(kind, work_root / kind, dict(PROPS))
    t0 = time.monotonic()
    log(f"{kind}: starting broker")
    b.start()
    log(f"{kind}: ready at {b.bootstrap} (pid {b.pid}) after {time.monotonic() - t0:.1f} s")
    sampler = None
    try:
        create_topic(b.bootstrap)
        time.sleep(3)  # let start-up and topic creation settle before the idle figure
        idle = rss_kib(b.pid)
        out["rss_idle"] = idle / 1024.0 if idle else None
        sampler = RssSampler(b.pid)
        sampler.start()
        cpu_before = cpu_seconds(b.pid)
        produced = 0
        steps = [
            ("java", "1", java_producer),
            ("java", "all", java_producer),
            ("rdk", "1", librdkafka_producer),
            ("rdk", "all", librdkafka_producer),
        ]
        for client, acks, fn in steps:
            prefix = f"{client}_acks{acks}"
            log(f"{kind}: {client} producer acks={acks}, {records} records")
            t1 = time.monotonic()
            try:
                res = fn(b.bootstrap, records, acks)
                produced += records
                for k, v in res.items():
                    out[f"{prefix}_{k}"] = v
                log(f"{kind}: {client} acks={acks}: {res['rps']:.0f} rec/s, {res['mbs']:.1f} MB/s "
                    f"({time.monotonic() - t1:.1f} s)")
            except Exception as e:  # one failing step leaves the others' figures
                log(f"{kind}: {client} acks={acks} failed: {e}")
                out[f"{prefix}_rps"] = "error"
        cpu_after = cpu_seconds(b.pid)
        if cpu_before is not None and cpu_after is not None:
            out["cpu_produce"] = cpu_after - cpu_before
        if produced:
            log(f"{kind}: consumer-perf-test, {produced} records")
            t1 = time.monotonic()
            try:
                res = java_consumer(b.bootstrap, produced)
                out["cons_rps"], out["cons_mbs"], out["cons_join"] = res["rps"], res["mbs"], res["join"]
                log(f"{kind}: consumer: {res['rps']:.0f} rec/s, {res['mbs']:.1f} MB/s "
                    f"({time.monotonic() - t1:.1f} s)")
            except Exception as e:
                log(f"{kind}: consumer-perf-test failed: {e}")
                out["cons_rps"] = "error"
    except Exception:
        log(f"{kind}: run failed:\n{traceback.format_exc()}")
        out.setdefault("rss_idle", "error")
    finally:
        if sampler is not None:
            out["rss_peak"] = sampler.stop() / 1024.0
        log(f"{kind}: stopping broker")
        b.stop()
    return out


def fmt(v, key):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if key.endswith("_rps"):
        return f"{v:,.0f}"
    if key.endswith(("_p50", "_p99", "_avg", "_join")):
        return f"{v:.1f}" if v < 100 else f"{v:.0f}"
    if key.startswith("cpu_"):
        return f"{v:.2f}"
    return f"{v:.1f}"


def machine_line(records):
    kafka_version = subprocess.run([str(KAFKA_SH), "version"], capture_output=True, text=True,
                                   timeout=30).stdout.strip() or "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=30).stdout.strip() or "?"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Machine: nproc={os.cpu_count()}, {cpu}, {platform.system()} {platform.release()}; "
            f"date {now}; Kafka {kafka_version} (JVM heap from kafka.sh defaults); Strata {rev}; "
            f"{records} records of {RECORD_SIZE} B per producer run, compression {COMPRESSION}, "
            f"topic with {PARTITIONS} partitions.")


def markdown_table(columns, rows, results, fmt):
    """A markdown table: one column per key of ``columns`` (key -> heading), one row per
    (key, label) of ``rows``, cells ``fmt(results[column].get(row key), row key)``."""
    lines = ["| Measurement | " + " | ".join(columns.values()) + " |",
             "|---|" + "---:|" * len(columns)]
    for key, label in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(results[c].get(key), key) for c in columns) + " |")
    return "\n".join(lines)


def render(results, targets, records):
    cols = {k: COLUMNS[k] for k in ("kafka", "strata") if k in targets}
    return markdown_table(cols, ROWS, results, fmt) + "\n\n" + machine_line(records) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000, help="records per producer run")
    ap.add_argument("--targets", default="kafka,strata", help="comma-separated: kafka,strata")
    ap.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"],
                    help="codec of both producers")
    args = ap.parse_args()
    global COMPRESSION
    COMPRESSION = args.compression
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in COLUMNS]
    if unknown:
        ap.error(f"unknown targets {unknown}; known: {sorted(COLUMNS)}")

    work_dir = REPO_ROOT / "tests" / ".work"
    work_dir.mkdir(parents=True, exist_ok=True)
    work_root = Path(tempfile.mkdtemp(prefix="bench-", dir=work_dir))
    started = time.monotonic()
    results = {}
    try:
        for kind in targets:
            results[kind] = run_target(kind, args.records, work_root)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    table = render(results, targets, args.records)
    (work_dir / "bench-compare.md").write_text(table)
    print(table)
    log(f"done in {time.monotonic() - started:.0f} s; table in {work_dir / 'bench-compare.md'}")


if __name__ == "__main__":
    main()
