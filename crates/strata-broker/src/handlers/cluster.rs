//! Cluster-level requests: DescribeCluster and InitProducerId (idempotent producers; producer
//! ids come from the metadata image, so they are never reused, also across restarts).
//! Transactions are not served: a transactional InitProducerId is refused with INVALID_REQUEST.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};

use crate::broker::Broker;
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};

pub async fn describe_cluster(
    broker: &Broker,
    _req: DescribeClusterRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> DescribeClusterResponse {
    let adv = broker.config.advertised();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.metadata.cluster_id()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.config.node_id))
            .with_host(str_bytes(adv.host.clone()))
            .with_port(i32::from(adv.port))
            .with_rack(broker.config.rack.clone().map(str_bytes))])
}

pub async fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return resp.with_error_code(code::INVALID_REQUEST);
    }
    // KIP-360: a producer that knows its id asks for an epoch bump instead of a new id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.metadata.next_producer_id() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(code::KAFKA_STORAGE_ERROR)
        }
    }
}
