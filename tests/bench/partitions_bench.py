"""Partition-scale benchmark: one broker holding many partitions, each with several segments.

Prints figures, never asserts them. For each target and partition count: a fresh single-node
broker, topics of 100 partitions created through the admin API, then ``--segments`` rounds of one
record per partition with ``segment.ms`` short enough that every round starts a new segment. It
reports the broker's open descriptors (``/proc/<pid>/fd``), its resident memory, and the time a
restart takes until every partition answers ListOffsets with its end, with the process's open-files limit
beside them. A run that fails (a broker that cannot open its files, say) prints what it saw.

    $STRATA_VENV/bin/python tests/bench/partitions_bench.py [--counts 1000,5000]
        [--segments 3] [--targets strata,kafka]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from harness.brokers import make_broker  # noqa: E402

PER_TOPIC = 100
PROPS = {
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "auto.create.topics.enable": "false",
    "log.roll.ms": "1000",
}


def proc_figures(pid):
    """(open descriptors, RSS MiB, soft open-files limit) of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    limit = "?"
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            limit = line.split()[3]
    return fds, rss, limit


def topics_for(count):
    return [f"scale-{i:05d}" for i in range((count + PER_TOPIC - 1) // PER_TOPIC)]


def create(bootstrap, count):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = topics_for(count)
    for i in range(0, len(names), 20):
        chunk = [NewTopic(t, num_partitions=PER_TOPIC, replication_factor=1, config={"segment.ms": "1000"})
                 for t in names[i:i + 20]]
        for topic, fut in admin.create_topics(chunk, request_timeout=120).items():
            fut.result(180)


def produce_round(bootstrap, count):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 2000000, "log_level": 2})
    failed = []
    for t in topics_for(count):
        for part in range(PER_TOPIC):
            p.produce(t, b"x" * 100, partition=part, on_delivery=lambda e, m: e and failed.append(e))
        p.poll(0)
    left = p.flush(300)
    if left or failed:
        raise RuntimeError(f"{left} records not delivered, {len(failed)} failed (first: {failed[:1]})")


def served(bootstrap, count, segments):
    """Whether every partition answers ListOffsets with its end (one record per segment)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = {TopicPartition(t, p): OffsetSpec.latest() for t in topics_for(count) for p in range(PER_TOPIC)}
    try:
        ends = admin.list_offsets(wanted, request_timeout=60)
        return all(f.result(60).offset == segments for f in ends.values())
    except Exception:  # not every partition answers yet
        return False


def run_one(kind, count, segments, work):
    b = make_broker(kind, work, props=PROPS)
    row = {"target": kind, "partitions": count, "segments": segments}
    try:
        b.start()
        create(b.bootstrap, count)
        for r in range(segments):
            if r:
                time.sleep(1.2)  # past segment.ms: the next append starts a new segment
            produce_round(b.bootstrap, count)
        row["fds"], row["rss"], row["limit"] = proc_figures(b.pid)
        b.stop()
        t0 = time.monotonic()
        b.start()
        deadline = time.monotonic() + 600
        while not served(b.bootstrap, count, segments):
            if time.monotonic() > deadline:
                raise RuntimeError("not every partition answered its end offset 600 s after the restart")
            time.sleep(0.5)
        row["startup"] = time.monotonic() - t0
        row["fds_after"], row["rss_after"], _ = proc_figures(b.pid)
    except Exception as e:  # the figure is what the broker could do
        row["error"] = f"{type(e).__name__}: {str(e)[:160]}"
    finally:
        try:
            b.stop()
        except Exception:
            pass
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1000,5000")
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--targets", default="strata")
    args = ap.parse_args()
    rows = []
    for kind in args.targets.split(","):
        for count in (int(c) for c in args.counts.split(",")):
            with tempfile.TemporaryDirectory(prefix=f"bench-partitions-{kind}-") as work:
                row = run_one(kind, count, args.segments, Path(work))
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    print("| target | partitions × segments | open descriptors | RSS MiB | restart until every partition "
          "answers its end offset | after restart: descriptors / RSS MiB | open-files limit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r and "startup" not in r:
            print(f"| {r['target']} | {r['partitions']} × {r['segments']} | {r.get('fds', '–')} | "
                  f"{r.get('rss', 0):.0f} | failed: {r['error']} | – | {r.get('limit', '?')} |")
            continue
        print(f"| {r['target']} | {r['partitions']} × {r['segments']} | {r['fds']} | {r['rss']:.0f} | "
              f"{r['startup']:.1f} s | {r['fds_after']} / {r['rss_after']:.0f} | {r['limit']} |")


if __name__ == "__main__":
    main()
