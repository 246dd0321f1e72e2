"""What TLS costs: produce and consume throughput over PLAINTEXT and over SSL on the same broker,
for Strata and for the reference Apache Kafka, one broker at a time (figures printed, never
asserted).

Each target gets one broker with a PLAINTEXT and an SSL listener (harness/tls.py: a test CA, an
RSA-2048 server key; TLS 1.3 with AES-GCM is what both ends pick). Two client stacks: Kafka's
``kafka-producer-perf-test`` and ``kafka-consumer-perf-test`` (the Java client, JSSE) and
librdkafka through confluent-kafka (OpenSSL); 1 KiB records, acks=1, a fresh topic of 3
partitions per run, written and then read back whole, over each listener in turn, ``--runs``
times. The table gives the best run of each, SSL as a share of PLAINTEXT, and the broker's own
CPU seconds per GiB moved (its share of the cost, whatever the client spends: both share the
machine's cores).

    $STRATA_VENV/bin/python tests/bench/tls_bench.py [--records N] [--runs R] [--targets strata,kafka]
"""
import argparse
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compare import PARTITIONS, PROPS, RECORD_SIZE, cpu_seconds, librdkafka_producer  # noqa: E402  (compare.py's set-up)
from harness.brokers import kafka_tool  # noqa: E402
from harness.tls import Certs, start_tls_broker  # noqa: E402

PRODUCER_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")
MIB = 1024 * 1024
CLIENT_TIMEOUT = 300  # seconds for one librdkafka consumer run


def client_props(ca: Path, ssl: bool) -> list[str]:
    return ["security.protocol=SSL", "ssl.truststore.type=PEM", f"ssl.truststore.location={ca}"] if ssl else []


def java_produce(bootstrap: str, topic: str, records: int, ca: Path, ssl: bool, _work: Path) -> float:
    out = kafka_tool("producer-perf-test", "--topic", topic, "--num-records", records,
                     "--record-size", RECORD_SIZE, "--throughput", "-1", "--producer-props",
                     f"bootstrap.servers={bootstrap}", "acks=1", *client_props(ca, ssl), timeout=600).stdout
    sent, _rps, mbs = PRODUCER_LINE.findall(out)[-1]
    assert int(sent) == records, out[-1000:]
    return float(mbs)


def java_consume(bootstrap: str, topic: str, records: int, ca: Path, ssl: bool, work: Path) -> float:
    config = work / f"consumer-{topic}.properties"
    config.write_text("".join(f"{p}\n" for p in client_props(ca, ssl)))
    out = kafka_tool("consumer-perf-test", "--bootstrap-server", bootstrap, "--topic", topic,
                     "--messages", records, "--group", f"bench-{topic}", "--timeout", "60000",
                     "--consumer.config", str(config), timeout=600).stdout
    rows = [line for line in out.splitlines() if line.strip()]
    at = next(i for i, r in enumerate(rows) if r.startswith("start.time"))
    stats = dict(zip((h.strip() for h in rows[at].split(",")), (v.strip() for v in rows[at + 1].split(","))))
    assert int(stats["data.consumed.in.nMsg"]) >= records, out[-1000:]
    # fetch.MB.sec leaves out the group join
    return float(stats["fetch.MB.sec"])


def rdk_conf(bootstrap: str, ca: Path, ssl: bool) -> dict:
    conf = {"bootstrap.servers": bootstrap}
    if ssl:
        # The chain is verified; the test certificate names 127.0.0.1 only as an IP SAN.
        conf.update({"security.protocol": "SSL", "ssl.ca.location": str(ca),
                     "ssl.endpoint.identification.algorithm": "none"})
    return conf


def rdk_produce(bootstrap: str, topic: str, records: int, ca: Path, ssl: bool, _work: Path) -> float:
    conf = {k: v for k, v in rdk_conf(bootstrap, ca, ssl).items() if k != "bootstrap.servers"}
    return librdkafka_producer(bootstrap, records, 1, topic=topic, conf=conf)["mbs"]


def rdk_consume(bootstrap: str, topic: str, records: int, ca: Path, ssl: bool, _work: Path) -> float:
    from confluent_kafka import Consumer

    c = Consumer({**rdk_conf(bootstrap, ca, ssl), "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + CLIENT_TIMEOUT
        count = size = 0
        start = None
        while count < records:
            assert time.monotonic() < deadline, f"read {count} of {records} records"
            for m in c.consume(num_messages=10_000, timeout=1):
                if m.error():
                    continue
                # The clock starts at the first record: the group join is left out, as
                # consumer-perf-test's fetch.MB.sec leaves it out.
                start = start or time.perf_counter()
                count += 1
                size += len(m.value())
        return size / MIB / (time.perf_counter() - start)
    finally:
        c.close()


CLIENTS = {"Java": (java_produce, java_consume), "librdkafka": (rdk_produce, rdk_consume)}


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
                best, cpu = {}, {}
                for run in range(args.runs):
                    for client, (produce, consume) in CLIENTS.items():
                        for ssl, bootstrap in ((False, b.broker.bootstrap), (True, b.ssl)):
                            topic = f"bench-tls-{client.lower()}-{run}-{'ssl' if ssl else 'plain'}"
                            kafka_tool("topics", "--bootstrap-server", b.broker.bootstrap, "--create",
                                       "--topic", topic, "--partitions", PARTITIONS)
                            for what, fn in (("produce", produce), ("consume", consume)):
                                before = cpu_seconds(b.broker.pid)
                                mbs = fn(bootstrap, topic, args.records, certs.ca, ssl, work)
                                per_gib = (cpu_seconds(b.broker.pid) - before) / (args.records * RECORD_SIZE / 1024 ** 3)
                                key = (client, what, ssl)
                                best[key] = max(best.get(key, 0), mbs)
                                cpu[key] = min(cpu.get(key, per_gib), per_gib)
                            print(f"{kind} run {run + 1} {client} {'SSL' if ssl else 'PLAINTEXT'}: done",
                                  file=sys.stderr, flush=True)
                for client in CLIENTS:
                    for what in ("produce", "consume"):
                        plain, tls = best[(client, what, False)], best[(client, what, True)]
                        rows.append((kind, client, what, plain, tls, tls / plain * 100,
                                     cpu[(client, what, False)], cpu[(client, what, True)]))
            finally:
                b.broker.stop()
    print(f"\n{args.records:,} records of {RECORD_SIZE} B per run, best of {args.runs} runs, acks=1, "
          f"{PARTITIONS} partitions, one broker at a time\n")
    print("| broker | client | load | PLAINTEXT MB/s | SSL MB/s | SSL / PLAINTEXT "
          "| broker CPU s/GiB PLAINTEXT | broker CPU s/GiB SSL |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for kind, client, what, plain, tls, share, cpu_plain, cpu_tls in rows:
        print(f"| {kind} | {client} | {what} | {plain:.1f} | {tls:.1f} | {share:.0f} % "
              f"| {cpu_plain:.2f} | {cpu_tls:.2f} |")


if __name__ == "__main__":
    main()
