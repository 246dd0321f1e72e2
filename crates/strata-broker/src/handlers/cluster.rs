//! Cluster-level requests: DescribeCluster and InitProducerId (idempotent producers; producer
//! ids come from blocks the controller hands out, so no two brokers, and no restart, ever reuse
//! one).
//! Transactions are not served: a transactional InitProducerId is refused with INVALID_REQUEST.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};

use strata_kafka::acl::{AclResourceType, CLUSTER_RESOURCE};

use crate::authz::Op;
use crate::broker::Broker;
use crate::handlers::metadata::{controller_id, live_endpoints};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};

pub async fn describe_cluster(
    broker: &Broker,
    req: DescribeClusterRequest,
    _version: i16,
    ctx: &RequestContext,
) -> DescribeClusterResponse {
    if !broker.may_cluster(ctx, Op::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str_bytes(crate::handlers::acls::CLUSTER_DENIED)));
    }
    let image = broker.image();
    let brokers = live_endpoints(broker, &image, &ctx.listener_name)
        .into_iter()
        .map(|(id, host, port, rack)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(i32::from(port))
                .with_rack(rack.map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id()))
        .with_controller_id(BrokerId(controller_id(broker, &image)))
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(broker.authorized_operations(
            ctx,
            req.include_cluster_authorized_operations,
            AclResourceType::Cluster,
            CLUSTER_RESOURCE,
        ))
        .with_brokers(brokers)
}

pub async fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
    _version: i16,
    ctx: &RequestContext,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return resp.with_error_code(code::INVALID_REQUEST);
    }
    // IDEMPOTENT_WRITE on the cluster, or WRITE on any topic (KIP-679).
    if !(broker.may_cluster(ctx, Op::IdempotentWrite)
        || broker.authorized_any(ctx, Op::Write, AclResourceType::Topic))
    {
        return resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    // KIP-360: a producer that knows its id asks for an epoch bump instead of a new id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.next_producer_id().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(code::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
