//! The high watermarks of partitions this broker does not host, for the lag of the consumer
//! groups it coordinates (`strata_broker_consumer_group_lag`): every few seconds, one
//! ListOffsets (latest, as a consumer asks it: the high watermark) to the leader of each such
//! partition, on its inter-broker listener. The answers replace `Broker::remote_ends`; the
//! metrics scrape reads them. Runs only when the broker serves metrics; a leader that does not
//! answer leaves its partitions out of the lag until the next round.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, TopicName};
use strata_client::NodeConnection;

use crate::broker::Broker;
use crate::cluster::fetcher::leader_address;
use crate::codes::{self as code, str_bytes};

/// How often the end offsets are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// ListOffsets' timestamp for the latest offset.
const LATEST: i64 = -1;

/// The partitions the coordinated groups committed on that are not hosted here, by leader
/// (partitions without a leader are left out).
fn remote_partitions(broker: &Broker) -> BTreeMap<i32, BTreeSet<(String, i32)>> {
    let image = broker.image();
    let mut out: BTreeMap<i32, BTreeSet<(String, i32)>> = BTreeMap::new();
    for (_, committed) in broker.groups.loaded_offsets() {
        for (topic, partition, _) in committed {
            if broker.partitions.get(&topic, partition).is_some() {
                continue;
            }
            if let Some(p) = image.partition(&topic, partition).filter(|p| p.leader >= 0) {
                out.entry(p.leader).or_default().insert((topic, partition));
            }
        }
    }
    out
}

fn request(version: i16, partitions: &BTreeSet<(String, i32)>) -> ListOffsetsRequest {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for (topic, partition) in partitions {
        let p = ListOffsetsPartition::default()
            .with_partition_index(*partition)
            .with_timestamp(LATEST);
        match topics.last_mut().filter(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(TopicName(str_bytes(topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let mut req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(topics);
    if version >= 10 {
        req = req.with_timeout_ms(REQUEST_TIMEOUT.as_millis() as i32);
    }
    req
}

/// Asks `leader` for the latest offsets of `partitions`.
async fn sample(
    conn: &NodeConnection,
    partitions: &BTreeSet<(String, i32)>,
) -> Result<Vec<((String, i32), i64)>, strata_client::Error> {
    let version = conn.version(ApiKey::ListOffsets)?;
    let resp = conn
        .request_at(version, &request(version, partitions), REQUEST_TIMEOUT)
        .await?;
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions
                .into_iter()
                .filter(|p| p.error_code == code::NONE && p.offset >= 0)
                .map(move |p| ((topic.clone(), p.partition_index), p.offset))
        })
        .collect())
}

/// Runs until shutdown.
pub async fn run(broker: Arc<Broker>) {
    let mut conns: HashMap<i32, (String, NodeConnection)> = HashMap::new();
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
        let wanted = remote_partitions(&broker);
        conns.retain(|leader, _| wanted.contains_key(leader));
        let mut ends = HashMap::new();
        for (leader, partitions) in &wanted {
            let Some(addr) = leader_address(&broker, *leader) else {
                continue;
            };
            if conns
                .get(leader)
                .is_none_or(|(a, c)| a != &addr || !c.is_open())
            {
                let client_id = format!("strata-broker-{}-group-lag", broker.config.node_id);
                match NodeConnection::open_secured(
                    &addr,
                    &client_id,
                    REQUEST_TIMEOUT,
                    &broker.config.node_security.inter_broker,
                )
                .await
                {
                    Ok(c) => {
                        conns.insert(*leader, (addr.clone(), c));
                    }
                    Err(e) => {
                        tracing::debug!(leader, error = %e, "cannot reach a leader for group lag");
                        conns.remove(leader);
                        continue;
                    }
                }
            }
            let Some((_, conn)) = conns.get(leader) else {
                continue;
            };
            match sample(conn, partitions).await {
                Ok(found) => ends.extend(found),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "ListOffsets for group lag failed");
                    conns.remove(leader);
                }
            }
        }
        broker.remote_ends.replace(ends);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_topic_entry_per_topic_asking_the_latest_offset() {
        let partitions: BTreeSet<(String, i32)> = [("a", 0), ("a", 2), ("b", 1)]
            .into_iter()
            .map(|(t, p)| (t.to_string(), p))
            .collect();
        let req = request(10, &partitions);
        assert_eq!(req.replica_id, BrokerId(-1));
        assert_eq!(req.isolation_level, 0);
        let asked: Vec<(String, Vec<(i32, i64)>)> = req
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.0.to_string(),
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.timestamp))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            asked,
            [
                ("a".to_string(), vec![(0, LATEST), (2, LATEST)]),
                ("b".to_string(), vec![(1, LATEST)]),
            ]
        );
    }
}
