//! CreateAcls, DescribeAcls and DeleteAcls. With an authorizer (`authorizer.class.name`) the
//! ACLs live in the replicated metadata log: creations and deletions are checked here (Kafka's
//! rules and messages, ALTER on the cluster) and made by the active controller, descriptions
//! are read from this broker's image (DESCRIBE on the cluster). Without one, every request is
//! answered as Apache Kafka answers it: SECURITY_DISABLED with "No Authorizer is configured.",
//! which tools read as "this cluster has no ACLs" (`kafka-acls` prints Kafka's message;
//! MirrorMaker 2 and `strata-mirror` turn their ACL sync off with one log line).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use strata_kafka::acl::{AclBinding, AclFilter, AclOperation};

use crate::broker::Broker;
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::controller::{error_code, error_message};
use crate::handlers::{code, str_bytes, RequestContext};

/// Kafka's message for every ACL request while no authorizer is configured.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";
/// Kafka's message of a refused cluster operation.
pub const CLUSTER_DENIED: &str = "Cluster authorization failed.";

/// Whether an ACL change may go ahead here: Kafka's refusal for every entry of the request
/// otherwise (no authorizer; no ALTER on the cluster; on a CONTROLLER listener, a voter that is
/// not active, so that the forwarding broker tries the next one).
fn change_refused(broker: &Broker, ctx: &RequestContext) -> Option<(i16, &'static str)> {
    if !broker.has_authorizer() {
        Some((code::SECURITY_DISABLED, NO_AUTHORIZER))
    } else if !broker.may_cluster(ctx, AclOperation::Alter) {
        Some((code::CLUSTER_AUTHORIZATION_FAILED, CLUSTER_DENIED))
    } else if ctx.listener == ListenerKind::Controller && !broker.quorum.is_active() {
        Some((code::NOT_CONTROLLER, ""))
    } else {
        None
    }
}

pub async fn describe_acls(
    broker: &Broker,
    req: DescribeAclsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> DescribeAclsResponse {
    let resp = DescribeAclsResponse::default();
    let refused = |code, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)))
    };
    if !broker.has_authorizer() {
        return refused(code::SECURITY_DISABLED, NO_AUTHORIZER);
    }
    if !broker.may_cluster(ctx, AclOperation::Describe) {
        return refused(code::CLUSTER_AUTHORIZATION_FAILED, CLUSTER_DENIED);
    }
    let f = AclFilter::from_describe_request(&req);
    if let Err(message) = f.validate() {
        return refused(code::INVALID_REQUEST, &message);
    }
    let image = broker.image();
    let mut by_resource: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in image.acls.iter().filter(|b| f.matches(b)) {
        by_resource
            .entry((
                b.resource_type.code(),
                b.resource_name.as_str(),
                b.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(&b.principal))
                    .with_host(str_bytes(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    resp.with_resources(
        by_resource
            .into_iter()
            .map(|((kind, name, pattern), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(pattern)
                    .with_acls(acls)
            })
            .collect(),
    )
}

pub async fn create_acls(
    broker: &Broker,
    req: CreateAclsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> CreateAclsResponse {
    let refused = |code, message: &str| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some((code, message)) = change_refused(broker, ctx) {
        return CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| refused(code, message))
                .collect(),
        );
    }
    let checked: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            let b = AclBinding::from_creation(c);
            b.validate().map(|()| b)
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let outcome = if valid.is_empty() {
        Ok(())
    } else {
        broker
            .link
            .create_acls(&valid, broker.admin_timeout())
            .await
    };
    if outcome.is_ok() && !valid.is_empty() {
        tracing::info!(principal = %ctx.principal, acls = ?valid, "ACLs created");
    }
    CreateAclsResponse::default().with_results(
        checked
            .iter()
            .map(|c| match (c, &outcome) {
                (Err(message), _) => refused(code::INVALID_REQUEST, message),
                (Ok(_), Err(e)) => refused(error_code(e), &error_message(e)),
                (Ok(_), Ok(())) => AclCreationResult::default(),
            })
            .collect(),
    )
}

pub async fn delete_acls(
    broker: &Broker,
    req: DeleteAclsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> DeleteAclsResponse {
    let refused = |code, message: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some((code, message)) = change_refused(broker, ctx) {
        return DeleteAclsResponse::default()
            .with_filter_results(req.filters.iter().map(|_| refused(code, message)).collect());
    }
    let checked: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            let f = AclFilter::from_delete_filter(f);
            f.validate().map(|()| f)
        })
        .collect();
    let valid: Vec<AclFilter> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let outcome = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .link
            .delete_acls(&valid, broker.admin_timeout())
            .await
    };
    if let Ok(deleted) = &outcome {
        let deleted: Vec<_> = deleted.iter().flatten().collect();
        if !deleted.is_empty() {
            tracing::info!(principal = %ctx.principal, acls = ?deleted, "ACLs deleted");
        }
    }
    let mut deleted = outcome.as_ref().map(|d| d.iter());
    DeleteAclsResponse::default().with_filter_results(
        checked
            .iter()
            .map(|c| match (c, &mut deleted) {
                (Err(message), _) => refused(code::INVALID_REQUEST, message),
                (Ok(_), Err(e)) => refused(error_code(e), &error_message(e)),
                (Ok(_), Ok(each)) => DeleteAclsFilterResult::default().with_matching_acls(
                    each.next()
                        .into_iter()
                        .flatten()
                        .map(AclBinding::matching_acl)
                        .collect(),
                ),
            })
            .collect(),
    )
}
