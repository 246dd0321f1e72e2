"""What TLS costs: produce and consume throughput over PLAINTEXT and over SSL on the same broker,
for Strata and for the reference Apache Kafka, one broker at a time (figures printed, never
asserted).

Each target gets one broker with a PLAINTEXT and an SSL listener (harness/tls.py: a test CA, an
RSA-2048 server key; TLS 1.3 with AES-GCM is what both ends pick) and one topic of 3 partitions.
Load: Kafka's ``kafka-producer-perf-test`` (Java client, 1 KiB records, acks=1) and
``kafka-consumer-perf-test`` reading everything back, over each listener in turn, ``--runs``
times. The table gives the best run of each, and SSL as a share of PLAINTEXT.

    $STRATA_VENV/bin/python tests/bench/tls_bench.py [--records N] [--runs R] [--targets strata,kafka]
"""
import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compare import PARTITIONS, PROPS, RECORD_SIZE  # noqa: E402  (the same broker set-up as compare.py)
from harness.brokers import kafka_tool  # noqa: E402
from harness.tls import Certs, start_tls_broker  # noqa: E402

TOPIC = "bench-tls"
PRODUCER_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def client_props(ca: Path, ssl: bool) -> list[str]:
    return ["security.protocol=SSL", "ssl.truststore.type=PEM", f"ssl.truststore.location={ca}"] if ssl else []


def produce(bootstrap: str, records: int, ca: Path, ssl: bool) -> float:
    out = kafka_tool("producer-perf-test", "--topic", TOPIC, "--num-records", records,
                     "--record-size", RECORD_SIZE, "--throughput", "-1", "--producer-props",
                     f"bootstrap.servers={bootstrap}", "acks=1", *client_props(ca, ssl), timeout=600).stdout
    sent, _rps, mbs = PRODUCER_LINE.findall(out)[-1]
    assert int(sent) == records, out[-1000:]
    return float(mbs)


def consume(bootstrap: str, records: int, ca: Path, ssl: bool, work: Path, run: int) -> float:
    config = work / f"consumer-{ssl}-{run}.properties"
    config.write_text("".join(f"{p}\n" for p in client_props(ca, ssl)))
    out = kafka_tool("consumer-perf-test", "--bootstrap-server", bootstrap, "--topic", TOPIC,
                     "--messages", records, "--group", f"bench-{ssl}-{run}", "--timeout", "60000",
                     "--consumer.config", str(config), timeout=600).stdout
    rows = [line for line in out.splitlines() if line.strip()]
    at = next(i for i, r in enumerate(rows) if r.startswith("start.time"))
    stats = dict(zip((h.strip() for h in rows[at].split(",")), (v.strip() for v in rows[at + 1].split(","))))
    assert int(stats["data.consumed.in.nMsg"]) >= records, out[-1000:]
    # fetch.MB.sec leaves out the group join
    return float(stats["fetch.MB.sec"])

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--targets", default="strata,kafka")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="strata-tls-bench-") as tmp:
        work = Path(tmp)
        certs = Certs(work / "ca")
        keystore = certs.server_inline()
        for kind in args.targets.split(","):
            b = start_tls_broker(kind, work / kind, certs, keystore, PROPS)
            try:
                kafka_tool("topics", "--bootstrap-server", b.broker.bootstrap, "--create", "--topic", TOPIC,
                           "--partitions", PARTITIONS)
                best = {}
                for run in range(args.runs):
                    for ssl, bootstrap in ((False, b.broker.bootstrap), (True, b.ssl)):
                        mbs = produce(bootstrap, args.records, certs.ca, ssl)
                        best[("produce", ssl)] = max(best.get(("produce", ssl), 0), mbs)
                        total = args.records * 2 * (run + 1) if ssl else args.records * (2 * run + 1)
                        mbs = consume(bootstrap, total, certs.ca, ssl, work, run)
                        best[("consume", ssl)] = max(best.get(("consume", ssl), 0), mbs)
                        print(f"{kind} run {run + 1} {'SSL' if ssl else 'PLAINTEXT'}: produce and consume done",
                              file=sys.stderr, flush=True)
                for what in ("produce", "consume"):
                    plain, tls = best[(what, False)], best[(what, True)]
                    rows.append((kind, what, plain, tls, tls / plain * 100))
            finally:
                b.broker.stop()
    print(f"\n{args.records:,} records of {RECORD_SIZE} B per run, best of {args.runs} runs, acks=1, "
          f"{PARTITIONS} partitions, one broker at a time\n")
    print("| broker | load | PLAINTEXT MB/s | SSL MB/s | SSL / PLAINTEXT |")
    print("|---|---|---:|---:|---:|")
    for kind, what, plain, tls, share in rows:
        print(f"| {kind} | {what} | {plain:.1f} | {tls:.1f} | {share:.0f} % |")


if __name__ == "__main__":
    main()
