"""strata-mirror against brokers that lie. Both of its clusters are reached through a mutating
proxy (tests/harness/mutating_proxy.py) that garbles a share of the responses: flipped bits,
counts and lengths set to huge values, truncated bodies, frames that announce far more than
they send, garbage. While it does, records keep arriving on the source. The mirror process must
stay up with bounded memory and no panic, and once the proxies turn clean it must catch up:
every source record on the target with its content (key, value, headers, timestamp), nothing
invented, and the records produced after the proxies turned clean in source order.
"""
import time

from harness.data import RecordProducer, create_topic, read_all, record_counts
from harness.mirror import flow_config, record_figure, remote_topic
from harness.mutating_proxy import MutatingProxy, peak_rss_kib, proxied_listener_props
from harness.util import free_ports, unique_topic, wait_until

PARTITIONS = 3
HOSTILE_SECONDS = 20
FRACTION = 0.3  # of the responses garbled while hostile
PEAK_RSS_LIMIT_KIB = 128 * 1024


def _proxied_broker(strata_factory, name, seed):
    port, inner, proxy_port = free_ports(3)
    broker = strata_factory(name, proxied_listener_props(port, inner, proxy_port), port=port)
    proxy = MutatingProxy(("127.0.0.1", inner), port=proxy_port, fraction=0, seed=seed).start()
    return broker, proxy


def _content(rec):
    return rec.key, rec.value, tuple(rec.headers), rec.timestamp


def test_mirror_survives_garbled_responses_and_catches_up(strata_factory, mirror_factory):
    a, proxy_a = _proxied_broker(strata_factory, "a", seed=11)
    b, proxy_b = _proxied_broker(strata_factory, "b", seed=12)
    try:
        topic = unique_topic("hostile")
        create_topic(a.bootstrap, topic, PARTITIONS)
        producer = RecordProducer(a.bootstrap, topic, PARTITIONS, compression="lz4")
        producer.send(0, 300)
        config = flow_config("a", proxy_a.bootstrap, "b", proxy_b.bootstrap,
                             topics={"include": ["hostile-.*"]})
        remote = remote_topic(config, topic)
        mirror = mirror_factory(config)

        def mirrored(n):
            return sum(record_counts(b.bootstrap, remote).values()) >= n

        wait_until(lambda: mirrored(300), 30, "the first 300 records mirrored through clean proxies")

        # Hostile: a share of every response garbled, both clusters, records still arriving.
        proxy_a.fraction = proxy_b.fraction = FRACTION
        produced = 300
        deadline = time.monotonic() + HOSTILE_SECONDS
        while time.monotonic() < deadline:
            producer.send(produced, 50)
            produced += 50
            assert mirror.running(), f"strata-mirror exited while responses were garbled:\n{mirror.log_tail()}"
            time.sleep(0.5)  # a steady trickle of records, not a burst
        mutated = proxy_a.stats["mutated"] + proxy_b.stats["mutated"]
        print(f"proxy a: {dict(proxy_a.stats)}; proxy b: {dict(proxy_b.stats)}")
        assert mutated >= 50, f"only {mutated} responses garbled: the hostile phase did not happen"

        # Clean again: the mirror catches up.
        proxy_a.fraction = proxy_b.fraction = 0
        clean_from = produced
        producer.send(produced, 300)
        produced += 300
        source = read_all(a.bootstrap, topic)

        def complete():
            target = read_all(b.bootstrap, remote)
            have = {_content(r) for recs in target.values() for r in recs}
            return all(_content(r) in have for recs in source.values() for r in recs) and target

        target = wait_until(complete, 30, "every source record on the target once the proxies are clean",
                            interval=1)
        peak = peak_rss_kib(mirror.pid)
        record_figure("test_hostile_responses", "mirror_peak_rss_kib", peak)
        assert mirror.running(), f"strata-mirror exited:\n{mirror.log_tail()}"
        assert peak < PEAK_RSS_LIMIT_KIB, f"strata-mirror peaked at {peak} KiB"
        assert "panicked" not in mirror.log_text(), mirror.log_tail()

        for p in range(PARTITIONS):
            src, dst = source[p], target[p]
            src_content = {_content(r) for r in src}
            invented = [r for r in dst if _content(r) not in src_content]
            assert not invented, f"partition {p}: {len(invented)} target records not in the source, " \
                                 f"first {invented[0]!r:.300}"
            # The records produced after the proxies turned clean, in source order.
            tail = [_content(r) for r in src if int(r.key[1:]) >= clean_from]
            positions = {}
            for i, r in enumerate(dst):
                positions.setdefault(_content(r), []).append(i)
            last = -1
            for c in tail:
                later = [i for i in positions[c] if i > last]
                assert later, f"partition {p}: record {c[0]!r} out of order on the target"
                last = later[0]
        duplicates = sum(len(target[p]) for p in range(PARTITIONS)) - sum(len(source[p]) for p in range(PARTITIONS))
        record_figure("test_hostile_responses", "duplicates", duplicates)
        print(f"strata-mirror peak RSS {peak} KiB; {produced} records, {duplicates} copied twice")
    finally:
        proxy_a.stop()
        proxy_b.stop()

