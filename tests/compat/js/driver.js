#!/usr/bin/env node
// kafkajs driver for the compatibility suites (tests/compat/test_kafkajs.py).
//
//   node driver.js produce      --bootstrap B --topic T --count N [--start I] [--compression C]
//                               [--ts-base MS] [--ts-step MS] [--partitions P --partitioner mod]
//                               [--batch K]
//   node driver.js consume      --bootstrap B --topic T --expect N [--start I] [--ts-base MS]
//                               [--ts-step MS] [--timeout S] [--group G]
//   node driver.js group-member --bootstrap B --topic T --group G [--session-timeout MS]
//                               [--ts-base MS] [--ts-step MS]
//   node driver.js admin        --bootstrap B --ops JSON
//   node driver.js produce-steady --bootstrap B --topic T [--rate R]
//
// Every command also takes [--sasl-mechanism M --sasl-user U --sasl-password P] [--ssl-ca PATH].
//
// produce-steady sends one record at a time, R a second (acks=all), until stdin closes or SIGTERM
// arrives, and prints one JSON line per answer: {"ev":"ack","t":ms,"partition":p,"offset":o} or
// {"ev":"error","t":ms,"error":name} (the failover suite watches whether it follows a discovery
// address to another cluster).
//
// Record i (see `expected`) is fully derived from its index: key, value, headers and CreateTime
// timestamp, so the consumer side verifies every record it reads without the producer's help.
// produce/consume/admin print one JSON object on stdout; group-member prints one JSON object per
// line (events) until stdin closes or SIGTERM arrives, then leaves the group gracefully.
'use strict'

const fs = require('fs')
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

function parseArgs (argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`)
    const name = a.slice(2)
    const next = argv[i + 1]
    if (next === undefined || next.startsWith('--')) out[name] = true
    else { out[name] = next; i++ }
  }
  return out
}

const num = (v, dflt) => (v === undefined ? dflt : Number(v))

// The record with index i.
const PAD = 'abcdefghijklmnopqrstuvwxyz0123456789'
function expected (i, tsBase, tsStep) {
  const pad = PAD.slice(i % 17) + PAD.slice(0, i % 17)
  return {
    key: `key-${i}`,
    value: `value-${i}-${pad}${pad}`,
    headers: [['idx', String(i)], ['h2', `hv-${(i * 7919) % 100003}`]],
    timestamp: tsBase + i * tsStep,
  }
}

function out (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }

function stderrLogger () {
  return ({ level, log }) => {
    const { message, ...extra } = log
    process.stderr.write(`[kafkajs ${level}] ${message} ${JSON.stringify(extra)}\n`)
  }
}

// Security of every command: --sasl-mechanism plain|scram-sha-256|scram-sha-512 with
// --sasl-user and --sasl-password; --ssl-ca PATH connects over TLS trusting that PEM CA (and
// verifying the broker's host name, kafkajs's default).
function security (args) {
  const out = {}
  if (args['ssl-ca']) out.ssl = { ca: [fs.readFileSync(String(args['ssl-ca']), 'utf-8')] }
  if (args['sasl-mechanism']) {
    out.sasl = {
      mechanism: String(args['sasl-mechanism']).toLowerCase(),
      username: String(args['sasl-user']),
      password: String(args['sasl-password']),
    }
  }
  return out
}

function client (args) {
  return new Kafka({
    ...security(args),
    clientId: args['client-id'] || 'strata-compat-kafkajs',
    brokers: String(args.bootstrap).split(','),
    logLevel: logLevel[String(args['log-level'] || 'WARN').toUpperCase()],
    logCreator: stderrLogger,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 2000 },
  })
}

async function zstdSupport () {
  // The plugin registers itself on import (its CommonJS build is broken, the ES module works).
  await import('@sensejs/kafkajs-zstd-support')
}

// ---------------------------------------------------------------- produce

async function produce (args) {
  const count = num(args.count)
  const start = num(args.start, 0)
  const tsBase = num(args['ts-base'], 0)
  const tsStep = num(args['ts-step'], 1)
  const batch = num(args.batch, 1000)
  const codecName = args.compression || 'none'
  if (!(codecName in CODECS)) throw new Error(`unknown codec ${codecName}`)
  const parts = num(args.partitions, 0)
  const modPartitioner = args.partitioner === 'mod'
  const producer = client(args).producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const t0 = Date.now()
  let acked = 0
  const offsets = {} // partition -> [first base offset, last base offset] acknowledged
  for (let b = start; b < start + count; b += batch) {
    const messages = []
    for (let i = b; i < Math.min(b + batch, start + count); i++) {
      const e = expected(i, tsBase, tsStep)
      const m = {
        key: e.key,
        value: e.value,
        headers: Object.fromEntries(e.headers),
        timestamp: String(e.timestamp),
      }
      if (modPartitioner) m.partition = i % parts
      messages.push(m)
    }
    const res = await producer.send({
      topic: args.topic,
      messages,
      acks: -1,
      compression: CODECS[codecName],
    })
    for (const r of res) {
      if (r.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(r)}`)
      const p = String(r.partition)
      const base = Number(r.baseOffset)
      offsets[p] = offsets[p] ? [offsets[p][0], base] : [base, base]
    }
    acked += messages.length
  }
  await producer.disconnect()
  out({ acked, elapsed_ms: Date.now() - t0, base_offsets: offsets })
}

// ---------------------------------------------------------------- produce-steady

async function produceSteady (args) {
  const pause = 1000 / num(args.rate, 50)
  const producer = client(args).producer({ allowAutoTopicCreation: false })
  let stopping = false
  const stop = () => { stopping = true }
  process.on('SIGTERM', stop)
  process.stdin.on('end', stop)
  process.stdin.resume()
  await producer.connect()
  for (let i = 0; !stopping; i++) {
    const t = Date.now()
    try {
      const [r] = await producer.send({ topic: args.topic, messages: [{ key: `k${i}`, value: `v${i}` }], acks: -1 })
      out({ ev: 'ack', t: Date.now(), partition: r.partition, offset: Number(r.baseOffset) })
    } catch (e) {
      const err = errorOf(e)
      out({ ev: 'error', t: Date.now(), error: err.type || err.name })
    }
    const left = pause - (Date.now() - t)
    if (left > 0) await new Promise(resolve => setTimeout(resolve, left))
  }
  await producer.disconnect().catch(() => {})
}

// ---------------------------------------------------------------- consume

// Checks records against `expected`; keeps per-partition counts, out-of-order and duplicates.
class Verifier {
  constructor (args) {
    this.start = num(args.start, 0)
    this.expect = num(args.expect, 0)
    this.tsBase = num(args['ts-base'], 0)
    this.tsStep = num(args['ts-step'], 1)
    this.seen = new Uint8Array(this.expect)
    this.records = 0
    this.distinct = 0
    this.duplicates = 0
    this.mismatches = 0
    this.outOfRange = 0
    this.outOfOrder = 0
    this.firstMismatch = null
    this.partitions = {} // p -> {count, lastIndex, firstOffset, lastOffset}
  }

  check (partition, m) {
    this.records++
    const key = m.key ? m.key.toString() : null
    const idx = key && key.startsWith('key-') ? Number(key.slice(4)) : NaN
    const st = this.partitions[partition] ||
      (this.partitions[partition] = { count: 0, lastIndex: -1, firstOffset: m.offset, lastOffset: null })
    st.count++
    st.lastOffset = m.offset
    if (!Number.isInteger(idx)) return this.bad(partition, m, 'unparsable key')
    if (idx <= st.lastIndex) this.outOfOrder++
    st.lastIndex = Math.max(st.lastIndex, idx)
    const e = expected(idx, this.tsBase, this.tsStep)
    const value = m.value ? m.value.toString() : null
    const headers = Object.entries(m.headers || {}).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString() : String(v)])
    if (value !== e.value) return this.bad(partition, m, 'value')
    if (JSON.stringify(headers) !== JSON.stringify(e.headers)) return this.bad(partition, m, `headers ${JSON.stringify(headers)}`)
    if (Number(m.timestamp) !== e.timestamp) return this.bad(partition, m, `timestamp ${m.timestamp} != ${e.timestamp}`)
    const rel = idx - this.start
    if (rel < 0 || rel >= this.expect) { this.outOfRange++; return idx }
    if (this.seen[rel]) this.duplicates++
    else { this.seen[rel] = 1; this.distinct++ }
    return idx
  }

  bad (partition, m, why) {
    this.mismatches++
    if (!this.firstMismatch) this.firstMismatch = { partition, offset: m.offset, key: m.key && m.key.toString(), why }
    return null
  }

  summary () {
    const partitions = {}
    for (const [p, st] of Object.entries(this.partitions)) {
      partitions[p] = { count: st.count, first_offset: Number(st.firstOffset), last_offset: Number(st.lastOffset) }
    }
    return {
      records: this.records,
      distinct: this.distinct,
      duplicates: this.duplicates,
      mismatches: this.mismatches,
      out_of_range: this.outOfRange,
      out_of_order: this.outOfOrder,
      first_mismatch: this.firstMismatch,
      partitions,
    }
  }
}

async function consume (args) {
  const v = new Verifier(args)
  const timeoutMs = num(args.timeout, 120) * 1000
  const group = args.group || `compat-consume-${process.pid}-${Date.now()}`
  const consumer = client(args).consumer({ groupId: group, maxBytes: 16 << 20, sessionTimeout: 30000 })
  await consumer.connect()
  await consumer.subscribe({ topic: args.topic, fromBeginning: true })
  const t0 = Date.now()
  let resolveDone
  const done = new Promise(resolve => { resolveDone = resolve })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) v.check(batch.partition, m)
      if (v.distinct >= v.expect && v.expect > 0) resolveDone('complete')
    },
  })
  const timer = setTimeout(() => resolveDone('timeout'), timeoutMs)
  const how = await done
  clearTimeout(timer)
  const elapsed = Date.now() - t0
  await consumer.disconnect()
  out({ ...v.summary(), ended: how, elapsed_ms: elapsed })
}

// ---------------------------------------------------------------- group member

async function groupMember (args) {
  const v = new Verifier({ ...args, expect: 0 })
  const kafka = client(args)
  const consumer = kafka.consumer({
    groupId: args.group,
    sessionTimeout: num(args['session-timeout'], 6000),
    heartbeatInterval: 1000,
    rebalanceTimeout: 30000,
  })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const a = e.payload.memberAssignment || {}
    out({ ev: 'assigned', member: e.payload.memberId, partitions: (a[args.topic] || []).slice().sort((x, y) => x - y) })
  })
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await consumer.disconnect()
    out({ ev: 'stopped', mismatches: v.mismatches })
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.stdin.on('end', stop)
  process.stdin.on('data', () => {})
  await consumer.connect()
  await consumer.subscribe({ topic: args.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: true,
    autoCommitThreshold: 1,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }) => {
      const offsets = []
      const idx = []
      for (const m of batch.messages) {
        if (!isRunning() || isStale()) break
        const i = v.check(batch.partition, m)
        offsets.push(Number(m.offset))
        idx.push(i)
      }
      if (offsets.length === 0) return
      // Reported before the commit: what this member saw survives a SIGKILL.
      out({ ev: 'records', p: batch.partition, offsets, idx, mismatches: v.mismatches })
      resolveOffset(String(offsets[offsets.length - 1]))
      await commitOffsetsIfNecessary()
      await heartbeat()
    },
  })
  out({ ev: 'running' })
}

// ---------------------------------------------------------------- admin

function errorOf (e) {
  const inner = (e.errors && e.errors[0]) || e
  return {
    name: inner.name || e.name,
    type: inner.type || e.type || null,
    message: String(inner.message || e.message),
  }
}

async function adminOps (args) {
  const ops = JSON.parse(args.ops)
  const kafka = client(args)
  const admin = kafka.admin()
  await admin.connect()
  const results = []
  for (const op of ops) {
    try {
      results.push({ ok: true, result: await adminOp(admin, op) })
    } catch (e) {
      results.push({ ok: false, error: errorOf(e) })
    }
  }
  await admin.disconnect()
  out(results)
}

async function adminOp (admin, op) {
  switch (op.op) {
    case 'create_topic':
      return await admin.createTopics({
        waitForLeaders: true,
        topics: [{
          topic: op.topic,
          numPartitions: op.partitions,
          replicationFactor: op.replication_factor || 1,
          configEntries: Object.entries(op.configs || {}).map(([name, value]) => ({ name, value: String(value) })),
        }],
      })
    case 'list_topics':
      return (await admin.listTopics()).sort()
    case 'describe_topic': {
      const md = await admin.fetchTopicMetadata({ topics: [op.topic] })
      const t = md.topics[0]
      return { name: t.name, partitions: t.partitions.map(p => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas })).sort((a, b) => a.partition - b.partition) }
    }
    case 'describe_configs': {
      const r = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: 2 /* TOPIC */, name: op.topic, configNames: op.names || [] }],
      })
      const res = r.resources[0]
      if (res.errorCode) throw Object.assign(new Error(res.errorMessage), { type: String(res.errorCode) })
      return Object.fromEntries(res.configEntries.map(c => [c.configName, { value: c.configValue, default: c.isDefault }]))
    }
    case 'alter_configs':
      return await admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: 2, name: op.topic, configEntries: Object.entries(op.configs).map(([name, value]) => ({ name, value: String(value) })) }],
      })
    case 'create_partitions':
      await admin.createPartitions({ validateOnly: false, topicPartitions: [{ topic: op.topic, count: op.count }] })
      return true
    case 'delete_topic':
      await admin.deleteTopics({ topics: [op.topic], timeout: 30000 })
      return true
    case 'fetch_committed': {
      const r = await admin.fetchOffsets({ groupId: op.group, topics: [op.topic] })
      return Object.fromEntries(r[0].partitions.map(p => [String(p.partition), Number(p.offset)]))
    }
    case 'end_offsets': {
      const r = await admin.fetchTopicOffsets(op.topic)
      return Object.fromEntries(r.map(p => [String(p.partition), { low: Number(p.low), high: Number(p.high) }]))
    }
    case 'offsets_by_timestamp': {
      const r = await admin.fetchTopicOffsetsByTimestamp(op.topic, op.timestamp)
      return Object.fromEntries(r.map(p => [String(p.partition), Number(p.offset)]))
    }
    case 'describe_group': {
      const r = await admin.describeGroups([op.group])
      const g = r.groups[0]
      return { state: g.state, protocol: g.protocol, members: g.members.length }
    }
    default:
      throw new Error(`unknown admin op ${op.op}`)
  }
}

// ---------------------------------------------------------------- main

async function main () {
  const [cmd, ...rest] = process.argv.slice(2)
  const args = parseArgs(rest)
  await zstdSupport()
  switch (cmd) {
    case 'produce': return await produce(args)
    case 'consume': return await consume(args)
    case 'group-member': return await groupMember(args)
    case 'admin': return await adminOps(args)
    case 'produce-steady': return await produceSteady(args)
    default: throw new Error(`unknown command ${cmd}`)
  }
}

main().catch(e => {
  process.stderr.write(`driver failed: ${e && e.stack ? e.stack : e}\n`)
  out({ fatal: errorOf(e) })
  process.exit(2)
})
