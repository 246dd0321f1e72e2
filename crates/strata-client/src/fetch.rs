//! Reading partitions: ListOffsets and Fetch, each sent to the partition leaders named by the
//! cached metadata (one request per leader, leaders asked concurrently). `list_offsets`
//! retries retriable errors, refreshing metadata first. `fetch` is one long poll per leader
//! and does not retry: a partition's error is reported in its [`FetchedPartition`] (metadata
//! is invalidated when the error says leadership moved), so the caller's fetch loop decides
//! what to do next. Fetch is sessionless (every request is a full fetch) and reads
//! uncommitted data.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::client::Channel;
use crate::records::{decode_batches, FetchedRecord, RawBatch};
use crate::{Client, ClusterMetadata, Error};

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark for consumers).
    Latest,
    /// The first offset whose timestamp is at or after this one (ms since the epoch).
    Timestamp(i64),
    /// The record with the largest timestamp and that timestamp (ListOffsets v7+, KIP-734).
    MaxTimestamp,
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
            OffsetSpec::MaxTimestamp => -3,
        }
    }
}

/// A ListOffsets answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when no record has a timestamp at or after the one asked for.
    pub offset: i64,
    /// The found record's timestamp (-1 for Earliest/Latest).
    pub timestamp: i64,
    /// The leader epoch of the found offset (ListOffsets v4+).
    pub leader_epoch: Option<i32>,
}

/// One partition to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionSpec {
    pub topic: String,
    pub partition: i32,
    /// The first offset wanted.
    pub offset: i64,
}

/// A fetch across partitions (Kafka's consumer knobs, same names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequestSpec {
    pub partitions: Vec<FetchPartitionSpec>,
    /// `fetch.min.bytes`: the broker waits until this much is available...
    pub min_bytes: i32,
    /// `fetch.max.wait.ms`: ...or this long.
    pub max_wait_ms: i32,
    /// `fetch.max.bytes`: the most one broker returns (at least one batch is returned).
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes`: the most returned per partition.
    pub partition_max_bytes: i32,
    /// `client.rack`, for fetching from the closest replica (KIP-392; Fetch v11+).
    pub rack_id: Option<String>,
    /// Decode (and decompress) records; off, only whole batches and their headers are
    /// returned (`records` stays empty), for forwarding batches unchanged.
    pub decode_records: bool,
}

impl FetchRequestSpec {
    /// A fetch of `partitions` with the Java consumer's defaults.
    pub fn new(partitions: impl IntoIterator<Item = FetchPartitionSpec>) -> Self {
        FetchRequestSpec {
            partitions: partitions.into_iter().collect(),
            min_bytes: 1,
            max_wait_ms: 500,
            max_bytes: 52_428_800,
            partition_max_bytes: 1_048_576,
            rack_id: None,
            decode_records: true,
        }
    }
}

/// What a fetch returned for one partition.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    pub topic: String,
    pub partition: i32,
    /// Why nothing was read, if so (OFFSET_OUT_OF_RANGE, NOT_LEADER_OR_FOLLOWER, a broken
    /// connection, ...).
    pub error: Option<Error>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Records at or after the fetch offset, control records left out.
    pub records: Vec<FetchedRecord>,
    /// Every whole batch as the broker sent it (the first may start before the fetch offset).
    pub batches: Vec<RawBatch>,
    /// The same whole batches as one contiguous slice.
    pub raw: Bytes,
    /// Where the next fetch of this partition starts.
    pub next_offset: i64,
}

impl FetchedPartition {
    fn failed(topic: &str, partition: i32, offset: i64, error: Error) -> FetchedPartition {
        FetchedPartition {
            topic: topic.to_string(),
            partition,
            error: Some(error),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
            batches: Vec::new(),
            raw: Bytes::new(),
            next_offset: offset,
        }
    }
}

/// What a fetch returned, by (topic, partition).
#[derive(Debug, Clone, Default)]
pub struct FetchResult {
    pub partitions: BTreeMap<(String, i32), FetchedPartition>,
}

fn unknown_partition(topic: &str, partition: i32) -> Error {
    Error::kafka(
        "Metadata",
        ResponseError::UnknownTopicOrPartition.code(),
        Some(&format!(
            "{topic}-{partition} is not in the cluster metadata"
        )),
    )
}

fn no_leader(topic: &str, partition: i32) -> Error {
    Error::kafka(
        "Metadata",
        ResponseError::LeaderNotAvailable.code(),
        Some(&format!("{topic}-{partition} has no leader")),
    )
}

/// The leader and leader epoch of a partition according to `meta`.
pub(crate) fn leader_of(
    meta: &ClusterMetadata,
    topic: &str,
    partition: i32,
) -> Result<(i32, i32), Error> {
    let p = meta
        .topics
        .get(topic)
        .and_then(|t| t.partition(partition))
        .ok_or_else(|| unknown_partition(topic, partition))?;
    if p.leader < 0 {
        return Err(no_leader(topic, partition));
    }
    Ok((p.leader, p.leader_epoch))
}

impl Client {
    /// Looks up offsets of `partitions` of `topic` on their leaders.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, ListedOffset>, Error> {
        let state = Mutex::new((
            partitions.iter().copied().collect::<BTreeSet<i32>>(),
            BTreeMap::new(),
        ));
        let state = &state;
        self.retry("ListOffsets", || async move {
            let meta = self.metadata_for(&[topic.to_string()]).await?;
            let remaining: Vec<i32> = state.lock().0.iter().copied().collect();
            let mut by_leader: BTreeMap<i32, Vec<(i32, i32)>> = BTreeMap::new();
            for p in remaining {
                let (leader, epoch) = leader_of(&meta, topic, p)?;
                by_leader.entry(leader).or_default().push((p, epoch));
            }
            let asks = by_leader
                .into_iter()
                .map(|(leader, parts)| self.list_offsets_on(leader, topic, parts, spec));
            let mut first_error = None;
            for answer in futures::future::join_all(asks).await {
                match answer {
                    Ok(listed) => {
                        for (partition, result) in listed {
                            match result {
                                Ok(offset) => {
                                    let mut s = state.lock();
                                    s.0.remove(&partition);
                                    s.1.insert(partition, offset);
                                }
                                Err(e) => {
                                    first_error.get_or_insert(e);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
        .await?;
        let listed = std::mem::take(&mut state.lock().1);
        Ok(listed)
    }

    async fn list_offsets_on(
        &self,
        leader: i32,
        topic: &str,
        partitions: Vec<(i32, i32)>,
        spec: OffsetSpec,
    ) -> Result<Vec<(i32, Result<ListedOffset, Error>)>, Error> {
        let conn = self.broker_connection(leader).await?;
        let timeout_ms = i32::try_from(self.timeout().as_millis()).unwrap_or(i32::MAX);
        let (version, resp) = conn
            .request(
                |v| list_offsets_request(v, topic, &partitions, spec, timeout_ms),
                self.timeout(),
            )
            .await?;
        let mut out = Vec::new();
        for t in resp
            .topics
            .into_iter()
            .filter(|t| t.name.0.as_str() == topic)
        {
            for p in t.partitions {
                let result =
                    Error::check("ListOffsets", p.error_code, None).map(|()| ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                        leader_epoch: (version >= 4 && p.leader_epoch >= 0)
                            .then_some(p.leader_epoch),
                    });
                out.push((p.partition_index, result));
            }
        }
        for (p, _) in &partitions {
            if !out.iter().any(|(q, _)| q == p) {
                return Err(Error::Protocol(format!(
                    "ListOffsets response does not mention {topic}-{p}"
                )));
            }
        }
        Ok(out)
    }

    /// One fetch: the partitions are grouped by leader and each leader gets one (long-poll)
    /// Fetch request; the call returns when every leader answered. Partition errors, including
    /// an unreachable leader, are reported per partition; only a failure to learn the
    /// metadata fails the call.
    pub async fn fetch(&self, req: FetchRequestSpec) -> Result<FetchResult, Error> {
        let mut topics: Vec<String> = req.partitions.iter().map(|p| p.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let meta = self
            .retry("Metadata", || self.metadata_for(&topics))
            .await?;
        let mut result = FetchResult::default();
        let mut by_leader: BTreeMap<i32, Vec<(FetchPartitionSpec, i32)>> = BTreeMap::new();
        for p in &req.partitions {
            match leader_of(&meta, &p.topic, p.partition) {
                Ok((leader, epoch)) => by_leader
                    .entry(leader)
                    .or_default()
                    .push((p.clone(), epoch)),
                Err(e) => {
                    self.invalidate_metadata();
                    result.partitions.insert(
                        (p.topic.clone(), p.partition),
                        FetchedPartition::failed(&p.topic, p.partition, p.offset, e),
                    );
                }
            }
        }
        let asks = by_leader.into_iter().map(|(leader, parts)| {
            let meta = &meta;
            let req = &req;
            async move {
                match self.fetch_from(leader, &parts, meta, req).await {
                    Ok(fetched) => fetched,
                    Err(e) => parts
                        .iter()
                        .map(|(p, _)| {
                            FetchedPartition::failed(&p.topic, p.partition, p.offset, e.clone())
                        })
                        .collect(),
                }
            }
        });
        for fetched in futures::future::join_all(asks).await {
            for p in fetched {
                if p.error.as_ref().is_some_and(Error::invalidates_metadata) {
                    self.invalidate_metadata();
                }
                result.partitions.insert((p.topic.clone(), p.partition), p);
            }
        }
        Ok(result)
    }

    async fn fetch_from(
        &self,
        leader: i32,
        parts: &[(FetchPartitionSpec, i32)],
        meta: &ClusterMetadata,
        spec: &FetchRequestSpec,
    ) -> Result<Vec<FetchedPartition>, Error> {
        let decode = spec.decode_records;
        let conn = self.broker_channel(leader, Channel::Fetch).await?;
        let mut version = conn.dedicated_version(ApiKey::Fetch)?;
        let ids: HashMap<&str, Uuid> = parts
            .iter()
            .filter_map(|(p, _)| Some((p.topic.as_str(), meta.topics.get(&p.topic)?.id?)))
            .collect();
        let all_have_ids = parts
            .iter()
            .all(|(p, _)| ids.contains_key(p.topic.as_str()));
        if version >= 13 && !all_have_ids {
            // Fetch v13+ names topics by id only.
            let broker_min = conn.broker_range(ApiKey::Fetch).map_or(0, |r| r.0);
            if broker_min > 12 {
                return Err(Error::Unsupported {
                    api: "Fetch",
                    reason: "the broker needs topic ids and the metadata has none".into(),
                });
            }
            version = 12;
        }
        let request = fetch_request(version, parts, &ids, spec);
        let wait = Duration::from_millis(u64::try_from(spec.max_wait_ms).unwrap_or(0));
        let resp = conn
            .request_at(ApiKey::Fetch, version, &request, self.timeout() + wait)
            .await?;
        let offsets: HashMap<(&str, i32), i64> = parts
            .iter()
            .map(|(p, _)| ((p.topic.as_str(), p.partition), p.offset))
            .collect();
        if resp.error_code != 0 {
            let e = Error::kafka("Fetch", resp.error_code, None);
            return Ok(parts
                .iter()
                .map(|(p, _)| FetchedPartition::failed(&p.topic, p.partition, p.offset, e.clone()))
                .collect());
        }
        let by_id: HashMap<Uuid, &str> = ids.iter().map(|(name, id)| (*id, *name)).collect();
        let mut out = Vec::new();
        for t in resp.responses {
            let topic = if version >= 13 {
                match by_id.get(&t.topic_id) {
                    Some(name) => (*name).to_string(),
                    None => continue,
                }
            } else {
                t.topic.0.to_string()
            };
            for p in t.partitions {
                let Some(&offset) = offsets.get(&(topic.as_str(), p.partition_index)) else {
                    continue;
                };
                if p.error_code != 0 {
                    let mut failed = FetchedPartition::failed(
                        &topic,
                        p.partition_index,
                        offset,
                        Error::kafka("Fetch", p.error_code, None),
                    );
                    failed.high_watermark = p.high_watermark;
                    failed.log_start_offset = p.log_start_offset;
                    out.push(failed);
                    continue;
                }
                let raw = p.records.unwrap_or_default();
                let fetched = match decode_batches(&raw, offset, decode) {
                    Ok(decoded) => {
                        let next_offset = decoded
                            .batches
                            .last()
                            .map_or(offset, |b| (b.last_offset + 1).max(offset));
                        FetchedPartition {
                            topic: topic.clone(),
                            partition: p.partition_index,
                            error: None,
                            high_watermark: p.high_watermark,
                            last_stable_offset: p.last_stable_offset,
                            log_start_offset: p.log_start_offset,
                            records: decoded.records,
                            batches: decoded.batches,
                            raw: decoded.raw,
                            next_offset,
                        }
                    }
                    Err(e) => FetchedPartition::failed(&topic, p.partition_index, offset, e),
                };
                out.push(fetched);
            }
        }
        for (p, _) in parts {
            if !out
                .iter()
                .any(|f| f.topic == p.topic && f.partition == p.partition)
            {
                out.push(FetchedPartition::failed(
                    &p.topic,
                    p.partition,
                    p.offset,
                    Error::Protocol(format!(
                        "Fetch response does not mention {}-{}",
                        p.topic, p.partition
                    )),
                ));
            }
        }
        Ok(out)
    }
}

fn list_offsets_request(
    version: i16,
    topic: &str,
    partitions: &[(i32, i32)],
    spec: OffsetSpec,
    timeout_ms: i32,
) -> ListOffsetsRequest {
    let partitions = partitions
        .iter()
        .map(|(p, epoch)| {
            let mut lp = ListOffsetsPartition::default()
                .with_partition_index(*p)
                .with_timestamp(spec.wire());
            if version >= 4 {
                lp = lp.with_current_leader_epoch(*epoch);
            }
            lp
        })
        .collect();
    let mut req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions)]);
    if version >= 10 {
        req = req.with_timeout_ms(timeout_ms);
    }
    req
}

fn fetch_request(
    version: i16,
    parts: &[(FetchPartitionSpec, i32)],
    ids: &HashMap<&str, Uuid>,
    spec: &FetchRequestSpec,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, epoch) in parts {
        let mut partition = FetchPartition::default()
            .with_partition(p.partition)
            .with_fetch_offset(p.offset)
            .with_partition_max_bytes(spec.partition_max_bytes);
        if version >= 9 {
            partition = partition.with_current_leader_epoch(*epoch);
        }
        let position = topics.iter().position(|t| {
            if version >= 13 {
                Some(&t.topic_id) == ids.get(p.topic.as_str())
            } else {
                t.topic.0.as_str() == p.topic
            }
        });
        match position {
            Some(i) => topics[i].partitions.push(partition),
            None => {
                let mut t = FetchTopic::default().with_partitions(vec![partition]);
                if version >= 13 {
                    t = t.with_topic_id(ids.get(p.topic.as_str()).copied().unwrap_or_default());
                } else {
                    t = t.with_topic(TopicName(StrBytes::from_string(p.topic.clone())));
                }
                topics.push(t);
            }
        }
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(spec.max_wait_ms)
        .with_min_bytes(spec.min_bytes)
        .with_max_bytes(spec.max_bytes)
        .with_topics(topics);
    if version >= 11 {
        if let Some(rack) = &spec.rack_id {
            req = req.with_rack_id(StrBytes::from_string(rack.clone()));
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::implemented;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn read_requests_encode_at_every_negotiable_version() {
        let (lo, hi) = implemented(ApiKey::ListOffsets);
        for v in lo..=hi {
            for spec in [
                OffsetSpec::Earliest,
                OffsetSpec::Latest,
                OffsetSpec::Timestamp(5),
            ] {
                list_offsets_request(v, "t", &[(0, 3), (1, 3)], spec, 1000)
                    .encode(&mut BytesMut::new(), v)
                    .unwrap_or_else(|e| panic!("ListOffsets v{v}: {e}"));
            }
        }
        let id = Uuid::from_u128(9);
        let ids = HashMap::from([("t", id)]);
        let mut spec = FetchRequestSpec::new([]);
        spec.rack_id = Some("zone-a".into());
        let parts = vec![
            (
                FetchPartitionSpec {
                    topic: "t".into(),
                    partition: 0,
                    offset: 4,
                },
                2,
            ),
            (
                FetchPartitionSpec {
                    topic: "t".into(),
                    partition: 1,
                    offset: 0,
                },
                2,
            ),
        ];
        let (lo, hi) = implemented(ApiKey::Fetch);
        for v in lo..=hi {
            let req = fetch_request(v, &parts, &ids, &spec);
            assert_eq!(
                req.topics.len(),
                1,
                "partitions of one topic share an entry"
            );
            assert_eq!(req.topics[0].partitions.len(), 2);
            req.encode(&mut BytesMut::new(), v)
                .unwrap_or_else(|e| panic!("Fetch v{v}: {e}"));
        }
    }

    #[test]
    fn offset_specs() {
        assert_eq!(OffsetSpec::Earliest.wire(), -2);
        assert_eq!(OffsetSpec::Latest.wire(), -1);
        assert_eq!(OffsetSpec::Timestamp(1234).wire(), 1234);
    }
}
