//! Follower fetching (KIP-392): which replica a consumer should read a partition from. The
//! leader asks this module when a consumer's Fetch (v11+) carries client metadata; when the
//! answer is another replica, the leader answers that partition with `preferred_read_replica`
//! and no records, and the consumer fetches from that replica until its metadata expires.
//!
//! `replica.selector.class` names the policy with Kafka's class names: unset means consumers
//! always read from the leader (Kafka's default); Kafka's `RackAwareReplicaSelector` picks a
//! replica in the client's rack. [`ReplicaSelector::select`] is pure; [`candidates`] gathers the
//! replicas a leader may send a consumer to, with Kafka's conditions (in the ISR, on a live
//! broker reachable on the client's listener, holding the fetch offset).

use strata_controller::MetadataImage;

use crate::partition::{Partition, Role};

/// Kafka's rack-aware selector (`org.apache.kafka.common.replica.RackAwareReplicaSelector`).
pub const RACK_AWARE_SELECTOR_CLASS: &str =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// The policy `replica.selector.class` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaSelector {
    /// Unset: consumers read from the leader.
    #[default]
    LeaderOnly,
    /// A replica in the client's rack (the leader when it is there, else the most caught-up
    /// one); the leader when no replica is in that rack or the client names no rack.
    RackAware,
}

/// A `replica.selector.class` this broker cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected {RACK_AWARE_SELECTOR_CLASS}, or no value (consumers read from the leader); no other \
     replica selector is supported (got {0:?})"
)]
pub struct UnknownSelector(pub String);

impl ReplicaSelector {
    /// Parses `replica.selector.class` (None or blank: unset).
    pub fn from_class(value: Option<&str>) -> Result<ReplicaSelector, UnknownSelector> {
        match value.map(str::trim) {
            None | Some("") => Ok(ReplicaSelector::LeaderOnly),
            Some(RACK_AWARE_SELECTOR_CLASS) => Ok(ReplicaSelector::RackAware),
            Some(other) => Err(UnknownSelector(other.to_string())),
        }
    }

    /// The replica a client in `client_rack` should read from, as Kafka's selector picks it
    /// among `leader` and the eligible `followers`. None: the leader (it is never named in
    /// `preferred_read_replica`).
    pub fn select(
        self,
        client_rack: Option<&str>,
        leader: &ReplicaView,
        followers: &[ReplicaView],
    ) -> Option<i32> {
        let rack = match (self, client_rack) {
            (ReplicaSelector::RackAware, Some(rack)) if !rack.is_empty() => rack,
            _ => return None,
        };
        if leader.rack.as_deref() == Some(rack) {
            return None;
        }
        followers
            .iter()
            .filter(|f| f.broker_id != leader.broker_id && f.rack.as_deref() == Some(rack))
            // Kafka's order: log end offset, then the most recently caught up, then the id.
            .max_by_key(|f| {
                (
                    f.log_end_offset,
                    std::cmp::Reverse(f.time_since_caught_up_ms),
                    f.broker_id,
                )
            })
            .map(|f| f.broker_id)
    }
}

/// One replica as the selector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    pub broker_id: i32,
    pub rack: Option<String>,
    pub log_end_offset: i64,
    /// Milliseconds since the replica last reached the leader's log end (0 for the leader).
    pub time_since_caught_up_ms: i64,
}

/// As the leader of `partition`: this broker and the followers a consumer fetching at
/// `fetch_offset` on `listener` may be sent to (Kafka's conditions: in the ISR, on an unfenced
/// broker with an endpoint on that listener, `log_start_offset <= fetch_offset <=
/// log_end_offset` as of its last fetch). None when this broker does not lead the partition.
pub fn candidates(
    partition: &Partition,
    image: &MetadataImage,
    listener: &str,
    own_rack: Option<&str>,
    fetch_offset: i64,
    now_ms: i64,
) -> Option<(ReplicaView, Vec<ReplicaView>)> {
    let Role::Leader { isr, followers, .. } = partition.role() else {
        return None;
    };
    let leader = ReplicaView {
        broker_id: partition.node_id(),
        rack: own_rack.map(str::to_string),
        log_end_offset: partition.log_end_offset(),
        time_since_caught_up_ms: 0,
    };
    let eligible = followers
        .iter()
        .filter(|(id, f)| {
            isr.contains(id)
                && f.log_end_offset >= fetch_offset
                && f.log_start_offset <= fetch_offset
        })
        .filter_map(|(id, f)| {
            let b = image.brokers.get(id).filter(|b| !b.fenced)?;
            b.endpoints.iter().find(|e| e.name == listener)?;
            Some(ReplicaView {
                broker_id: *id,
                rack: b.rack.clone(),
                log_end_offset: f.log_end_offset,
                time_since_caught_up_ms: now_ms.saturating_sub(f.last_caught_up_ms).max(0),
            })
        })
        .collect();
    Some((leader, eligible))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: i32, rack: &str, leo: i64, since: i64) -> ReplicaView {
        ReplicaView {
            broker_id: id,
            rack: (!rack.is_empty()).then(|| rack.to_string()),
            log_end_offset: leo,
            time_since_caught_up_ms: since,
        }
    }

    mod eligibility {
        use std::collections::BTreeMap;

        use bytes::BytesMut;
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        use strata_controller::{BrokerImage, Endpoint, MetadataImage};
        use strata_log::LogConfig;
        use uuid::Uuid;

        use super::super::candidates;
        use crate::partition::PartitionSet;

        fn batch(n: usize) -> Vec<u8> {
            let records: Vec<Record> = (0..n)
                .map(|i| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: -1,
                    timestamp: 0,
                    key: None,
                    value: Some(bytes::Bytes::from(format!("v{i}"))),
                    headers: Default::default(),
                })
                .collect();
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                records.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .expect("encode");
            buf.to_vec()
        }

        fn image(fenced: &[i32]) -> MetadataImage {
            let brokers = [(1, "a"), (2, "b"), (3, "b"), (4, "b")]
                .into_iter()
                .map(|(id, rack)| {
                    (
                        id,
                        BrokerImage {
                            id,
                            epoch: 1,
                            incarnation_id: Uuid::nil(),
                            rack: Some(rack.to_string()),
                            endpoints: vec![Endpoint {
                                name: "PLAINTEXT".into(),
                                host: "127.0.0.1".into(),
                                port: 9000 + id as u16,
                                security_protocol: "PLAINTEXT".into(),
                            }],
                            fenced: fenced.contains(&id),
                            in_controlled_shutdown: false,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>();
            MetadataImage {
                brokers,
                ..Default::default()
            }
        }

        fn ids(c: Option<(super::ReplicaView, Vec<super::ReplicaView>)>) -> Vec<i32> {
            let (leader, followers) = c.expect("this broker leads");
            assert_eq!(leader.broker_id, 1);
            assert_eq!(leader.rack.as_deref(), Some("a"));
            followers.iter().map(|f| f.broker_id).collect()
        }

        /// Leader 1 (rack a) with ISR {1, 2, 3}; 4 is a replica outside the ISR. Followers 2
        /// and 4 fetched at 10 (2 with log start 4), 3 at 5.
        #[test]
        fn followers_in_the_isr_on_live_brokers_holding_the_offset() {
            let dir = tempfile::tempdir().unwrap();
            let set = PartitionSet::new(dir.path(), 1);
            set.open_partitions("t", Uuid::nil(), 0, 1, &LogConfig::default())
                .unwrap();
            let p = set.get("t", 0).unwrap();
            assert!(p.make_leader(1, 0, &[1, 2, 3, 4], &[1, 2, 3], 1000));
            p.append_as_leader(&mut batch(10), 1000).unwrap();
            p.record_follower_fetch(2, 10, 4, true, 1000).unwrap();
            p.record_follower_fetch(3, 5, 0, true, 1000).unwrap();
            p.record_follower_fetch(4, 10, 0, true, 1000).unwrap();
            let live = image(&[]);
            let at = |offset, image: &MetadataImage, listener| {
                candidates(&p, image, listener, Some("a"), offset, 1500)
            };
            assert_eq!(ids(at(8, &live, "PLAINTEXT")), vec![2]);
            assert_eq!(ids(at(5, &live, "PLAINTEXT")), vec![2, 3]);
            // Below follower 2's log start: only 3 holds it.
            assert_eq!(ids(at(3, &live, "PLAINTEXT")), vec![3]);
            assert_eq!(ids(at(5, &image(&[2]), "PLAINTEXT")), vec![3]);
            assert!(ids(at(5, &live, "INTERNAL")).is_empty());
            let (_, followers) = at(10, &live, "PLAINTEXT").unwrap();
            assert_eq!(followers[0].log_end_offset, 10);
            assert_eq!(followers[0].time_since_caught_up_ms, 500);
            // A follower of the partition has no candidates to offer.
            p.make_follower(2, 2);
            assert!(at(5, &live, "PLAINTEXT").is_none());
        }
    }

    #[test]
    fn class_names_are_kafkas() {
        assert_eq!(
            ReplicaSelector::from_class(None),
            Ok(ReplicaSelector::LeaderOnly)
        );
        assert_eq!(
            ReplicaSelector::from_class(Some(" ")),
            Ok(ReplicaSelector::LeaderOnly)
        );
        assert_eq!(
            ReplicaSelector::from_class(Some(RACK_AWARE_SELECTOR_CLASS)),
            Ok(ReplicaSelector::RackAware)
        );
        let err = ReplicaSelector::from_class(Some("com.example.NearestSelector")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("com.example.NearestSelector")
                && text.contains(RACK_AWARE_SELECTOR_CLASS),
            "{text}"
        );
        // Kafka's interface is not a selector.
        assert!(ReplicaSelector::from_class(Some(
            "org.apache.kafka.common.replica.ReplicaSelector"
        ))
        .is_err());
    }

    #[test]
    fn leader_only_never_redirects() {
        let leader = view(1, "a", 100, 0);
        let followers = [view(2, "b", 100, 0)];
        assert_eq!(
            ReplicaSelector::LeaderOnly.select(Some("b"), &leader, &followers),
            None
        );
    }

    #[test]
    fn rack_aware_picks_the_follower_in_the_clients_rack() {
        let leader = view(1, "a", 100, 0);
        let followers = [view(2, "b", 100, 0), view(3, "c", 100, 0)];
        let s = ReplicaSelector::RackAware;
        assert_eq!(s.select(Some("b"), &leader, &followers), Some(2));
        assert_eq!(s.select(Some("c"), &leader, &followers), Some(3));
    }

    #[test]
    fn rack_aware_keeps_the_leader_when_it_is_in_the_rack() {
        let leader = view(1, "b", 100, 0);
        let followers = [view(2, "b", 100, 0)];
        assert_eq!(
            ReplicaSelector::RackAware.select(Some("b"), &leader, &followers),
            None
        );
    }

    #[test]
    fn rack_aware_uses_the_leader_without_a_client_rack_or_a_replica_there() {
        let leader = view(1, "a", 100, 0);
        let followers = [view(2, "b", 100, 0)];
        let s = ReplicaSelector::RackAware;
        assert_eq!(s.select(None, &leader, &followers), None);
        assert_eq!(s.select(Some(""), &leader, &followers), None);
        assert_eq!(s.select(Some("z"), &leader, &followers), None);
        // A follower without a rack matches no client rack.
        assert_eq!(s.select(Some("b"), &leader, &[view(2, "", 100, 0)]), None);
    }

    #[test]
    fn rack_aware_prefers_the_most_caught_up_follower_of_the_rack() {
        let leader = view(1, "a", 100, 0);
        let s = ReplicaSelector::RackAware;
        // Larger log end first.
        let f = [view(2, "b", 90, 0), view(5, "b", 95, 50)];
        assert_eq!(s.select(Some("b"), &leader, &f), Some(5));
        // Same log end: the one caught up more recently.
        let f = [view(2, "b", 100, 10), view(5, "b", 100, 300)];
        assert_eq!(s.select(Some("b"), &leader, &f), Some(2));
        // A full tie: the larger id, as Kafka's comparator's last key.
        let f = [view(5, "b", 100, 10), view(2, "b", 100, 10)];
        assert_eq!(s.select(Some("b"), &leader, &f), Some(5));
    }
}
