//! The log start and log end offsets of partitions as their leaders know them, for the checks
//! of a tail truncation (`strata.mirror.truncate.offsets`): read from the partition when this
//! broker leads it, else asked of the leader with two ListOffsets (earliest, then latest as a
//! broker asks it: the log end offset) on its inter-broker listener.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, TopicName};
use strata_client::NodeConnection;

use crate::broker::Broker;
use crate::cluster::fetcher::leader_address;
use crate::codes::{self as code, str_bytes, Refusal};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// Kafka's debugging replica id: not a consumer, so the latest offset is the log end offset.
const DEBUGGING_REPLICA_ID: i32 = -2;

/// (log start, log end) of each of `partitions` of `topic` that exists; an error when a leader
/// is unknown or does not answer.
pub async fn log_bounds(
    broker: &Broker,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, (i64, i64)>, Refusal> {
    let image = broker.image();
    let mut out = BTreeMap::new();
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &p in partitions {
        let Some(state) = image.partition(topic, p) else {
            continue;
        };
        if let Some(part) = broker.led_partition(topic, p) {
            out.insert(p, (part.log_start_offset(), part.log_end_offset()));
        } else if state.leader < 0 {
            return Err((
                code::LEADER_NOT_AVAILABLE,
                format!("Partition {topic}-{p} has no leader"),
            ));
        } else {
            by_leader.entry(state.leader).or_default().push(p);
        }
    }
    for (leader, ps) in by_leader {
        let unreachable = |e: String| {
            (
                code::LEADER_NOT_AVAILABLE,
                format!("Cannot read the log offsets of {topic} from its leader {leader}: {e}"),
            )
        };
        let addr =
            leader_address(broker, leader).ok_or_else(|| unreachable("no endpoint".to_string()))?;
        let client_id = format!("strata-broker-{}-log-bounds", broker.config.node_id);
        let conn = NodeConnection::open_secured(
            &addr,
            &client_id,
            REQUEST_TIMEOUT,
            &broker.config.node_security.inter_broker,
        )
        .await
        .map_err(|e| unreachable(e.to_string()))?;
        let starts = ask(&conn, topic, &ps, EARLIEST)
            .await
            .map_err(unreachable)?;
        let ends = ask(&conn, topic, &ps, LATEST).await.map_err(unreachable)?;
        for p in ps {
            match (starts.get(&p), ends.get(&p)) {
                (Some(s), Some(e)) => {
                    out.insert(p, (*s, *e));
                }
                _ => return Err(unreachable(format!("no offsets for partition {p}"))),
            }
        }
    }
    Ok(out)
}

/// One ListOffsets for `partitions` at `timestamp` (earliest or latest).
async fn ask(
    conn: &NodeConnection,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, String> {
    let version = conn
        .version(ApiKey::ListOffsets)
        .map_err(|e| e.to_string())?;
    let mut req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(DEBUGGING_REPLICA_ID))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    if version >= 10 {
        req = req.with_timeout_ms(REQUEST_TIMEOUT.as_millis() as i32);
    }
    let resp = conn
        .request_at(version, &req, REQUEST_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != code::NONE {
                return Err(format!(
                    "partition {} answered error {}",
                    p.partition_index, p.error_code
                ));
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}
