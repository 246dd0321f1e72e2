// sarama driver for the compatibility suites (tests/compat/test_sarama.py), speaking the
// subcommands of the kafkajs driver (tests/compat/js/driver.js) with `--name value` arguments
// and one JSON answer per line:
//
//	driver produce        --bootstrap B --topic T --count N [--start I] [--compression C]
//	                      [--ts-base MS] [--ts-step MS] [--partitions P --partitioner mod]
//	                      [--batch K]
//	driver consume        --bootstrap B --topic T --expect N [--start I] [--ts-base MS]
//	                      [--ts-step MS] [--timeout S]
//	driver group-member   --bootstrap B --topic T --group G [--session-timeout MS]
//	                      [--ts-base MS] [--ts-step MS]
//	driver admin          --bootstrap B --ops JSON
//	driver produce-steady --bootstrap B --topic T [--rate R]
//
// Every command also takes [--sasl-user U --sasl-password P [--sasl-mechanism M]] (SASL with
// PLAIN, the default, SCRAM-SHA-256 or SCRAM-SHA-512; SCRAM's client steps are xdg-go/scram's, as
// sarama's own examples wire them) and [--ssl-ca PATH] (TLS trusting that PEM CA, verifying the
// broker's host name).
//
// Record i is derived from its index alone (key, value, two headers, CreateTime timestamp), so
// the consuming side verifies every record without the producer's help. group-member prints
// events until stdin closes or SIGTERM arrives, then leaves the group; produce-steady sends one
// record at a time (acks=all) and prints {"ev":"ack"...} or {"ev":"error"...} per answer.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

type args map[string]string

func parseArgs(argv []string) args {
	out := args{}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "--") {
			fail(fmt.Errorf("unexpected argument %s", a))
		}
		name := a[2:]
		if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--") {
			out[name] = argv[i+1]
			i++
		} else {
			out[name] = "true"
		}
	}
	return out
}

func (a args) num(name string, dflt int64) int64 {
	v, ok := a[name]
	if !ok {
		return dflt
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		fail(fmt.Errorf("--%s %q: %w", name, v, err))
	}
	return n
}

var outMu sync.Mutex

func out(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "driver failed: %v\n", err)
	out(map[string]any{"fatal": errorOf(err)})
	os.Exit(2)
}

// ---------------------------------------------------------------- records

const pad = "abcdefghijklmnopqrstuvwxyz0123456789"

type record struct {
	key, value string
	headers    [][2]string
	timestamp  int64
}

func expected(i, tsBase, tsStep int64) record {
	k := int(i % 17)
	p := pad[k:] + pad[:k]
	return record{
		key:       fmt.Sprintf("key-%d", i),
		value:     fmt.Sprintf("value-%d-%s%s", i, p, p),
		headers:   [][2]string{{"idx", strconv.FormatInt(i, 10)}, {"h2", fmt.Sprintf("hv-%d", (i*7919)%100003)}},
		timestamp: tsBase + i*tsStep,
	}
}

// ---------------------------------------------------------------- configuration

var codecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

func config(a args) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "strata-compat-sarama"
	if id, ok := a["client-id"]; ok {
		c.ClientID = id
	}
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 30 * time.Second
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	if ca, ok := a["ssl-ca"]; ok {
		pem, err := os.ReadFile(ca)
		if err != nil {
			fail(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail(fmt.Errorf("no certificate in %s", ca))
		}
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if user, ok := a["sasl-user"]; ok {
		c.Net.SASL.Enable = true
		c.Net.SASL.User = user
		c.Net.SASL.Password = a["sasl-password"]
		switch mechanism := a["sasl-mechanism"]; mechanism {
		case "", "PLAIN":
			c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
		case "SCRAM-SHA-512":
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
		default:
			fail(fmt.Errorf("unknown SASL mechanism %s", mechanism))
		}
	}
	return c
}

// scramClient is sarama's SCRAMClient over one xdg-go/scram conversation.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	client, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = client.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }

func brokers(a args) []string { return strings.Split(a["bootstrap"], ",") }

// ---------------------------------------------------------------- produce

func produce(a args) {
	count, start := a.num("count", 0), a.num("start", 0)
	tsBase, tsStep := a.num("ts-base", 0), a.num("ts-step", 1)
	parts := int32(a.num("partitions", 0))
	codecName := a["compression"]
	if codecName == "" {
		codecName = "none"
	}
	codec, ok := codecs[codecName]
	if !ok {
		fail(fmt.Errorf("unknown codec %s", codecName))
	}
	c := config(a)
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Compression = codec
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 10
	c.Producer.Flush.Messages = int(a.num("batch", 1000))
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	if a["partitioner"] == "mod" {
		c.Producer.Partitioner = sarama.NewManualPartitioner
	}
	p, err := sarama.NewAsyncProducer(brokers(a), c)
	if err != nil {
		fail(err)
	}
	t0 := time.Now()
	var acked, errs int64
	var firstError any
	offsets := map[string][2]int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := int64(0); n < count; n++ {
			select {
			case m := <-p.Successes():
				acked++
				key := strconv.Itoa(int(m.Partition))
				if r, ok := offsets[key]; ok {
					offsets[key] = [2]int64{min(r[0], m.Offset), max(r[1], m.Offset)}
				} else {
					offsets[key] = [2]int64{m.Offset, m.Offset}
				}
			case e := <-p.Errors():
				errs++
				if firstError == nil {
					firstError = errorOf(e.Err)
				}
			}
		}
	}()
	for i := start; i < start+count; i++ {
		e := expected(i, tsBase, tsStep)
		m := &sarama.ProducerMessage{
			Topic:     a["topic"],
			Key:       sarama.StringEncoder(e.key),
			Value:     sarama.StringEncoder(e.value),
			Timestamp: time.UnixMilli(e.timestamp),
		}
		for _, h := range e.headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
		}
		if a["partitioner"] == "mod" {
			m.Partition = int32(i % int64(parts))
		}
		p.Input() <- m
	}
	<-done
	if err := p.Close(); err != nil && errs == 0 {
		fail(err)
	}
	out(map[string]any{"acked": acked, "errors": errs, "first_error": firstError,
		"elapsed_ms": time.Since(t0).Milliseconds(), "base_offsets": offsets})
}

// ---------------------------------------------------------------- produce-steady

func produceSteady(a args) {
	pause := time.Second / time.Duration(a.num("rate", 50))
	c := config(a)
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 3
	p, err := sarama.NewSyncProducer(brokers(a), c)
	if err != nil {
		fail(err)
	}
	stop := stopSignal()
	for i := 0; ; i++ {
		select {
		case <-stop:
			p.Close()
			return
		default:
		}
		t := time.Now()
		part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: a["topic"],
			Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))})
		now := time.Now().UnixMilli()
		if err != nil {
			out(map[string]any{"ev": "error", "t": now, "error": errorOf(err)["name"]})
		} else {
			out(map[string]any{"ev": "ack", "t": now, "partition": part, "offset": off})
		}
		if left := pause - time.Since(t); left > 0 {
			select {
			case <-stop:
			case <-time.After(left):
			}
		}
	}
}

// stopSignal is closed when stdin closes or SIGTERM arrives.
func stopSignal() <-chan struct{} {
	stop := make(chan struct{})
	var once sync.Once
	closeIt := func() { once.Do(func() { close(stop) }) }
	go func() {
		io.Copy(io.Discard, os.Stdin)
		closeIt()
	}()
	go func() {
		s := make(chan os.Signal, 1)
		signal.Notify(s, syscall.SIGTERM)
		<-s
		closeIt()
	}()
	return stop
}

// ---------------------------------------------------------------- consume

type partState struct {
	count, lastIndex, firstOffset, lastOffset int64
}

type verifier struct {
	mu                                        sync.Mutex
	start, expect, tsBase, tsStep             int64
	seen                                      []bool
	records, distinct, duplicates, mismatches int64
	outOfRange, outOfOrder                    int64
	firstMismatch                             any
	partitions                                map[int32]*partState
}

func newVerifier(a args, expect int64) *verifier {
	return &verifier{start: a.num("start", 0), expect: expect, tsBase: a.num("ts-base", 0),
		tsStep: a.num("ts-step", 1), seen: make([]bool, expect), partitions: map[int32]*partState{}}
}

// check verifies one record; returns its index, or -1 when it does not match.
func (v *verifier) check(m *sarama.ConsumerMessage) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.records++
	st, ok := v.partitions[m.Partition]
	if !ok {
		st = &partState{lastIndex: -1, firstOffset: m.Offset}
		v.partitions[m.Partition] = st
	}
	st.count++
	st.lastOffset = m.Offset
	key := string(m.Key)
	idx, err := strconv.ParseInt(strings.TrimPrefix(key, "key-"), 10, 64)
	if !strings.HasPrefix(key, "key-") || err != nil {
		return v.bad(m, "unparsable key")
	}
	if idx <= st.lastIndex {
		v.outOfOrder++
	}
	st.lastIndex = max(st.lastIndex, idx)
	e := expected(idx, v.tsBase, v.tsStep)
	if string(m.Value) != e.value {
		return v.bad(m, "value")
	}
	var headers [][2]string
	for _, h := range m.Headers {
		headers = append(headers, [2]string{string(h.Key), string(h.Value)})
	}
	if fmt.Sprint(headers) != fmt.Sprint(e.headers) {
		return v.bad(m, fmt.Sprintf("headers %v", headers))
	}
	if ts := m.Timestamp.UnixMilli(); ts != e.timestamp {
		return v.bad(m, fmt.Sprintf("timestamp %d != %d", ts, e.timestamp))
	}
	rel := idx - v.start
	if rel < 0 || rel >= v.expect {
		v.outOfRange++
		return idx
	}
	if v.seen[rel] {
		v.duplicates++
	} else {
		v.seen[rel] = true
		v.distinct++
	}
	return idx
}

func (v *verifier) bad(m *sarama.ConsumerMessage, why string) int64 {
	v.mismatches++
	if v.firstMismatch == nil {
		v.firstMismatch = map[string]any{"partition": m.Partition, "offset": m.Offset, "key": string(m.Key), "why": why}
	}
	return -1
}

func (v *verifier) summary() map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	parts := map[string]any{}
	for p, st := range v.partitions {
		parts[strconv.Itoa(int(p))] = map[string]int64{"count": st.count, "first_offset": st.firstOffset, "last_offset": st.lastOffset}
	}
	return map[string]any{"records": v.records, "distinct": v.distinct, "duplicates": v.duplicates,
		"mismatches": v.mismatches, "out_of_range": v.outOfRange, "out_of_order": v.outOfOrder,
		"first_mismatch": v.firstMismatch, "partitions": parts}
}

func consume(a args) {
	expect := a.num("expect", 0)
	v := newVerifier(a, expect)
	c := config(a)
	c.Consumer.Fetch.Max = 16 << 20
	client, err := sarama.NewClient(brokers(a), c)
	if err != nil {
		fail(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		fail(err)
	}
	parts, err := client.Partitions(a["topic"])
	if err != nil {
		fail(err)
	}
	t0 := time.Now()
	complete := make(chan struct{})
	var once sync.Once
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(a["topic"], p, sarama.OffsetOldest)
		if err != nil {
			fail(err)
		}
		go func() {
			for m := range pc.Messages() {
				v.check(m)
				v.mu.Lock()
				doneNow := expect > 0 && v.distinct >= expect
				v.mu.Unlock()
				if doneNow {
					once.Do(func() { close(complete) })
				}
			}
		}()
		defer pc.AsyncClose()
	}
	ended := "complete"
	select {
	case <-complete:
	case <-time.After(time.Duration(a.num("timeout", 120)) * time.Second):
		ended = "timeout"
	}
	s := v.summary()
	s["ended"] = ended
	s["elapsed_ms"] = time.Since(t0).Milliseconds()
	out(s)
}

// ---------------------------------------------------------------- group member

type member struct {
	topic string
	v     *verifier
}

func (h *member) Setup(s sarama.ConsumerGroupSession) error {
	parts := append([]int32{}, s.Claims()[h.topic]...)
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	if parts == nil {
		parts = []int32{}
	}
	out(map[string]any{"ev": "assigned", "member": s.MemberID(), "partitions": parts})
	return nil
}

func (h *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		var batch []*sarama.ConsumerMessage
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			batch = append(batch, m)
		case <-s.Context().Done():
			return nil
		}
		// Whatever else is ready joins the batch.
	more:
		for len(batch) < 500 {
			select {
			case m, ok := <-claim.Messages():
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		offsets, idx := make([]int64, 0, len(batch)), make([]int64, 0, len(batch))
		for _, m := range batch {
			offsets = append(offsets, m.Offset)
			idx = append(idx, h.v.check(m))
		}
		// Reported before the commit: what this member saw survives a SIGKILL.
		h.v.mu.Lock()
		mismatches := h.v.mismatches
		h.v.mu.Unlock()
		out(map[string]any{"ev": "records", "p": claim.Partition(), "offsets": offsets, "idx": idx, "mismatches": mismatches})
		s.MarkMessage(batch[len(batch)-1], "")
		s.Commit()
	}
}

func groupMember(a args) {
	v := newVerifier(a, 0)
	c := config(a)
	c.Consumer.Group.Session.Timeout = time.Duration(a.num("session-timeout", 6000)) * time.Millisecond
	c.Consumer.Group.Heartbeat.Interval = time.Second
	c.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Return.Errors = true
	g, err := sarama.NewConsumerGroup(brokers(a), a["group"], c)
	if err != nil {
		fail(err)
	}
	go func() {
		for err := range g.Errors() {
			fmt.Fprintf(os.Stderr, "group error: %v\n", err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		h := &member{topic: a["topic"], v: v}
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{a["topic"]}, h); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "consume: %v\n", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	out(map[string]any{"ev": "running"})
	<-stopSignal()
	cancel()
	<-finished
	if err := g.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", err)
	}
	v.mu.Lock()
	out(map[string]any{"ev": "stopped", "mismatches": v.mismatches})
	v.mu.Unlock()
}

// ---------------------------------------------------------------- admin

// Kafka's names of the error codes the suites tell apart.
var errorNames = map[sarama.KError]string{
	sarama.ErrUnknownTopicOrPartition:  "UNKNOWN_TOPIC_OR_PARTITION",
	sarama.ErrTopicAuthorizationFailed: "TOPIC_AUTHORIZATION_FAILED",
	sarama.ErrTopicAlreadyExists:       "TOPIC_ALREADY_EXISTS",
	sarama.ErrInvalidPartitions:        "INVALID_PARTITIONS",
	sarama.ErrInvalidConfig:            "INVALID_CONFIG",
	sarama.ErrPolicyViolation:          "POLICY_VIOLATION",
	sarama.ErrSASLAuthenticationFailed: "SASL_AUTHENTICATION_FAILED",
	sarama.ErrNotLeaderForPartition:    "NOT_LEADER_OR_FOLLOWER",
	sarama.ErrNotEnoughReplicas:        "NOT_ENOUGH_REPLICAS",
}

func errorOf(err error) map[string]any {
	var code sarama.KError
	var te *sarama.TopicError
	var tpe *sarama.TopicPartitionError
	switch {
	case errors.As(err, &te):
		code = te.Err
	case errors.As(err, &tpe):
		code = tpe.Err
	case errors.As(err, &code):
	default:
		return map[string]any{"name": fmt.Sprintf("%T", err), "message": err.Error()}
	}
	name, ok := errorNames[code]
	if !ok {
		name = fmt.Sprintf("KError(%d)", int16(code))
	}
	return map[string]any{"name": name, "code": int16(code), "message": err.Error()}
}

func adminOps(a args) {
	var ops []map[string]any
	if err := json.Unmarshal([]byte(a["ops"]), &ops); err != nil {
		fail(err)
	}
	c := config(a)
	client, err := sarama.NewClient(brokers(a), c)
	if err != nil {
		fail(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		fail(err)
	}
	results := []any{}
	for _, op := range ops {
		r, err := adminOp(client, admin, op)
		if err != nil {
			results = append(results, map[string]any{"ok": false, "error": errorOf(err)})
		} else {
			results = append(results, map[string]any{"ok": true, "result": r})
		}
	}
	out(results)
}

func str(op map[string]any, k string) string { s, _ := op[k].(string); return s }

func integer(op map[string]any, k string, dflt int64) int64 {
	if f, ok := op[k].(float64); ok {
		return int64(f)
	}
	return dflt
}

func configEntries(op map[string]any) map[string]*string {
	entries := map[string]*string{}
	cfg, _ := op["configs"].(map[string]any)
	for k, v := range cfg {
		s := fmt.Sprint(v)
		if f, ok := v.(float64); ok {
			s = strconv.FormatInt(int64(f), 10)
		}
		entries[k] = &s
	}
	return entries
}

func partitionsOf(client sarama.Client, topic string) ([]int32, error) {
	if err := client.RefreshMetadata(topic); err != nil {
		return nil, err
	}
	return client.Partitions(topic)
}

func adminOp(client sarama.Client, admin sarama.ClusterAdmin, op map[string]any) (any, error) {
	topic := str(op, "topic")
	switch str(op, "op") {
	case "create_topic":
		detail := &sarama.TopicDetail{NumPartitions: int32(integer(op, "partitions", 1)),
			ReplicationFactor: int16(integer(op, "replication_factor", 1)), ConfigEntries: configEntries(op)}
		if err := admin.CreateTopic(topic, detail, false); err != nil {
			return nil, err
		}
		// Like kafkajs's waitForLeaders: every partition has a leader in the metadata.
		deadline := time.Now().Add(30 * time.Second)
		for {
			md, err := admin.DescribeTopics([]string{topic})
			if err == nil && len(md) == 1 && md[0].Err == sarama.ErrNoError && len(md[0].Partitions) == int(detail.NumPartitions) {
				led := true
				for _, p := range md[0].Partitions {
					led = led && p.Leader >= 0
				}
				if led {
					return true, nil
				}
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("no leader for every partition of %s within 30 s", topic)
			}
			time.Sleep(100 * time.Millisecond)
		}
	case "list_topics":
		topics, err := admin.ListTopics()
		if err != nil {
			return nil, err
		}
		names := []string{}
		for t := range topics {
			names = append(names, t)
		}
		sort.Strings(names)
		return names, nil
	case "describe_topic":
		md, err := admin.DescribeTopics([]string{topic})
		if err != nil {
			return nil, err
		}
		if md[0].Err != sarama.ErrNoError {
			return nil, md[0].Err
		}
		parts := []map[string]any{}
		for _, p := range md[0].Partitions {
			parts = append(parts, map[string]any{"partition": p.ID, "leader": p.Leader, "replicas": p.Replicas})
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i]["partition"].(int32) < parts[j]["partition"].(int32) })
		return map[string]any{"name": md[0].Name, "partitions": parts}, nil
	case "describe_configs":
		var names []string
		if list, ok := op["names"].([]any); ok {
			for _, n := range list {
				names = append(names, fmt.Sprint(n))
			}
		}
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: names})
		if err != nil {
			return nil, err
		}
		res := map[string]any{}
		for _, e := range entries {
			res[e.Name] = map[string]any{"value": e.Value, "default": e.Default || e.Source == sarama.SourceDefault}
		}
		return res, nil
	case "alter_configs":
		return true, admin.AlterConfig(sarama.TopicResource, topic, configEntries(op), false)
	case "incremental_alter_configs":
		ops := map[string]sarama.IncrementalAlterConfigsEntry{}
		for k, v := range configEntries(op) {
			ops[k] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationSet, Value: v}
		}
		return true, admin.IncrementalAlterConfig(sarama.TopicResource, topic, ops, false)
	case "create_partitions":
		return true, admin.CreatePartitions(topic, int32(integer(op, "count", 0)), nil, false)
	case "delete_topic":
		return true, admin.DeleteTopic(topic)
	case "fetch_committed":
		parts, err := partitionsOf(client, topic)
		if err != nil {
			return nil, err
		}
		resp, err := admin.ListConsumerGroupOffsets(str(op, "group"), map[string][]int32{topic: parts})
		if err != nil {
			return nil, err
		}
		if resp.Err != sarama.ErrNoError {
			return nil, resp.Err
		}
		res := map[string]int64{}
		for p, b := range resp.Blocks[topic] {
			if b.Err != sarama.ErrNoError {
				return nil, b.Err
			}
			res[strconv.Itoa(int(p))] = b.Offset
		}
		return res, nil
	case "end_offsets":
		parts, err := partitionsOf(client, topic)
		if err != nil {
			return nil, err
		}
		res := map[string]any{}
		for _, p := range parts {
			low, err := client.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil {
				return nil, err
			}
			high, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return nil, err
			}
			res[strconv.Itoa(int(p))] = map[string]int64{"low": low, "high": high}
		}
		return res, nil
	case "offsets_by_timestamp":
		parts, err := partitionsOf(client, topic)
		if err != nil {
			return nil, err
		}
		res := map[string]int64{}
		for _, p := range parts {
			o, err := client.GetOffset(topic, p, integer(op, "timestamp", 0))
			if err != nil {
				return nil, err
			}
			res[strconv.Itoa(int(p))] = o
		}
		return res, nil
	case "describe_group":
		groups, err := admin.DescribeConsumerGroups([]string{str(op, "group")})
		if err != nil {
			return nil, err
		}
		g := groups[0]
		if g.Err != sarama.ErrNoError {
			return nil, g.Err
		}
		return map[string]any{"state": g.State, "protocol": g.Protocol, "members": len(g.Members)}, nil
	}
	return nil, fmt.Errorf("unknown admin op %v", op["op"])
}

// ---------------------------------------------------------------- main

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: driver produce|consume|group-member|admin|produce-steady --name value ..."))
	}
	if os.Getenv("SARAMA_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags)
	}
	a := parseArgs(os.Args[2:])
	switch os.Args[1] {
	case "produce":
		produce(a)
	case "consume":
		consume(a)
	case "group-member":
		groupMember(a)
	case "admin":
		adminOps(a)
	case "produce-steady":
		produceSteady(a)
	default:
		fail(fmt.Errorf("unknown command %s", os.Args[1]))
	}
}
