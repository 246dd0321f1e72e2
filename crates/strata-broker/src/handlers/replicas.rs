//! Where replicas and leaders are: ElectLeaders, AlterPartitionReassignments and
//! ListPartitionReassignments. The first two are decided by the active controller (forwarded
//! to it from any broker, served on the CONTROLLER listener by the active one) and answered
//! once this broker's image holds the outcome; listing reads the local image.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use strata_controller::{ElectionResult, ElectionType, MetadataImage};

use crate::authz::Op;
use crate::broker::Broker;
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::controller::{error_code, error_message};
use crate::handlers::{code, str_bytes, RequestContext};

fn timeout_of(broker: &Broker, timeout_ms: i32) -> std::time::Duration {
    if timeout_ms > 0 {
        std::time::Duration::from_millis(timeout_ms as u64)
    } else {
        broker.admin_timeout()
    }
}

fn not_controller(broker: &Broker, ctx: &RequestContext) -> bool {
    ctx.listener == ListenerKind::Controller && !broker.quorum.is_active()
}

/// Waits until this broker applied a change of each of `changed` (their partition epochs
/// passed those of `before`) and followed it with its partitions, or until `within` passed.
async fn await_changes(
    broker: &Broker,
    before: &MetadataImage,
    changed: &[(String, i32)],
    within: std::time::Duration,
) {
    if changed.is_empty() {
        return;
    }
    let epochs: Vec<(&str, i32, i32)> = changed
        .iter()
        .map(|(t, p)| {
            let epoch = before.partition(t, *p).map_or(-1, |x| x.partition_epoch);
            (t.as_str(), *p, epoch)
        })
        .collect();
    broker
        .await_image(within, |img| {
            epochs
                .iter()
                .all(|(t, p, e)| img.partition(t, *p).is_none_or(|x| x.partition_epoch > *e))
        })
        .await;
}

/// The results grouped by topic, as ElectLeaders answers them.
fn election_results(results: Vec<(String, i32, ElectionResult)>) -> Vec<ReplicaElectionResult> {
    let mut out: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, partition, result) in results {
        let (code, message) = match result {
            Ok(()) => (code::NONE, None),
            Err((c, m)) => (c, Some(str_bytes(m))),
        };
        let p = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message);
        match out.iter_mut().find(|r| r.topic.0.as_str() == topic) {
            Some(r) => r.partition_result.push(p),
            None => out.push(
                ReplicaElectionResult::default()
                    .with_topic(str_bytes(topic).into())
                    .with_partition_result(vec![p]),
            ),
        }
    }
    out
}

pub async fn elect_leaders(
    broker: &Broker,
    req: ElectLeadersRequest,
    _version: i16,
    ctx: &RequestContext,
) -> ElectLeadersResponse {
    let resp = ElectLeadersResponse::default();
    if !broker.may_cluster(ctx, Op::Alter) {
        return resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    if not_controller(broker, ctx) {
        return resp.with_error_code(code::NOT_CONTROLLER);
    }
    let Some(kind) = ElectionType::from_wire(req.election_type) else {
        return resp.with_error_code(code::INVALID_REQUEST);
    };
    let partitions: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let within = timeout_of(broker, req.timeout_ms);
    let before = broker.image();
    match broker
        .link
        .elect_leaders(kind, partitions.clone(), within)
        .await
    {
        Ok(results) => {
            // Answer once this broker's image (and its partitions) hold the new leaders.
            let elected: Vec<(String, i32)> = results
                .iter()
                .filter(|r| r.2.is_ok())
                .map(|r| (r.0.clone(), r.1))
                .collect();
            await_changes(broker, &before, &elected, within).await;
            resp.with_error_code(code::NONE)
                .with_replica_election_results(election_results(results))
        }
        Err(e) => {
            // Every named partition gets the error (the whole request failed).
            let results = partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t, p, Err((error_code(&e), error_message(&e)))))
                .collect();
            resp.with_error_code(code::NONE)
                .with_replica_election_results(election_results(results))
        }
    }
}

pub async fn alter_partition_reassignments(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> AlterPartitionReassignmentsResponse {
    let resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change);
    if !broker.may_cluster(ctx, Op::Alter) {
        return resp
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str_bytes(crate::handlers::acls::CLUSTER_DENIED)));
    }
    if not_controller(broker, ctx) {
        return resp
            .with_error_code(code::NOT_CONTROLLER)
            .with_error_message(Some(str_bytes("This node is not the active controller.")));
    }
    let changes: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    let within = timeout_of(broker, req.timeout_ms);
    let results = match broker
        .link
        .alter_reassignments(changes.clone(), req.allow_replication_factor_change, within)
        .await
    {
        Ok(results) => {
            // Answer once this broker's image shows each accepted change (a listing sent here
            // next sees it).
            let accepted: Vec<&(String, i32, Option<Vec<i32>>)> = changes
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(c, _)| c)
                .collect();
            if !accepted.is_empty() {
                broker
                    .await_image(within, |img| {
                        accepted.iter().all(|(t, p, target)| {
                            img.partition(t, *p).is_none_or(|x| match target {
                                Some(target) => x.target_replicas() == *target,
                                None => !x.is_reassigning(),
                            })
                        })
                    })
                    .await;
            }
            results
        }
        Err(e) => {
            return resp
                .with_error_code(error_code(&e))
                .with_error_message(Some(str_bytes(error_message(&e))));
        }
    };
    let mut responses: Vec<ReassignableTopicResponse> = Vec::new();
    for ((topic, partition, _), result) in changes.into_iter().zip(results) {
        let (code, message) = match result {
            Ok(()) => (code::NONE, None),
            Err((c, m)) => (c, Some(str_bytes(m))),
        };
        let p = ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_error_message(message);
        match responses.iter_mut().find(|r| r.name.0.as_str() == topic) {
            Some(r) => r.partitions.push(p),
            None => responses.push(
                ReassignableTopicResponse::default()
                    .with_name(str_bytes(topic).into())
                    .with_partitions(vec![p]),
            ),
        }
    }
    resp.with_error_code(code::NONE).with_responses(responses)
}

pub async fn list_partition_reassignments(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> ListPartitionReassignmentsResponse {
    if !broker.may_cluster(ctx, Op::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str_bytes(crate::handlers::acls::CLUSTER_DENIED)));
    }
    let wanted: Option<Vec<(String, i32)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| (t.name.0.to_string(), *p))
            })
            .collect()
    });
    let ongoing = broker.quorum.list_reassignments(wanted.as_deref());
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for r in ongoing {
        let ids = |v: &[i32]| v.iter().map(|b| (*b).into()).collect();
        let p = OngoingPartitionReassignment::default()
            .with_partition_index(r.partition)
            .with_replicas(ids(&r.replicas))
            .with_adding_replicas(ids(&r.adding_replicas))
            .with_removing_replicas(ids(&r.removing_replicas));
        match topics.iter_mut().find(|t| t.name.0.as_str() == r.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(str_bytes(r.topic).into())
                    .with_partitions(vec![p]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default()
        .with_error_code(code::NONE)
        .with_topics(topics)
}
