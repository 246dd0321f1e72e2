//! The producer: records are appended to per-partition batches, and one background sender
//! task ships ready batches (full, lingered long enough, flushed, or retried) to partition
//! leaders, one Produce request per leader carrying at most one batch per partition.
//!
//! Ordering: a partition has at most one batch in flight, and a batch that fails with a
//! retriable error goes back to the head of its partition's queue with the same bytes (so with
//! idempotence the same producer id, epoch and sequence), so records of a partition are
//! written in send order even across retries. `max_in_flight` bounds the Produce requests in
//! flight per broker connection.
//!
//! Idempotence (default, with acks=all as in Kafka; with acks 0 or 1 it is off): the sender
//! gets a producer id with InitProducerId before the first batch and numbers each partition's
//! records from 0. A batch that fails fatally breaks its partition's sequence, so the producer
//! then waits for the requests in flight, bumps its epoch (KIP-360; a new id from brokers
//! before InitProducerId v3) and restarts every sequence at 0; a batch that was retried across
//! such a bump is re-stamped and may then be written twice.
//!
//! A record's outcome is its [`DeliveryFuture`]: the offset once the leader acknowledged it
//! (-1 with acks=0), or the error after retries or `delivery_timeout`. Dropping the producer
//! without [`Producer::close`] still delivers what was sent.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strata_kafka::now_ms;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{Channel, Target};
use crate::records::{encode_batch, Compression, OutgoingRecord, ProducerStamp};
use crate::{Client, Error};

/// Bytes a record adds to a batch beyond its key, value and headers (varints, attributes).
const RECORD_OVERHEAD: usize = 21;

/// Which acknowledgement a Produce request waits for (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no response; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader wrote it.
    Leader,
    /// `acks=all` (-1): every in-sync replica has it.
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings, named after Kafka's producer configs.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks` (default all).
    pub acks: Acks,
    /// `linger.ms`: how long a batch waits for more records (default 5 ms).
    pub linger: Duration,
    /// `batch.size`: bytes at which a batch is sent without waiting (default 16 KiB).
    pub batch_size: usize,
    /// `compression.type` (default none).
    pub compression: Compression,
    /// `enable.idempotence` (default true; effective with acks=all only).
    pub idempotence: bool,
    /// `max.in.flight.requests.per.connection` (default 5).
    pub max_in_flight: usize,
    /// `request.timeout.ms`: how long the broker and the client wait for one Produce.
    pub request_timeout: Duration,
    /// `delivery.timeout.ms`: how long a record may take from send to outcome, retries
    /// included (default 120 s).
    pub delivery_timeout: Duration,
    /// `retries` for retriable errors (default unlimited, bounded by `delivery_timeout`).
    pub retries: u32,
    /// `buffer.memory`: bytes of records waiting to be sent before `send` waits (32 MiB).
    pub buffer_memory: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            compression: Compression::None,
            idempotence: true,
            max_in_flight: 5,
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            retries: u32::MAX,
            buffer_memory: 32 * 1024 * 1024,
        }
    }
}

/// A record to produce to an explicit partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: i32,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Header keys must be distinct: the record codec keeps headers in a map.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// CreateTime in ms since the epoch; negative means "now".
    pub timestamp: i64,
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 when the producer does not wait for acknowledgements (acks=0).
    pub offset: i64,
}

/// Resolves once the record was acknowledged or finally failed.
#[derive(Debug)]
pub struct DeliveryFuture(oneshot::Receiver<Result<RecordMetadata, Error>>);

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| Err(Error::Closed("the record was dropped undelivered".into())))
        })
    }
}

/// An async producer; see the module documentation. Share it behind an `Arc`.
pub struct Producer {
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .finish()
    }
}

type Waiter = oneshot::Sender<Result<RecordMetadata, Error>>;
type TopicPartition = (String, i32);

struct Batch {
    records: Vec<OutgoingRecord>,
    /// A whole batch handed over already encoded ([`Producer::send_batch`]) and its record
    /// count; it is re-stamped, never re-encoded, and takes no other records.
    prebuilt: Option<(Bytes, usize)>,
    /// Queued whole ([`Producer::send_records`], [`Producer::send_batch`]): it takes no more
    /// records, has one waiter for all of them, and goes out without lingering.
    sealed: bool,
    waiters: Vec<Waiter>,
    bytes: usize,
    created: Instant,
    attempts: u32,
    /// The bytes sent, kept for retries, with the stamp they were encoded with.
    encoded: Option<(ProducerStamp, Bytes)>,
    /// The stamp to send with (assigned when the batch is drained).
    stamp: ProducerStamp,
    memory: Option<OwnedSemaphorePermit>,
}

impl Batch {
    fn new(
        records: Vec<OutgoingRecord>,
        prebuilt: Option<(Bytes, usize)>,
        sealed: bool,
        waiter: Waiter,
        bytes: usize,
        memory: OwnedSemaphorePermit,
    ) -> Batch {
        Batch {
            records,
            prebuilt,
            sealed,
            waiters: vec![waiter],
            bytes,
            created: Instant::now(),
            attempts: 0,
            encoded: None,
            stamp: ProducerStamp::NONE,
            memory: Some(memory),
        }
    }

    /// Records in the batch (what the sequence advances by).
    fn record_count(&self) -> usize {
        self.prebuilt
            .as_ref()
            .map_or(self.records.len(), |(_, n)| *n)
    }
}

#[derive(Default)]
struct PartitionState {
    queue: VecDeque<Batch>,
    in_flight: bool,
    next_sequence: i32,
    retry_at: Option<Instant>,
    /// Consecutive metadata lookups that found no leader (for their backoff).
    lookups: u32,
    appended: u64,
    completed: u64,
}

#[derive(Default)]
struct State {
    partitions: HashMap<TopicPartition, PartitionState>,
    closing: bool,
    flushing: usize,
    in_flight: usize,
    /// (producer id, epoch) of an idempotent producer, once known.
    identity: Option<(i64, i16)>,
    bump_needed: bool,
    /// Topics whose leaders must be looked up again.
    refresh: Vec<String>,
}

struct Shared {
    client: Client,
    config: ProducerConfig,
    idempotent: bool,
    state: Mutex<State>,
    /// Wakes the sender: a new or full batch, a completed request, flush or close.
    wake: Notify,
    /// Signals completed batches to `flush`.
    progress: Notify,
    memory: Arc<Semaphore>,
    connections: Mutex<HashMap<i32, Arc<Semaphore>>>,
}

impl Client {
    /// A producer that sends through this client's connections and metadata.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        let idempotent = config.idempotence && config.acks == Acks::All;
        let shared = Arc::new(Shared {
            client: self.clone(),
            memory: Arc::new(Semaphore::new(config.buffer_memory.max(1))),
            idempotent,
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            progress: Notify::new(),
            connections: Mutex::new(HashMap::new()),
        });
        let sender = tokio::spawn(run_sender(shared.clone()));
        Producer {
            shared,
            sender: Some(sender),
        }
    }
}

impl Producer {
    /// Appends a record to its partition's batch. Waits only while `buffer_memory` is full.
    /// The returned future resolves once the record is acknowledged or finally failed.
    ///
    /// Cancellation: dropping this future before it completes appends nothing.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        let (outgoing, size) = self.outgoing(&record)?;
        let (topic, partition) = (record.topic, record.partition);
        let memory = self.reserve(size).await?;
        let (tx, rx) = oneshot::channel();
        let batch_size = self.shared.config.batch_size;
        let wake = {
            let mut st = self.shared.state.lock();
            if st.closing {
                return Err(Error::Closed("send after close".into()));
            }
            let ps = st.partitions.entry((topic, partition)).or_default();
            ps.appended += 1;
            let fits = ps.queue.back().is_some_and(|b| {
                b.encoded.is_none() && !b.sealed && b.attempts == 0 && b.bytes + size <= batch_size
            });
            if fits {
                if let Some(b) = ps.queue.back_mut() {
                    b.records.push(outgoing);
                    b.waiters.push(tx);
                    b.bytes += size;
                    if let Some(m) = b.memory.as_mut() {
                        m.merge(memory);
                    }
                    b.bytes >= batch_size
                } else {
                    false
                }
            } else {
                let batch = Batch::new(vec![outgoing], None, false, tx, size, memory);
                ps.queue.push_back(batch);
                true
            }
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(DeliveryFuture(rx))
    }

    /// Checks a record and converts it for encoding; returns it with its size estimate.
    fn outgoing(&self, record: &ProducerRecord) -> Result<(OutgoingRecord, usize), Error> {
        let mut headers = IndexMap::with_capacity(record.headers.len());
        let mut size = RECORD_OVERHEAD
            + record.key.as_ref().map_or(0, Bytes::len)
            + record.value.as_ref().map_or(0, Bytes::len);
        for (k, v) in &record.headers {
            size += k.len() + v.as_ref().map_or(0, Bytes::len) + 2;
            if headers
                .insert(StrBytes::from_string(k.clone()), v.clone())
                .is_some()
            {
                return Err(Error::Unsupported {
                    api: "Produce",
                    reason: format!("header {k:?} appears twice in one record"),
                });
            }
        }
        if record.partition < 0 {
            return Err(Error::Unsupported {
                api: "Produce",
                reason: format!(
                    "partition {} (an explicit partition is required)",
                    record.partition
                ),
            });
        }
        if size > self.shared.config.buffer_memory {
            return Err(Error::kafka(
                "Produce",
                ResponseError::MessageTooLarge.code(),
                Some(&format!("a record of {size} bytes exceeds buffer_memory")),
            ));
        }
        let outgoing = OutgoingRecord {
            timestamp: if record.timestamp < 0 {
                now_ms()
            } else {
                record.timestamp
            },
            key: record.key.clone(),
            value: record.value.clone(),
            headers,
        };
        Ok((outgoing, size))
    }

    /// Waits for `size` bytes of `buffer_memory`.
    async fn reserve(&self, size: usize) -> Result<OwnedSemaphorePermit, Error> {
        if self.shared.state.lock().closing {
            return Err(Error::Closed("send after close".into()));
        }
        let permits = u32::try_from(size.min(self.shared.config.buffer_memory)).unwrap_or(u32::MAX);
        self.shared
            .memory
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed("producer closed".into()))
    }

    /// Queues `records`, all for one partition, as one batch of their own (the caller keeps
    /// it within `batch.size` and the topic's `max.message.bytes`): one call, one
    /// acknowledgement, resolving to the offset of the first record (the others follow it).
    pub async fn send_records(
        &self,
        topic: &str,
        partition: i32,
        records: &[ProducerRecord],
    ) -> Result<DeliveryFuture, Error> {
        let mut outgoing = Vec::with_capacity(records.len());
        let mut size = 0;
        for r in records {
            if r.topic != topic || r.partition != partition {
                return Err(Error::Unsupported {
                    api: "Produce",
                    reason: "send_records takes records of one partition".into(),
                });
            }
            let (o, s) = self.outgoing(r)?;
            outgoing.push(o);
            size += s;
        }
        if outgoing.is_empty() {
            return Err(Error::Unsupported {
                api: "Produce",
                reason: "send_records needs at least one record".into(),
            });
        }
        let memory = self.reserve(size).await?;
        self.enqueue_batch(topic, partition, outgoing, None, size, memory)
    }

    /// Queues one whole record batch fetched from another cluster (a [`crate::RawBatch`] for
    /// which [`crate::RawBatch::reproducible`] holds) for `topic`/`partition`, as one unit:
    /// its records, compression and timestamps are kept, and it gets this producer's id,
    /// epoch and sequence (so ordering, retries and idempotence work as for other batches).
    /// The future resolves to the offset the batch's first record got.
    pub async fn send_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: &crate::RawBatch,
    ) -> Result<DeliveryFuture, Error> {
        crate::records::check_one_batch(&batch.bytes)?;
        if !batch.reproducible() {
            return Err(Error::Unsupported {
                api: "Produce",
                reason: "a control, transactional, LogAppendTime or compacted batch cannot be \
                         produced again as it is"
                    .into(),
            });
        }
        let size = batch.bytes.len();
        let memory = self.reserve(size).await?;
        let prebuilt = Some((batch.bytes.clone(), batch.records_count.max(0) as usize));
        self.enqueue_batch(topic, partition, Vec::new(), prebuilt, size, memory)
    }

    /// Appends a batch of its own to a partition's queue and wakes the sender.
    fn enqueue_batch(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<OutgoingRecord>,
        prebuilt: Option<(Bytes, usize)>,
        size: usize,
        memory: OwnedSemaphorePermit,
    ) -> Result<DeliveryFuture, Error> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.state.lock();
            if st.closing {
                return Err(Error::Closed("send after close".into()));
            }
            let ps = st
                .partitions
                .entry((topic.to_string(), partition))
                .or_default();
            ps.appended += 1;
            let batch = Batch::new(records, prebuilt, true, tx, size, memory);
            ps.queue.push_back(batch);
        }
        self.shared.wake.notify_one();
        Ok(DeliveryFuture(rx))
    }

    /// Sends every record appended so far without waiting for `linger`, and waits until each
    /// has its outcome (the outcomes themselves are in the records' futures).
    pub async fn flush(&self) -> Result<(), Error> {
        let targets: Vec<(TopicPartition, u64)> = {
            let mut st = self.shared.state.lock();
            st.flushing += 1;
            st.partitions
                .iter()
                .map(|(tp, ps)| (tp.clone(), ps.appended))
                .collect()
        };
        // Undo `flushing` however this future ends (it may be cancelled).
        struct Flushing<'a>(&'a Shared);
        impl Drop for Flushing<'_> {
            fn drop(&mut self) {
                self.0.state.lock().flushing -= 1;
            }
        }
        let _flushing = Flushing(&self.shared);
        self.shared.wake.notify_one();
        loop {
            let progressed = self.shared.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            let done = {
                let st = self.shared.state.lock();
                targets.iter().all(|(tp, target)| {
                    st.partitions
                        .get(tp)
                        .is_none_or(|ps| ps.completed >= *target)
                })
            };
            if done {
                return Ok(());
            }
            progressed.await;
        }
    }

    /// Flushes, then stops the sender.
    pub async fn close(mut self) {
        let _ = self.flush().await;
        self.shared.state.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(sender) = self.sender.take() {
            let _ = sender.await;
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // The sender delivers what is queued, then exits.
        self.shared.state.lock().closing = true;
        self.shared.wake.notify_one();
    }
}

/// A batch taken off its queue to be sent to `leader`.
struct Dispatch {
    tp: TopicPartition,
    batch: Batch,
}

/// The sender task: see the module documentation.
async fn run_sender(shared: Arc<Shared>) {
    loop {
        // Without an identity `drain` sends nothing but still expires old batches.
        let identity_ready = !shared.idempotent || ensure_identity(&shared).await;
        let refresh = std::mem::take(&mut shared.state.lock().refresh);
        if !refresh.is_empty() {
            if let Err(e) = shared.client.metadata_for(&refresh).await {
                tracing::debug!(error = %e, "producer metadata refresh failed");
            }
        }
        let (ready, next_wake, exit) = drain(&shared);
        if exit {
            return;
        }
        let lookup_pending = !shared.state.lock().refresh.is_empty();
        let mut by_leader: HashMap<i32, Vec<Dispatch>> = HashMap::new();
        for (leader, d) in ready {
            by_leader.entry(leader).or_default().push(d);
        }
        for (leader, batches) in by_leader {
            tokio::spawn(send_to_leader(shared.clone(), leader, batches));
        }
        if lookup_pending {
            shared.client.invalidate_metadata();
            continue;
        }
        if !identity_ready {
            // `ensure_identity` already waited (backoff, or requests in flight).
            continue;
        }
        match next_wake {
            Some(at) => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

/// Makes sure an idempotent producer has an id (and bumps the epoch after a broken
/// sequence, once nothing is in flight). Returns false when there is no usable identity yet;
/// it has then waited before returning, so the sender may loop at once.
async fn ensure_identity(shared: &Arc<Shared>) -> bool {
    enum Step {
        Ready,
        WaitForInFlight,
        Init(Option<(i64, i16)>),
    }
    let step = {
        let st = shared.state.lock();
        let queued = st.partitions.values().any(|p| !p.queue.is_empty());
        match (st.identity, st.bump_needed) {
            (Some(_), false) => Step::Ready,
            // Nothing to send yet: the id is fetched with the first batch.
            (None, _) if !queued => Step::Ready,
            // A bump waits for the requests in flight under the old epoch.
            (Some(_), true) if st.in_flight > 0 => Step::WaitForInFlight,
            (identity, _) => Step::Init(identity),
        }
    };
    let current = match step {
        Step::Ready => return true,
        Step::WaitForInFlight => {
            shared.wake.notified().await;
            return false;
        }
        Step::Init(identity) => identity,
    };
    let client = &shared.client;
    let result = client
        .send(Target::Any, |version| {
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(i32::MAX);
            if let (Some((id, epoch)), true) = (current, version >= 3) {
                req = req
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch);
            }
            req
        })
        .await
        .and_then(|(_, resp)| {
            Error::check("InitProducerId", resp.error_code, None)?;
            Ok((resp.producer_id.0, resp.producer_epoch))
        });
    match result {
        Ok(identity) => {
            let mut st = shared.state.lock();
            st.identity = Some(identity);
            st.bump_needed = false;
            for ps in st.partitions.values_mut() {
                ps.next_sequence = 0;
            }
            tracing::debug!(producer_id = identity.0, epoch = identity.1, "producer id");
            true
        }
        Err(e) if e.is_retriable() => {
            tracing::debug!(error = %e, "InitProducerId failed; retrying");
            tokio::time::sleep(client.config().backoff(0)).await;
            false
        }
        Err(e) => {
            // Nothing can be sent idempotently: fail what waits; later sends try again.
            {
                let mut st = shared.state.lock();
                for ps in st.partitions.values_mut() {
                    while let Some(batch) = ps.queue.pop_front() {
                        ps.completed += batch.waiters.len() as u64;
                        fail_batch(batch, &e);
                    }
                }
            }
            shared.progress.notify_waiters();
            tracing::warn!(error = %e, "InitProducerId failed; queued records failed");
            tokio::time::sleep(client.config().backoff(0)).await;
            false
        }
    }
}

/// Takes the batches that are ready and whose leader is known; fails batches past their
/// delivery timeout. Returns them with their leader, when to look again, and whether the
/// sender is done (closing with nothing left).
fn drain(shared: &Shared) -> (Vec<(i32, Dispatch)>, Option<Instant>, bool) {
    let config = &shared.config;
    let meta = shared.client.cached_metadata();
    let now = Instant::now();
    let mut ready = Vec::new();
    let mut next: Option<Instant> = None;
    let mut soonest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
    let mut completed_any = false;
    let mut st = shared.state.lock();
    let State {
        partitions,
        closing,
        flushing,
        in_flight,
        identity,
        bump_needed,
        refresh,
    } = &mut *st;
    let hurry = *closing || *flushing > 0;
    for (tp, ps) in partitions.iter_mut() {
        // Expire what waited too long, oldest first.
        while ps
            .queue
            .front()
            .is_some_and(|b| now.duration_since(b.created) >= config.delivery_timeout)
        {
            if let Some(batch) = ps.queue.pop_front() {
                ps.completed += batch.waiters.len() as u64;
                completed_any = true;
                // A batch that was sent before used up its sequence numbers.
                *bump_needed |= shared.idempotent && batch.attempts > 0;
                let e = Error::Timeout {
                    what: format!(
                        "delivery of {} record(s) to {}-{} within {} ms",
                        batch.waiters.len(),
                        tp.0,
                        tp.1,
                        config.delivery_timeout.as_millis()
                    ),
                };
                fail_batch(batch, &e);
            }
        }
        // After a broken sequence nothing is sent until the epoch is bumped.
        if ps.in_flight || (shared.idempotent && *bump_needed) {
            continue;
        }
        let Some(front) = ps.queue.front() else {
            continue;
        };
        soonest(front.created + config.delivery_timeout);
        if let Some(at) = ps.retry_at.filter(|at| *at > now) {
            soonest(at);
            continue;
        }
        let due = front.created + config.linger;
        let is_ready = hurry
            || front.attempts > 0
            || front.sealed
            || ps.queue.len() > 1
            || front.bytes >= config.batch_size
            || due <= now;
        if !is_ready {
            soonest(due);
            continue;
        }
        let leader = meta
            .topics
            .get(&tp.0)
            .and_then(|t| t.partition(tp.1))
            .map(|p| p.leader)
            .filter(|l| *l >= 0);
        let Some(leader) = leader else {
            // Look the leader up now the first time, then with backoff.
            if !refresh.contains(&tp.0) {
                refresh.push(tp.0.clone());
            }
            if ps.lookups > 0 {
                let at = now + shared.client.config().backoff(ps.lookups - 1);
                ps.retry_at = Some(at);
                soonest(at);
            }
            ps.lookups += 1;
            continue;
        };
        ps.lookups = 0;
        let Some(mut batch) = ps.queue.pop_front() else {
            continue;
        };
        if shared.idempotent {
            let Some((id, epoch)) = *identity else {
                ps.queue.push_front(batch);
                continue;
            };
            let fresh = batch
                .encoded
                .as_ref()
                .is_none_or(|(s, _)| s.producer_id != id || s.producer_epoch != epoch);
            if fresh {
                batch.encoded = None;
                batch.stamp = ProducerStamp {
                    producer_id: id,
                    producer_epoch: epoch,
                    base_sequence: ps.next_sequence,
                };
                ps.next_sequence = next_sequence(ps.next_sequence, batch.record_count());
            }
        }
        ps.in_flight = true;
        ps.retry_at = None;
        *in_flight += 1;
        ready.push((
            leader,
            Dispatch {
                tp: tp.clone(),
                batch,
            },
        ));
    }
    let exit = *closing && *in_flight == 0 && partitions.values().all(|p| p.queue.is_empty());
    drop(st);
    if completed_any {
        shared.progress.notify_waiters();
    }
    (ready, next, exit)
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
fn next_sequence(current: i32, records: usize) -> i32 {
    let span = i64::from(i32::MAX) + 1;
    ((i64::from(current) + records as i64) % span) as i32
}

fn fail_batch(batch: Batch, error: &Error) {
    for w in batch.waiters {
        let _ = w.send(Err(error.clone()));
    }
}

/// The outcome of one batch in a Produce request.
enum Outcome {
    Written(i64),
    Failed(Error),
}

/// Sends one Produce request with these batches and settles each batch.
async fn send_to_leader(shared: Arc<Shared>, leader: i32, mut batches: Vec<Dispatch>) {
    let limit = shared
        .connections
        .lock()
        .entry(leader)
        .or_insert_with(|| Arc::new(Semaphore::new(shared.config.max_in_flight.max(1))))
        .clone();
    let _permit = limit.acquire_owned().await;
    let outcomes = match produce(&shared, leader, &mut batches).await {
        Ok(outcomes) => outcomes,
        Err(e) => batches.iter().map(|_| Outcome::Failed(e.clone())).collect(),
    };
    settle(&shared, batches, outcomes);
}

async fn produce(
    shared: &Shared,
    leader: i32,
    batches: &mut [Dispatch],
) -> Result<Vec<Outcome>, Error> {
    let config = &shared.config;
    let mut parts = Vec::with_capacity(batches.len());
    for d in batches.iter_mut() {
        let bytes = match &d.batch.encoded {
            Some((_, bytes)) => bytes.clone(),
            None => {
                let bytes = match &d.batch.prebuilt {
                    Some((raw, _)) => crate::records::restamp(raw, d.batch.stamp)?,
                    None => encode_batch(&d.batch.records, d.batch.stamp, config.compression)?,
                };
                d.batch.encoded = Some((d.batch.stamp, bytes.clone()));
                bytes
            }
        };
        parts.push((d.tp.0.as_str(), d.tp.1, bytes));
    }
    produce_once(
        &shared.client,
        leader,
        config.acks,
        config.request_timeout,
        &parts,
    )
    .await
}

/// One Produce request to `leader` with one batch per (topic, partition); the outcomes are
/// in the order of `parts`.
async fn produce_once(
    client: &Client,
    leader: i32,
    acks: Acks,
    timeout: Duration,
    parts: &[(&str, i32, Bytes)],
) -> Result<Vec<Outcome>, Error> {
    let conn = client.broker_channel(leader, Channel::Produce).await?;
    let meta = client.cached_metadata();
    let ids: HashMap<&str, Uuid> = parts
        .iter()
        .filter_map(|(topic, _, _)| Some((*topic, meta.topics.get(*topic)?.id?)))
        .collect();
    let mut version = conn.dedicated_version(ApiKey::Produce)?;
    if version >= 13 && parts.iter().any(|(t, _, _)| !ids.contains_key(t)) {
        // Produce v13 names topics by id only.
        version = 12.max(conn.broker_range(ApiKey::Produce).map_or(0, |r| r.0));
        if version > 12 {
            return Err(Error::Unsupported {
                api: "Produce",
                reason: "the broker needs topic ids and the metadata has none".into(),
            });
        }
    }
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let request = produce_request(version, acks, timeout_ms, parts, &ids);
    if acks == Acks::None {
        conn.send_without_response(version, &request).await?;
        return Ok(parts.iter().map(|_| Outcome::Written(-1)).collect());
    }
    let resp = conn
        .request_at(
            ApiKey::Produce,
            version,
            &request,
            timeout + Duration::from_secs(1),
        )
        .await?;
    let by_id: HashMap<Uuid, &str> = ids.iter().map(|(n, id)| (*id, *n)).collect();
    let mut answers: HashMap<(String, i32), Outcome> = HashMap::new();
    for t in resp.responses {
        let topic = if version >= 13 {
            by_id
                .get(&t.topic_id)
                .map(|n| n.to_string())
                .unwrap_or_default()
        } else {
            t.name.0.to_string()
        };
        for p in t.partition_responses {
            let outcome = match ResponseError::try_from_code(p.error_code) {
                None => Outcome::Written(p.base_offset),
                // Already written by an earlier attempt of this very batch.
                Some(ResponseError::DuplicateSequenceNumber) => Outcome::Written(-1),
                Some(_) => {
                    let detail = p.error_message.as_deref().map(str::to_string).or_else(|| {
                        p.record_errors.first().and_then(|r| {
                            r.batch_index_error_message.as_deref().map(str::to_string)
                        })
                    });
                    Outcome::Failed(Error::kafka("Produce", p.error_code, detail.as_deref()))
                }
            };
            answers.insert((topic.clone(), p.index), outcome);
        }
    }
    Ok(parts
        .iter()
        .map(|(topic, partition, _)| {
            answers
                .remove(&(topic.to_string(), *partition))
                .unwrap_or_else(|| {
                    Outcome::Failed(Error::Protocol(format!(
                        "Produce response does not mention {topic}-{partition}"
                    )))
                })
        })
        .collect())
}

fn produce_request(
    version: i16,
    acks: Acks,
    timeout_ms: i32,
    parts: &[(&str, i32, Bytes)],
    ids: &HashMap<&str, Uuid>,
) -> ProduceRequest {
    let mut topics: Vec<(&str, Vec<PartitionProduceData>)> = Vec::new();
    for (topic, partition, bytes) in parts {
        let data = PartitionProduceData::default()
            .with_index(*partition)
            .with_records(Some(bytes.clone()));
        match topics.iter_mut().find(|(t, _)| t == topic) {
            Some((_, partitions)) => partitions.push(data),
            None => topics.push((topic, vec![data])),
        }
    }
    let topic_data = topics
        .into_iter()
        .map(|(name, partitions)| {
            let t = TopicProduceData::default().with_partition_data(partitions);
            if version >= 13 {
                t.with_topic_id(ids.get(name).copied().unwrap_or_default())
            } else {
                t.with_name(TopicName(StrBytes::from_string(name.to_string())))
            }
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topic_data)
}

impl Client {
    /// Appends one record batch as fetched (a [`crate::RawBatch`] of another cluster) to a
    /// partition with one Produce request, retrying retriable errors; returns the base offset
    /// the leader assigned (-1 with acks=0). The batch is not re-encoded: producer id,
    /// sequence, timestamps and headers travel unchanged. Only its base offset is set to 0,
    /// as brokers require of produced batches (the CRC does not cover it).
    pub async fn produce_raw(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: Acks,
    ) -> Result<i64, Error> {
        let batch = crate::records::with_base_offset_zero(batch)?;
        self.produce_batches(topic, partition, batch, acks).await
    }
}

impl Client {
    /// Appends whole record batches exactly as given, base offsets included, to one partition
    /// with one Produce request, retrying retriable errors; returns the base offset the broker
    /// reports. This is Strata's offset-preserving append for mirror targets (topics with
    /// `strata.mirror.source`): the broker keeps the offsets and skips batches it already has,
    /// so a retry is harmless. Other brokers (and Strata topics that are not mirror targets)
    /// refuse it; use [`Client::produce_raw`] there.
    pub async fn produce_preserving_offsets(
        &self,
        topic: &str,
        partition: i32,
        batches: Bytes,
        acks: Acks,
    ) -> Result<i64, Error> {
        self.produce_batches(topic, partition, batches, acks).await
    }

    /// One Produce request carrying `batches` for one partition, retried while retriable.
    async fn produce_batches(
        &self,
        topic: &str,
        partition: i32,
        batches: Bytes,
        acks: Acks,
    ) -> Result<i64, Error> {
        let batches = &batches;
        self.retry("Produce", || async move {
            let meta = self.metadata_for(&[topic.to_string()]).await?;
            let (leader, _) = crate::fetch::leader_of(&meta, topic, partition)?;
            let parts = [(topic, partition, batches.clone())];
            let outcomes = produce_once(self, leader, acks, self.timeout(), &parts).await?;
            match outcomes.into_iter().next() {
                Some(Outcome::Written(offset)) => Ok(offset),
                Some(Outcome::Failed(e)) => Err(e),
                None => Err(Error::Protocol("empty Produce response".into())),
            }
        })
        .await
    }
}

/// Completes, retries or fails each batch by its outcome.
fn settle(shared: &Shared, batches: Vec<Dispatch>, outcomes: Vec<Outcome>) {
    let config = &shared.config;
    let now = Instant::now();
    let mut st = shared.state.lock();
    for (d, outcome) in batches.into_iter().zip(outcomes) {
        st.in_flight -= 1;
        let Dispatch { tp, mut batch } = d;
        let mut bump = false;
        let mut refresh = false;
        let Some(ps) = st.partitions.get_mut(&tp) else {
            continue;
        };
        ps.in_flight = false;
        match outcome {
            Outcome::Written(base) => {
                ps.completed += batch.waiters.len() as u64;
                for (i, w) in batch.waiters.into_iter().enumerate() {
                    let offset = if base < 0 { -1 } else { base + i as i64 };
                    let _ = w.send(Ok(RecordMetadata {
                        topic: tp.0.clone(),
                        partition: tp.1,
                        offset,
                    }));
                }
            }
            Outcome::Failed(e) => {
                let unknown_producer = e.is(ResponseError::UnknownProducerId);
                let retriable = e.is_retriable() || (unknown_producer && shared.idempotent);
                let in_time = now.duration_since(batch.created) < config.delivery_timeout;
                refresh = e.invalidates_metadata();
                if retriable && in_time && batch.attempts < config.retries {
                    tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, attempt = batch.attempts, "retrying batch");
                    batch.attempts += 1;
                    if unknown_producer {
                        // The broker forgot this producer: new epoch, sequences from 0.
                        batch.encoded = None;
                        bump = true;
                    }
                    ps.retry_at = Some(now + shared.client.config().backoff(batch.attempts - 1));
                    ps.queue.push_front(batch);
                } else {
                    ps.completed += batch.waiters.len() as u64;
                    fail_batch(batch, &e);
                    // The partition's sequence now has a gap.
                    bump = shared.idempotent;
                }
            }
        }
        if bump {
            st.bump_needed = true;
        }
        if refresh {
            shared.client.invalidate_metadata();
            if !st.refresh.contains(&tp.0) {
                st.refresh.push(tp.0.clone());
            }
        }
    }
    drop(st);
    shared.progress.notify_waiters();
    shared.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::implemented;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(next_sequence(0, 5), 5);
        assert_eq!(next_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 5), 3);
    }

    #[test]
    fn produce_requests_encode_at_every_negotiable_version() {
        let batch = Bytes::from_static(b"batch");
        let parts = [
            ("a", 0, batch.clone()),
            ("a", 1, batch.clone()),
            ("b", 0, batch),
        ];
        let ids = HashMap::from([("a", Uuid::from_u128(1)), ("b", Uuid::from_u128(2))]);
        let (lo, hi) = implemented(ApiKey::Produce);
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            for v in lo..=hi {
                let req = produce_request(v, acks, 1000, &parts, &ids);
                assert_eq!(req.topic_data.len(), 2);
                assert_eq!(req.acks, acks.wire());
                req.encode(&mut BytesMut::new(), v)
                    .unwrap_or_else(|e| panic!("Produce v{v}: {e}"));
            }
        }
        let (lo, hi) = implemented(ApiKey::InitProducerId);
        for v in lo..=hi {
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(i32::MAX);
            if v >= 3 {
                req = req.with_producer_id(ProducerId(5)).with_producer_epoch(1);
            }
            req.encode(&mut BytesMut::new(), v)
                .unwrap_or_else(|e| panic!("InitProducerId v{v}: {e}"));
        }
    }

    #[test]
    fn idempotence_needs_acks_all() {
        assert_eq!(Acks::All.wire(), -1);
        assert_eq!(Acks::Leader.wire(), 1);
        assert_eq!(Acks::None.wire(), 0);
    }
}
