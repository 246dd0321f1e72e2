// Java-client (kafka-clients 4.x) driver for the compatibility suite tests/compat/test_java_client.py.
// Built by tests/env/install/java-client.sh; run as `java -cp CP Driver COMMAND --opt value ...`.
//
//   produce      --bootstrap B --topic T --count N [--start I] [--compression C] [--ts-base MS]
//                [--ts-step MS] [--partitions P --partitioner mod] [--prop k=v ...]
//   consume      --bootstrap B --topic T --expect N [--start I] [--ts-base MS] [--ts-step MS]
//                [--timeout S]              reads every partition from the beginning to its end
//   group-member --bootstrap B --topic T --group G [--session-timeout MS]
//   admin        --bootstrap B --ops JSON
//
// Record i is derived from its index alone (see expected()): key, value, headers and CreateTime,
// so the consumer verifies every record it reads. produce/consume/admin print one JSON object on
// stdout; group-member prints one JSON object per line until stdin closes (or SIGTERM), then
// leaves the group gracefully. Client logging goes nowhere (no slf4j binding on the classpath).

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class Driver {
    // ------------------------------------------------------------ arguments

    static final class Args {
        final Map<String, String> opts = new HashMap<>();
        final List<String> props = new ArrayList<>();

        Args(String[] argv, int from) {
            for (int i = from; i < argv.length; i++) {
                String a = argv[i];
                if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a);
                String name = a.substring(2);
                String v = (i + 1 < argv.length && !argv[i + 1].startsWith("--")) ? argv[++i] : "true";
                if (name.equals("prop")) props.add(v); else opts.put(name, v);
            }
        }

        String str(String k, String dflt) { return opts.getOrDefault(k, dflt); }
        String str(String k) {
            String v = opts.get(k);
            if (v == null) throw new IllegalArgumentException("missing --" + k);
            return v;
        }
        long num(String k, long dflt) { return opts.containsKey(k) ? Long.parseLong(opts.get(k)) : dflt; }

        Properties base() {
            Properties p = new Properties();
            p.put("bootstrap.servers", str("bootstrap"));
            p.put("client.id", str("client-id", "strata-compat-java"));
            for (String kv : props) {
                int eq = kv.indexOf('=');
                p.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
            return p;
        }
    }

    // ------------------------------------------------------------ the records

    static final String PAD = "abcdefghijklmnopqrstuvwxyz0123456789";

    static final class Expected {
        final String key, value;
        final String[][] headers;
        final long timestamp;

        Expected(long i, long tsBase, long tsStep) {
            int r = (int) (i % 17);
            String pad = PAD.substring(r) + PAD.substring(0, r);
            key = "key-" + i;
            value = "value-" + i + "-" + pad + pad;
            headers = new String[][] {{"idx", Long.toString(i)}, {"h2", "hv-" + ((i * 7919) % 100003)}};
            timestamp = tsBase + i * tsStep;
        }
    }

    static byte[] utf8(String s) { return s.getBytes(StandardCharsets.UTF_8); }
    static String str(byte[] b) { return b == null ? null : new String(b, StandardCharsets.UTF_8); }

    // ------------------------------------------------------------ produce

    static void produce(Args a) throws Exception {
        long count = a.num("count", 0), start = a.num("start", 0);
        long tsBase = a.num("ts-base", 0), tsStep = a.num("ts-step", 1);
        int parts = (int) a.num("partitions", 0);
        boolean mod = a.str("partitioner", "default").equals("mod");
        String topic = a.str("topic");
        Properties p = a.base();
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        p.put("compression.type", a.str("compression", "none"));
        AtomicLong acked = new AtomicLong(), errors = new AtomicLong();
        AtomicReference<String> firstError = new AtomicReference<>();
        Map<Integer, long[]> offsets = new TreeMap<>();
        long t0 = System.currentTimeMillis();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (long i = start; i < start + count; i++) {
                Expected e = new Expected(i, tsBase, tsStep);
                List<Header> hs = new ArrayList<>();
                for (String[] h : e.headers) hs.add(new RecordHeader(h[0], utf8(h[1])));
                Integer partition = mod ? (int) (i % parts) : null;
                producer.send(new ProducerRecord<>(topic, partition, e.timestamp, utf8(e.key), utf8(e.value), hs),
                    (md, ex) -> {
                        if (ex != null) {
                            errors.incrementAndGet();
                            firstError.compareAndSet(null, ex.getClass().getSimpleName() + ": " + ex.getMessage());
                        } else {
                            acked.incrementAndGet();
                            synchronized (offsets) {
                                long[] r = offsets.computeIfAbsent(md.partition(), k -> new long[] {md.offset(), md.offset()});
                                r[0] = Math.min(r[0], md.offset());
                                r[1] = Math.max(r[1], md.offset());
                            }
                        }
                    });
            }
            producer.flush();
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("acked", acked.get());
        out.put("errors", errors.get());
        out.put("first_error", firstError.get());
        out.put("elapsed_ms", System.currentTimeMillis() - t0);
        Map<String, Object> o = new TreeMap<>();
        synchronized (offsets) { offsets.forEach((k, v) -> o.put(k.toString(), Arrays.asList(v[0], v[1]))); }
        out.put("offsets", o);
        System.out.println(Json.write(out));
    }

    // ------------------------------------------------------------ verification

    static final class Verifier {
        final long start, expect, tsBase, tsStep;
        final BitSet seen = new BitSet();
        long records, distinct, duplicates, mismatches, outOfRange, outOfOrder;
        String firstMismatch;
        final Map<Integer, long[]> parts = new TreeMap<>(); // p -> {count, lastIndex, firstOffset, lastOffset}

        Verifier(Args a, long expect) {
            start = a.num("start", 0);
            this.expect = expect;
            tsBase = a.num("ts-base", 0);
            tsStep = a.num("ts-step", 1);
        }

        /** Returns the record's index, or -1 when it does not match its derivation. */
        long check(ConsumerRecord<byte[], byte[]> r) {
            records++;
            long[] st = parts.computeIfAbsent(r.partition(), k -> new long[] {0, -1, r.offset(), -1});
            st[0]++;
            st[3] = r.offset();
            String key = str(r.key());
            long idx;
            try {
                idx = Long.parseLong(key.substring(4));
                if (!key.startsWith("key-")) throw new NumberFormatException();
            } catch (RuntimeException ex) {
                return bad(r, "unparsable key " + key);
            }
            if (idx <= st[1]) outOfOrder++;
            st[1] = Math.max(st[1], idx);
            Expected e = new Expected(idx, tsBase, tsStep);
            if (!e.value.equals(str(r.value()))) return bad(r, "value");
            Header[] hs = r.headers().toArray();
            boolean hok = hs.length == e.headers.length;
            for (int i = 0; hok && i < hs.length; i++)
                hok = hs[i].key().equals(e.headers[i][0]) && e.headers[i][1].equals(str(hs[i].value()));
            if (!hok) return bad(r, "headers");
            if (r.timestamp() != e.timestamp || r.timestampType() != org.apache.kafka.common.record.TimestampType.CREATE_TIME)
                return bad(r, "timestamp " + r.timestamp() + " " + r.timestampType() + " != " + e.timestamp);
            long rel = idx - start;
            if (expect > 0 && (rel < 0 || rel >= expect)) { outOfRange++; return idx; }
            if (rel >= 0 && rel < Integer.MAX_VALUE) {
                if (seen.get((int) rel)) duplicates++; else { seen.set((int) rel); distinct++; }
            }
            return idx;
        }

        long bad(ConsumerRecord<byte[], byte[]> r, String why) {
            mismatches++;
            if (firstMismatch == null) firstMismatch = "p" + r.partition() + "@" + r.offset() + " key=" + str(r.key()) + ": " + why;
            return -1;
        }

        Map<String, Object> summary() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("records", records);
            m.put("distinct", distinct);
            m.put("duplicates", duplicates);
            m.put("mismatches", mismatches);
            m.put("out_of_range", outOfRange);
            m.put("out_of_order", outOfOrder);
            m.put("first_mismatch", firstMismatch);
            Map<String, Object> ps = new TreeMap<>();
            parts.forEach((p, st) -> {
                Map<String, Object> x = new LinkedHashMap<>();
                x.put("count", st[0]);
                x.put("first_offset", st[2]);
                x.put("last_offset", st[3]);
                ps.put(p.toString(), x);
            });
            m.put("partitions", ps);
            return m;
        }
    }

    static Properties consumerProps(Args a) {
        Properties p = a.base();
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("auto.offset.reset", "earliest");
        return p;
    }

    // ------------------------------------------------------------ consume

    static void consume(Args a) {
        Verifier v = new Verifier(a, a.num("expect", 0));
        long deadline = System.currentTimeMillis() + a.num("timeout", 120) * 1000;
        String topic = a.str("topic");
        Properties p = consumerProps(a);
        p.put("enable.auto.commit", "false");
        String ended = "timeout";
        long t0 = System.currentTimeMillis();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30)))
                tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            while (System.currentTimeMillis() < deadline) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= c.position(tp, Duration.ofSeconds(30)) >= end.get(tp);
                if (done) { ended = "end"; break; }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) v.check(r);
            }
        }
        Map<String, Object> out = v.summary();
        out.put("ended", ended);
        out.put("elapsed_ms", System.currentTimeMillis() - t0);
        System.out.println(Json.write(out));
    }

    // ------------------------------------------------------------ group member

    static synchronized void emit(Map<String, Object> m) {
        System.out.println(Json.write(m));
        System.out.flush();
    }

    static void groupMember(Args a) throws Exception {
        Verifier v = new Verifier(a, 0);
        String topic = a.str("topic");
        Properties p = consumerProps(a);
        p.put("group.id", a.str("group"));
        p.put("enable.auto.commit", "false");
        p.put("session.timeout.ms", a.str("session-timeout", "6000"));
        p.put("heartbeat.interval.ms", "1000");
        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p);
        AtomicBoolean stop = new AtomicBoolean();
        CountDownLatch closed = new CountDownLatch(1);
        Runnable requestStop = () -> { stop.set(true); c.wakeup(); };
        Thread stdin = new Thread(() -> {
            try {
                InputStream in = System.in;
                byte[] buf = new byte[256];
                while (in.read(buf) >= 0) { }
            } catch (Exception ignored) { }
            requestStop.run();
        }, "stdin-watch");
        stdin.setDaemon(true);
        stdin.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            requestStop.run();
            try { closed.await(30, TimeUnit.SECONDS); } catch (InterruptedException ignored) { }
        }));
        try {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> ps) { }
                public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                    List<Integer> all = new ArrayList<>();
                    for (TopicPartition tp : c.assignment()) all.add(tp.partition());
                    Collections.sort(all);
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("ev", "assigned");
                    m.put("partitions", all);
                    emit(m);
                }
            });
            emit(new LinkedHashMap<>(Map.of("ev", "running")));
            while (!stop.get()) {
                ConsumerRecords<byte[], byte[]> rs;
                try {
                    rs = c.poll(Duration.ofMillis(500));
                } catch (WakeupException w) {
                    break;
                }
                if (rs.isEmpty()) continue;
                Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
                for (TopicPartition tp : rs.partitions()) {
                    List<Long> offs = new ArrayList<>(), idx = new ArrayList<>();
                    long last = -1;
                    for (ConsumerRecord<byte[], byte[]> r : rs.records(tp)) {
                        offs.add(r.offset());
                        idx.add(v.check(r));
                        last = r.offset();
                    }
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("ev", "records");
                    m.put("p", tp.partition());
                    m.put("offsets", offs);
                    m.put("idx", idx);
                    m.put("mismatches", v.mismatches);
                    emit(m); // before the commit: what this member saw survives a SIGKILL
                    commit.put(tp, new OffsetAndMetadata(last + 1));
                }
                try {
                    c.commitSync(commit);
                } catch (WakeupException w) {
                    c.commitSync(commit);
                    break;
                } catch (CommitFailedException | org.apache.kafka.common.errors.RebalanceInProgressException ex) {
                    emit(new LinkedHashMap<>(Map.of("ev", "commit_failed", "error", ex.getClass().getSimpleName())));
                }
            }
        } finally {
            c.close(CloseOptions.timeout(Duration.ofSeconds(20)));
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("ev", "stopped");
            m.put("mismatches", v.mismatches);
            emit(m);
            closed.countDown();
        }
    }

    // ------------------------------------------------------------ admin

    static Throwable unwrap(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof java.util.concurrent.CompletionException)
               && t.getCause() != null) t = t.getCause();
        return t;
    }

    static void admin(Args a) throws Exception {
        @SuppressWarnings("unchecked")
        List<Object> ops = (List<Object>) Json.parse(a.str("ops"));
        List<Object> results = new ArrayList<>();
        try (Admin admin = Admin.create(a.base())) {
            for (Object o : ops) {
                @SuppressWarnings("unchecked")
                Map<String, Object> op = (Map<String, Object>) o;
                Map<String, Object> r = new LinkedHashMap<>();
                try {
                    r.put("result", adminOp(a, admin, op));
                    r.put("ok", true);
                } catch (Exception ex) {
                    Throwable t = unwrap(ex);
                    Map<String, Object> err = new LinkedHashMap<>();
                    err.put("name", t.getClass().getSimpleName());
                    err.put("message", String.valueOf(t.getMessage()));
                    r.put("ok", false);
                    r.put("error", err);
                }
                results.add(r);
            }
        }
        System.out.println(Json.write(results));
    }

    static String s(Map<String, Object> op, String k) { return (String) op.get(k); }
    static long n(Map<String, Object> op, String k, long dflt) {
        Object v = op.get(k);
        return v == null ? dflt : ((Number) v).longValue();
    }

    @SuppressWarnings("unchecked")
    static Object adminOp(Args a, Admin admin, Map<String, Object> op) throws Exception {
        String topic = s(op, "topic");
        switch (s(op, "op")) {
            case "create_topic": {
                NewTopic nt = new NewTopic(topic, (int) n(op, "partitions", 1), (short) n(op, "replication_factor", 1));
                Map<String, String> cfg = new HashMap<>();
                ((Map<String, Object>) op.getOrDefault("configs", Map.of())).forEach((k, v) -> cfg.put(k, String.valueOf(v)));
                nt.configs(cfg);
                admin.createTopics(List.of(nt)).all().get();
                return true;
            }
            case "list_topics":
                return new TreeSet<>(admin.listTopics().names().get());
            case "describe_topic": {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                List<Object> ps = new ArrayList<>();
                for (TopicPartitionInfo pi : d.partitions()) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("partition", pi.partition());
                    m.put("leader", pi.leader() == null ? null : pi.leader().id());
                    List<Integer> reps = new ArrayList<>();
                    for (Node nd : pi.replicas()) reps.add(nd.id());
                    m.put("replicas", reps);
                    ps.add(m);
                }
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("name", d.name());
                m.put("partitions", ps);
                return m;
            }
            case "describe_configs": {
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
                Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
                Map<String, Object> out = new TreeMap<>();
                for (ConfigEntry ce : cfg.entries()) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("value", ce.value());
                    m.put("default", ce.isDefault());
                    m.put("source", ce.source().name());
                    out.put(ce.name(), m);
                }
                return out;
            }
            case "alter_configs": {
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
                List<AlterConfigOp> alters = new ArrayList<>();
                ((Map<String, Object>) op.getOrDefault("configs", Map.of())).forEach((k, v) ->
                    alters.add(new AlterConfigOp(new ConfigEntry(k, String.valueOf(v)), AlterConfigOp.OpType.SET)));
                for (Object k : (List<Object>) op.getOrDefault("delete", List.of()))
                    alters.add(new AlterConfigOp(new ConfigEntry((String) k, null), AlterConfigOp.OpType.DELETE));
                admin.incrementalAlterConfigs(Map.of(res, alters)).all().get();
                return true;
            }
            case "create_partitions":
                admin.createPartitions(Map.of(topic, NewPartitions.increaseTo((int) n(op, "count", 0)))).all().get();
                return true;
            case "delete_topic":
                admin.deleteTopics(List.of(topic)).all().get();
                return true;
            case "fetch_committed": {
                Map<TopicPartition, OffsetAndMetadata> offs =
                    admin.listConsumerGroupOffsets(s(op, "group")).partitionsToOffsetAndMetadata().get();
                Map<String, Object> out = new TreeMap<>();
                offs.forEach((tp, om) -> { if (tp.topic().equals(topic) && om != null) out.put(Integer.toString(tp.partition()), om.offset()); });
                return out;
            }
            case "end_offsets": {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                Map<TopicPartition, OffsetSpec> latest = new HashMap<>(), earliest = new HashMap<>();
                for (TopicPartitionInfo pi : d.partitions()) {
                    latest.put(new TopicPartition(topic, pi.partition()), OffsetSpec.latest());
                    earliest.put(new TopicPartition(topic, pi.partition()), OffsetSpec.earliest());
                }
                var hi = admin.listOffsets(latest).all().get();
                var lo = admin.listOffsets(earliest).all().get();
                Map<String, Object> out = new TreeMap<>();
                hi.forEach((tp, info) -> {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("low", lo.get(tp).offset());
                    m.put("high", info.offset());
                    out.put(Integer.toString(tp.partition()), m);
                });
                return out;
            }
            case "offsets_by_timestamp": {
                // The consumer API (offsetsForTimes), as an application would use it.
                Properties p = consumerProps(a);
                try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
                    Map<TopicPartition, Long> q = new HashMap<>();
                    for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30)))
                        q.put(new TopicPartition(topic, pi.partition()), n(op, "timestamp", 0));
                    Map<String, Object> out = new TreeMap<>();
                    c.offsetsForTimes(q, Duration.ofSeconds(30)).forEach((tp, ot) -> {
                        Map<String, Object> m = null;
                        if (ot != null) {
                            m = new LinkedHashMap<>();
                            m.put("offset", ot.offset());
                            m.put("timestamp", ot.timestamp());
                        }
                        out.put(Integer.toString(tp.partition()), m);
                    });
                    return out;
                }
            }
            case "describe_group": {
                ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(s(op, "group"))).all().get().get(s(op, "group"));
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("state", g.groupState().toString());
                m.put("members", g.members().size());
                return m;
            }
            default:
                throw new IllegalArgumentException("unknown admin op " + s(op, "op"));
        }
    }

    // ------------------------------------------------------------ main

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) throw new IllegalArgumentException("usage: Driver COMMAND --opt value ...");
        Args a = new Args(argv, 1);
        int rc = 0;
        try {
            switch (argv[0]) {
                case "produce": produce(a); break;
                case "consume": consume(a); break;
                case "group-member": groupMember(a); break;
                case "admin": admin(a); break;
                default: throw new IllegalArgumentException("unknown command " + argv[0]);
            }
        } catch (Exception e) {
            Throwable t = unwrap(e);
            t.printStackTrace();
            Map<String, Object> err = new LinkedHashMap<>();
            err.put("name", t.getClass().getSimpleName());
            err.put("message", String.valueOf(t.getMessage()));
            System.out.println(Json.write(Map.of("fatal", err)));
            rc = 2;
        }
        System.out.flush();
        // Client threads may linger (daemon or not): the summary is out, so end now.
        Runtime.getRuntime().halt(rc);
    }

    // ------------------------------------------------------------ minimal JSON

    static final class Json {
        static String write(Object o) {
            StringBuilder sb = new StringBuilder();
            write(sb, o);
            return sb.toString();
        }

        static void write(StringBuilder sb, Object o) {
            if (o == null) sb.append("null");
            else if (o instanceof String) quote(sb, (String) o);
            else if (o instanceof Number || o instanceof Boolean) sb.append(o);
            else if (o instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    quote(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (o instanceof Iterable) {
                sb.append('[');
                boolean first = true;
                for (Object x : (Iterable<?>) o) {
                    if (!first) sb.append(',');
                    first = false;
                    write(sb, x);
                }
                sb.append(']');
            } else quote(sb, o.toString());
        }

        static void quote(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20) sb.append(String.format("\\u%04x", (int) c)); else sb.append(c);
                }
            }
            sb.append('"');
        }

        static Object parse(String s) {
            int[] pos = {0};
            Object v = value(s, pos);
            ws(s, pos);
            if (pos[0] != s.length()) throw new IllegalArgumentException("trailing JSON at " + pos[0]);
            return v;
        }

        static void ws(String s, int[] pos) {
            while (pos[0] < s.length() && Character.isWhitespace(s.charAt(pos[0]))) pos[0]++;
        }

        static Object value(String s, int[] pos) {
            ws(s, pos);
            char c = s.charAt(pos[0]);
            if (c == '{') {
                Map<String, Object> m = new LinkedHashMap<>();
                pos[0]++;
                ws(s, pos);
                if (s.charAt(pos[0]) == '}') { pos[0]++; return m; }
                while (true) {
                    ws(s, pos);
                    String k = (String) value(s, pos);
                    ws(s, pos);
                    expect(s, pos, ':');
                    m.put(k, value(s, pos));
                    ws(s, pos);
                    if (s.charAt(pos[0]) == ',') { pos[0]++; continue; }
                    expect(s, pos, '}');
                    return m;
                }
            }
            if (c == '[') {
                List<Object> l = new ArrayList<>();
                pos[0]++;
                ws(s, pos);
                if (s.charAt(pos[0]) == ']') { pos[0]++; return l; }
                while (true) {
                    l.add(value(s, pos));
                    ws(s, pos);
                    if (s.charAt(pos[0]) == ',') { pos[0]++; continue; }
                    expect(s, pos, ']');
                    return l;
                }
            }
            if (c == '"') {
                StringBuilder sb = new StringBuilder();
                pos[0]++;
                while (true) {
                    char d = s.charAt(pos[0]++);
                    if (d == '"') return sb.toString();
                    if (d != '\\') { sb.append(d); continue; }
                    char e = s.charAt(pos[0]++);
                    switch (e) {
                        case 'n': sb.append('\n'); break;
                        case 't': sb.append('\t'); break;
                        case 'r': sb.append('\r'); break;
                        case 'b': sb.append('\b'); break;
                        case 'f': sb.append('\f'); break;
                        case 'u': sb.append((char) Integer.parseInt(s.substring(pos[0], pos[0] + 4), 16)); pos[0] += 4; break;
                        default: sb.append(e);
                    }
                }
            }
            if (s.startsWith("true", pos[0])) { pos[0] += 4; return true; }
            if (s.startsWith("false", pos[0])) { pos[0] += 5; return false; }
            if (s.startsWith("null", pos[0])) { pos[0] += 4; return null; }
            int st = pos[0];
            while (pos[0] < s.length() && "+-0123456789.eE".indexOf(s.charAt(pos[0])) >= 0) pos[0]++;
            String num = s.substring(st, pos[0]);
            if (num.isEmpty()) throw new IllegalArgumentException("bad JSON at " + st);
            if (num.contains(".") || num.contains("e") || num.contains("E")) return Double.parseDouble(num);
            return Long.parseLong(num);
        }

        static void expect(String s, int[] pos, char c) {
            if (s.charAt(pos[0]) != c) throw new IllegalArgumentException("expected " + c + " at " + pos[0]);
            pos[0]++;
        }
    }
}
