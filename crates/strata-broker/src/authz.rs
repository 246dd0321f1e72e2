//! Authorization of requests with Kafka's `StandardAuthorizer` rule (`strata_kafka::acl`) over
//! the ACLs of the metadata image. Handlers ask before they act, as Kafka's `KafkaApis` does,
//! and answer TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED for what was refused. Without
//! `authorizer.class.name` everything is allowed.
//!
//! On a CONTROLLER listener a principal allowed ClusterAction on the cluster is one of the
//! cluster's own nodes: its requests (registrations, heartbeats, ISR changes, producer id
//! blocks, and admin requests a broker forwarded after authorizing their sender, as Kafka's
//! forwarding does) are not checked again; anyone else there is checked like a client, and the
//! node-only APIs refuse them. Raft frames are checked on every listener
//! ([`Broker::may_send_raft`]).

use strata_controller::MetadataImage;
use strata_kafka::acl::{
    operations_bitfield, AclOperation, AclResourceType, AuthorizerSettings, CLUSTER_RESOURCE,
    OPERATIONS_NOT_REQUESTED,
};

use crate::broker::Broker;
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::RequestContext;

pub use strata_kafka::acl::AclOperation as Op;

impl Broker {
    /// Whether an authorizer is configured (the ACL APIs are served).
    pub fn has_authorizer(&self) -> bool {
        self.config.authorizer.is_some()
    }

    /// The authorizer's decision for the request's principal and peer (`true` without an
    /// authorizer, and on a CONTROLLER listener).
    fn decide(
        &self,
        ctx: &RequestContext,
        rule: impl FnOnce(&AuthorizerSettings, &MetadataImage, &str) -> bool,
    ) -> bool {
        let Some(settings) = &self.config.authorizer else {
            return true;
        };
        let (image, host) = (self.image(), ctx.peer.ip().to_string());
        self.node_on_controller_listener(settings, &image, ctx, &host)
            || rule(settings, &image, &host)
    }

    /// Is the request one a node forwarded to this CONTROLLER listener (so the broker that took
    /// it checked it)? Without an authorizer every request there is; with one, those of a
    /// principal allowed ClusterAction on the cluster.
    pub fn forwarded_by_a_node(&self, ctx: &RequestContext) -> bool {
        if ctx.listener != ListenerKind::Controller {
            return false;
        }
        let Some(settings) = &self.config.authorizer else {
            return true;
        };
        let host = ctx.peer.ip().to_string();
        self.node_on_controller_listener(settings, &self.image(), ctx, &host)
    }

    /// Is the request one of the cluster's own nodes' on a CONTROLLER listener (ClusterAction
    /// on the cluster)?
    fn node_on_controller_listener(
        &self,
        settings: &AuthorizerSettings,
        image: &MetadataImage,
        ctx: &RequestContext,
        host: &str,
    ) -> bool {
        ctx.listener == ListenerKind::Controller
            && settings.authorize(
                &image.acls,
                &ctx.principal,
                host,
                AclOperation::ClusterAction,
                AclResourceType::Cluster,
                CLUSTER_RESOURCE,
            )
    }

    /// May the request's principal perform `op` on the resource `name` of `kind`? A refusal
    /// is logged at INFO with the principal, the peer and the resource (Kafka's authorizer log).
    pub fn authorized(
        &self,
        ctx: &RequestContext,
        op: AclOperation,
        kind: AclResourceType,
        name: &str,
    ) -> bool {
        self.decide(ctx, |settings, image, host| {
            let allowed = settings.authorize(&image.acls, &ctx.principal, host, op, kind, name);
            if !allowed {
                tracing::info!(
                    principal = %ctx.principal,
                    host,
                    operation = %op,
                    resource = %format_args!("{kind}:{name}"),
                    api = ?ctx.header.request_api_key,
                    "authorization denied"
                );
            }
            allowed
        })
    }

    /// May the principal perform `op` on at least one resource of `kind` (KIP-679)?
    pub fn authorized_any(
        &self,
        ctx: &RequestContext,
        op: AclOperation,
        kind: AclResourceType,
    ) -> bool {
        self.decide(ctx, |settings, image, host| {
            settings.authorize_any(&image.acls, &ctx.principal, host, op, kind)
        })
    }

    /// An authorized-operations field (Metadata, DescribeCluster, DescribeGroups): the
    /// operations Kafka defines for the resource type that the principal may perform on
    /// `name` (all of them without an authorizer), or [`OPERATIONS_NOT_REQUESTED`] when the
    /// request did not ask. Refusals here are answers, not denials: nothing is logged.
    pub fn authorized_operations(
        &self,
        ctx: &RequestContext,
        requested: bool,
        kind: AclResourceType,
        name: &str,
    ) -> i32 {
        if !requested {
            return OPERATIONS_NOT_REQUESTED;
        }
        let ops = kind.supported_operations().iter().copied();
        let Some(settings) = &self.config.authorizer else {
            return operations_bitfield(ops);
        };
        let (image, host) = (self.image(), ctx.peer.ip().to_string());
        if self.node_on_controller_listener(settings, &image, ctx, &host) {
            return operations_bitfield(ops);
        }
        operations_bitfield(
            ops.filter(|&op| {
                settings.authorize(&image.acls, &ctx.principal, &host, op, kind, name)
            }),
        )
    }

    pub fn may_topic(&self, ctx: &RequestContext, op: AclOperation, topic: &str) -> bool {
        self.authorized(ctx, op, AclResourceType::Topic, topic)
    }

    pub fn may_group(&self, ctx: &RequestContext, op: AclOperation, group: &str) -> bool {
        self.authorized(ctx, op, AclResourceType::Group, group)
    }

    /// May `principal` at `host` send Raft traffic (a voter's controller listener, or an
    /// observer's inter-broker listener where the metadata log reaches it)? ClusterAction on
    /// the cluster, as Kafka's controllers ask of Vote and Fetch, also on a CONTROLLER listener.
    /// A node that has not caught up knows no ACLs yet: the nodes' principal belongs in
    /// `super.users`.
    pub fn may_send_raft(&self, principal: &str, host: std::net::IpAddr) -> bool {
        let Some(settings) = &self.config.authorizer else {
            return true;
        };
        let host = host.to_string();
        let allowed = settings.authorize(
            &self.image().acls,
            principal,
            &host,
            AclOperation::ClusterAction,
            AclResourceType::Cluster,
            CLUSTER_RESOURCE,
        );
        if !allowed {
            tracing::info!(
                principal,
                host,
                "authorization denied: Raft frames need ClusterAction"
            );
        }
        allowed
    }

    pub fn may_cluster(&self, ctx: &RequestContext, op: AclOperation) -> bool {
        self.authorized(ctx, op, AclResourceType::Cluster, CLUSTER_RESOURCE)
    }
}
