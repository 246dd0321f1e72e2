//! CreateAcls, DescribeAcls and DeleteAcls as Apache Kafka answers them when no authorizer is
//! configured: SECURITY_DISABLED with "No Authorizer is configured." for the request (describe)
//! or for each creation and deletion filter. Tools read that as "this cluster has no ACLs":
//! `kafka-acls` prints Kafka's message, MirrorMaker 2 turns its topic ACL sync off with one
//! log line instead of failing it every interval on an API the broker does not know, and
//! `strata-mirror` does the same.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};

use crate::broker::Broker;
use crate::handlers::{code, str_bytes, RequestContext};

/// Kafka's message for every ACL request while no authorizer is configured.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

pub async fn describe_acls(
    _broker: &Broker,
    _req: DescribeAclsRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(code::SECURITY_DISABLED)
        .with_error_message(Some(str_bytes(NO_AUTHORIZER)))
}

pub async fn create_acls(
    _broker: &Broker,
    req: CreateAclsRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> CreateAclsResponse {
    CreateAclsResponse::default().with_results(
        req.creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code::SECURITY_DISABLED)
                    .with_error_message(Some(str_bytes(NO_AUTHORIZER)))
            })
            .collect(),
    )
}

pub async fn delete_acls(
    _broker: &Broker,
    req: DeleteAclsRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> DeleteAclsResponse {
    DeleteAclsResponse::default().with_filter_results(
        req.filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code::SECURITY_DISABLED)
                    .with_error_message(Some(str_bytes(NO_AUTHORIZER)))
            })
            .collect(),
    )
}
