//! Kafka's ACL model, written once for the broker's authorizer, the controller's metadata log and
//! the client's admin calls: the wire enums (codes kept even when unnamed, so bindings
//! round-trip between clusters), a binding, the filters of DescribeAcls / DeleteAcls, the checks
//! CreateAcls applies, and the authorization rule of Kafka's `StandardAuthorizer`:
//!
//! - a super user may do anything;
//! - the ACLs that apply to a request are those whose resource matches (a literal name equal to
//!   the resource's, the literal wildcard `*`, or a prefix of the resource's name) and whose
//!   principal (`User:*` for anyone) and host (`*` for any) match;
//! - any applying DENY for the operation (or `ALL`) refuses, whatever allows it;
//! - else an applying ALLOW for the operation, for `ALL`, or for an operation that implies it
//!   (`DESCRIBE` from `READ`, `WRITE`, `DELETE` or `ALTER`; `DESCRIBE_CONFIGS` from
//!   `ALTER_CONFIGS`) permits;
//! - a resource no ACL at all matches (for any principal) follows
//!   `allow.everyone.if.no.acl.found`; else the request is refused.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::DeleteAclsMatchingAcl;
use kafka_protocol::messages::DescribeAclsRequest;
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $java:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A code without a name here (`UNKNOWN` is 0).
            Other(i8),
        }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                    $name::Other(c) => c,
                }
            }

            /// The value of a wire code.
            pub fn from_code(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    c => $name::Other(c),
                }
            }
        }

        impl std::fmt::Display for $name {
            /// The name of Kafka's Java enum (`TOPIC`, `PREFIXED`, ...), as its messages print it.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $($name::$variant => f.write_str($java),)*
                    $name::Other(_) => f.write_str("UNKNOWN"),
                }
            }
        }
    };
}

wire_enum!(
    /// What an ACL protects (`ResourceType`).
    AclResourceType {
        Any = 1 => "ANY",
        Topic = 2 => "TOPIC",
        Group = 3 => "GROUP",
        Cluster = 4 => "CLUSTER",
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        DelegationToken = 6 => "DELEGATION_TOKEN",
        User = 7 => "USER",
    }
);

wire_enum!(
    /// How the resource name matches (`PatternType`).
    AclPatternType {
        Any = 1 => "ANY",
        Match = 2 => "MATCH",
        Literal = 3 => "LITERAL",
        Prefixed = 4 => "PREFIXED",
    }
);

wire_enum!(
    /// The operation an ACL allows or denies (`AclOperation`).
    AclOperation {
        Any = 1 => "ANY",
        All = 2 => "ALL",
        Read = 3 => "READ",
        Write = 4 => "WRITE",
        Create = 5 => "CREATE",
        Delete = 6 => "DELETE",
        Alter = 7 => "ALTER",
        Describe = 8 => "DESCRIBE",
        ClusterAction = 9 => "CLUSTER_ACTION",
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        AlterConfigs = 11 => "ALTER_CONFIGS",
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        CreateTokens = 13 => "CREATE_TOKENS",
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
        TwoPhaseCommit = 15 => "TWO_PHASE_COMMIT",
    }
);

wire_enum!(
    /// Allow or deny (`AclPermissionType`).
    AclPermission {
        Any = 1 => "ANY",
        Deny = 2 => "DENY",
        Allow = 3 => "ALLOW",
    }
);

impl AclResourceType {
    /// The operations an ACL of this resource type can name, as Kafka's
    /// `AclEntry.supportedOperations` lists them: the operations an authorized-operations field
    /// reports on.
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            AclResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            AclResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            AclResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            AclResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            AclResourceType::DelegationToken => &[Describe],
            AclResourceType::User => &[CreateTokens, DescribeTokens],
            _ => &[],
        }
    }
}

/// Kafka's authorized-operations field: bit `code` set for each operation (`Utils.to32BitField`).
pub fn operations_bitfield(ops: impl IntoIterator<Item = AclOperation>) -> i32 {
    ops.into_iter()
        .map(|op| op.code())
        .filter(|code| (0..32).contains(code))
        .fold(0, |field, code| field | (1 << code))
}

/// The value of an authorized-operations field nobody asked for (`Integer.MIN_VALUE`).
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// The name of the one cluster resource.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";
/// A literal resource name, principal or host that matches every one.
pub const WILDCARD: &str = "*";
/// The principal that matches every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// One ACL: `principal` from `host` may (or may not) perform `operation` on the resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: AclResourceType,
    pub resource_name: String,
    pub pattern_type: AclPatternType,
    /// `User:alice`.
    pub principal: String,
    /// `*` for any host.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBinding {
    /// CreateAcls's checks (Kafka's messages, answered as INVALID_REQUEST).
    pub fn validate(&self) -> Result<(), String> {
        use AclOperation as O;
        use AclPatternType as P;
        use AclPermission as A;
        use AclResourceType as R;
        if matches!(self.resource_type, R::Any | R::Other(_)) {
            return Err(format!("Invalid resourceType {}", self.resource_type));
        }
        if !matches!(self.pattern_type, P::Literal | P::Prefixed) {
            return Err(format!("Invalid patternType {}", self.pattern_type));
        }
        if matches!(self.operation, O::Any | O::Other(_)) {
            return Err(format!("Invalid operation {}", self.operation));
        }
        if !matches!(self.permission, A::Allow | A::Deny) {
            return Err(format!("Invalid permissionType {}", self.permission));
        }
        if self.resource_name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if self.resource_type == R::Cluster && self.resource_name != CLUSTER_RESOURCE {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_RESOURCE}"
            ));
        }
        if !self.principal.contains(':') {
            return Err(format!(
                "Could not parse principal from `{}` (no colon is present separating the \
                 principal type from the principal name)",
                self.principal
            ));
        }
        Ok(())
    }

    /// Whether this ACL's resource pattern covers the resource `name` of `kind`.
    fn covers(&self, kind: AclResourceType, name: &str) -> bool {
        self.resource_type == kind
            && match self.pattern_type {
                AclPatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                AclPatternType::Prefixed => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

/// A filter of DescribeAcls and DeleteAcls (`None`: any value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: AclResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: AclPatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclFilter {
    /// A filter that matches every binding.
    pub fn any() -> Self {
        AclFilter {
            resource_type: AclResourceType::Any,
            resource_name: None,
            pattern_type: AclPatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// A filter that matches exactly `binding`.
    pub fn exact(binding: &AclBinding) -> Self {
        AclFilter {
            resource_type: binding.resource_type,
            resource_name: Some(binding.resource_name.clone()),
            pattern_type: binding.pattern_type,
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: binding.operation,
            permission: binding.permission,
        }
    }

    /// A filter field Kafka refuses (`UNKNOWN` anywhere): its message.
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.resource_type, AclResourceType::Other(_)) {
            return Err("Invalid resourceType UNKNOWN".into());
        }
        if matches!(self.pattern_type, AclPatternType::Other(_)) {
            return Err("Invalid patternType UNKNOWN".into());
        }
        if matches!(self.operation, AclOperation::Other(_)) {
            return Err("Invalid operation UNKNOWN".into());
        }
        if matches!(self.permission, AclPermission::Other(_)) {
            return Err("Invalid permissionType UNKNOWN".into());
        }
        Ok(())
    }

    /// Kafka's `AclBindingFilter.matches`: `MATCH` selects the bindings that would apply to the
    /// named resource (literal, wildcard and prefixes); `ANY` compares names whatever the
    /// pattern type.
    pub fn matches(&self, b: &AclBinding) -> bool {
        use AclPatternType as P;
        if self.resource_type != AclResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, P::Any | P::Match) && self.pattern_type != b.pattern_type {
            return false;
        }
        let name_matches = match &self.resource_name {
            None => true,
            Some(name) if self.pattern_type == P::Match => match b.pattern_type {
                P::Literal => &b.resource_name == name || b.resource_name == WILDCARD,
                P::Prefixed => name.starts_with(&b.resource_name),
                _ => false,
            },
            Some(name) => &b.resource_name == name,
        };
        name_matches
            && self.principal.as_ref().is_none_or(|p| p == &b.principal)
            && self.host.as_ref().is_none_or(|h| h == &b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == AclPermission::Any || self.permission == b.permission)
    }
}

/// The settings of the authorizer (`super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    /// Principals allowed everything (`User:admin`).
    pub super_users: Vec<String>,
    pub allow_if_no_acl: bool,
}

impl AuthorizerSettings {
    /// From `super.users` (`User:a;User:b`) and `allow.everyone.if.no.acl.found`.
    pub fn new(super_users: &str, allow_if_no_acl: bool) -> Self {
        AuthorizerSettings {
            super_users: super_users
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            allow_if_no_acl,
        }
    }

    /// Kafka's rule (see the module's documentation): may `principal` connected from `host`
    /// perform `operation` on the resource `name` of `kind`, under `acls`?
    pub fn authorize<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding>,
        principal: &str,
        host: &str,
        operation: AclOperation,
        kind: AclResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let mut any_for_resource = false;
        let mut allowed = false;
        for acl in acls {
            if !acl.covers(kind, name) {
                continue;
            }
            any_for_resource = true;
            let principal_matches = acl.principal == principal
                || (acl.principal == WILDCARD_PRINCIPAL && principal.starts_with("User:"));
            if !principal_matches || (acl.host != WILDCARD && acl.host != host) {
                continue;
            }
            let exact = acl.operation == operation || acl.operation == AclOperation::All;
            match acl.permission {
                AclPermission::Deny if exact => return false,
                AclPermission::Allow if exact || implies(acl.operation, operation) => {
                    allowed = true
                }
                _ => {}
            }
        }
        allowed || (!any_for_resource && self.allow_if_no_acl)
    }
}

impl AuthorizerSettings {
    /// Kafka's `authorizeByResourceType` (KIP-679): may `principal` perform `operation` on at
    /// least one resource of `kind`? Yes when an applying ALLOW (for the operation or `ALL`)
    /// names a literal or prefixed pattern no applying DENY covers; a DENY of the wildcard `*`
    /// refuses everything; with no ACL of that type at all, `allow.everyone.if.no.acl.found`
    /// decides. An idempotent producer may start with WRITE on any topic.
    pub fn authorize_any<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
        principal: &str,
        host: &str,
        operation: AclOperation,
        kind: AclResourceType,
    ) -> bool {
        if self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let applies = |acl: &&AclBinding, permission: AclPermission| {
            acl.resource_type == kind
                && acl.permission == permission
                && (acl.operation == operation || acl.operation == AclOperation::All)
                && (acl.principal == principal
                    || (acl.principal == WILDCARD_PRINCIPAL && principal.starts_with("User:")))
                && (acl.host == WILDCARD || acl.host == host)
        };
        let denies: Vec<&AclBinding> = acls
            .clone()
            .into_iter()
            .filter(|a| applies(a, AclPermission::Deny))
            .collect();
        if denies
            .iter()
            .any(|d| d.pattern_type == AclPatternType::Literal && d.resource_name == WILDCARD)
        {
            return false;
        }
        let covered = |allow: &AclBinding| {
            denies.iter().any(|d| match d.pattern_type {
                AclPatternType::Literal => {
                    allow.pattern_type == AclPatternType::Literal
                        && d.resource_name == allow.resource_name
                }
                AclPatternType::Prefixed => allow.resource_name.starts_with(&d.resource_name),
                _ => false,
            })
        };
        let mut any_of_kind = false;
        for acl in acls {
            any_of_kind |= acl.resource_type == kind;
            if applies(&acl, AclPermission::Allow) && !covered(acl) {
                return true;
            }
        }
        !any_of_kind && self.allow_if_no_acl
    }
}

fn wire(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The bindings and filters as the ACL APIs carry them, converted here only.
impl AclBinding {
    /// A creation of CreateAcls.
    pub fn creation(&self) -> AclCreation {
        AclCreation::default()
            .with_resource_type(self.resource_type.code())
            .with_resource_name(wire(&self.resource_name))
            .with_resource_pattern_type(self.pattern_type.code())
            .with_principal(wire(&self.principal))
            .with_host(wire(&self.host))
            .with_operation(self.operation.code())
            .with_permission_type(self.permission.code())
    }

    pub fn from_creation(c: &AclCreation) -> Self {
        AclBinding {
            resource_type: AclResourceType::from_code(c.resource_type),
            resource_name: c.resource_name.to_string(),
            pattern_type: AclPatternType::from_code(c.resource_pattern_type),
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation),
            permission: AclPermission::from_code(c.permission_type),
        }
    }

    /// A deleted ACL of DeleteAcls's answer.
    pub fn matching_acl(&self) -> DeleteAclsMatchingAcl {
        DeleteAclsMatchingAcl::default()
            .with_resource_type(self.resource_type.code())
            .with_resource_name(wire(&self.resource_name))
            .with_pattern_type(self.pattern_type.code())
            .with_principal(wire(&self.principal))
            .with_host(wire(&self.host))
            .with_operation(self.operation.code())
            .with_permission_type(self.permission.code())
    }

    pub fn from_matching_acl(m: &DeleteAclsMatchingAcl) -> Self {
        AclBinding {
            resource_type: AclResourceType::from_code(m.resource_type),
            resource_name: m.resource_name.to_string(),
            pattern_type: AclPatternType::from_code(m.pattern_type),
            principal: m.principal.to_string(),
            host: m.host.to_string(),
            operation: AclOperation::from_code(m.operation),
            permission: AclPermission::from_code(m.permission_type),
        }
    }
}

impl AclFilter {
    /// A filter of DeleteAcls.
    pub fn delete_filter(&self) -> DeleteAclsFilter {
        let opt = |s: &Option<String>| s.as_deref().map(wire);
        DeleteAclsFilter::default()
            .with_resource_type_filter(self.resource_type.code())
            .with_resource_name_filter(opt(&self.resource_name))
            .with_pattern_type_filter(self.pattern_type.code())
            .with_principal_filter(opt(&self.principal))
            .with_host_filter(opt(&self.host))
            .with_operation(self.operation.code())
            .with_permission_type(self.permission.code())
    }

    pub fn from_delete_filter(f: &DeleteAclsFilter) -> Self {
        AclFilter {
            resource_type: AclResourceType::from_code(f.resource_type_filter),
            resource_name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
            pattern_type: AclPatternType::from_code(f.pattern_type_filter),
            principal: f.principal_filter.as_ref().map(|s| s.to_string()),
            host: f.host_filter.as_ref().map(|s| s.to_string()),
            operation: AclOperation::from_code(f.operation),
            permission: AclPermission::from_code(f.permission_type),
        }
    }

    /// The filter of a DescribeAcls request.
    pub fn describe_request(&self) -> DescribeAclsRequest {
        let opt = |s: &Option<String>| s.as_deref().map(wire);
        DescribeAclsRequest::default()
            .with_resource_type_filter(self.resource_type.code())
            .with_resource_name_filter(opt(&self.resource_name))
            .with_pattern_type_filter(self.pattern_type.code())
            .with_principal_filter(opt(&self.principal))
            .with_host_filter(opt(&self.host))
            .with_operation(self.operation.code())
            .with_permission_type(self.permission.code())
    }

    pub fn from_describe_request(r: &DescribeAclsRequest) -> Self {
        AclFilter {
            resource_type: AclResourceType::from_code(r.resource_type_filter),
            resource_name: r.resource_name_filter.as_ref().map(|s| s.to_string()),
            pattern_type: AclPatternType::from_code(r.pattern_type_filter),
            principal: r.principal_filter.as_ref().map(|s| s.to_string()),
            host: r.host_filter.as_ref().map(|s| s.to_string()),
            operation: AclOperation::from_code(r.operation),
            permission: AclPermission::from_code(r.permission_type),
        }
    }
}

/// Operations an ALLOW for `granted` also allows.
fn implies(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation as O;
    match wanted {
        O::Describe => matches!(granted, O::Read | O::Write | O::Delete | O::Alter),
        O::DescribeConfigs => granted == O::AlterConfigs,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation as O;
    use AclPatternType as P;
    use AclPermission as A;
    use AclResourceType as R;

    fn acl(kind: R, name: &str, pattern: P, who: &str, op: O, perm: A) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn strict() -> AuthorizerSettings {
        AuthorizerSettings::new("User:admin", false)
    }

    #[test]
    fn authorized_operations_are_kafkas_bit_field() {
        use AclOperation::*;
        assert_eq!(operations_bitfield([Read, Describe]), (1 << 3) | (1 << 8));
        assert_eq!(operations_bitfield([]), 0);
        // Every topic operation: READ..DESCRIBE (3-8), DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11).
        let topic = AclResourceType::Topic
            .supported_operations()
            .iter()
            .copied();
        assert_eq!(operations_bitfield(topic), 0xdf8);
        assert!(AclResourceType::Any.supported_operations().is_empty());
        assert_eq!(OPERATIONS_NOT_REQUESTED, i32::MIN);
    }

    #[test]
    fn codes_round_trip_and_print_kafkas_names() {
        for code in -2..20 {
            assert_eq!(AclOperation::from_code(code).code(), code);
            assert_eq!(AclResourceType::from_code(code).code(), code);
        }
        assert_eq!(
            AclOperation::DescribeConfigs.to_string(),
            "DESCRIBE_CONFIGS"
        );
        assert_eq!(AclPatternType::from_code(0).to_string(), "UNKNOWN");
    }

    #[test]
    fn deny_wins_and_allow_implies_describe() {
        let acls = vec![
            acl(
                R::Topic,
                "orders",
                P::Literal,
                "User:alice",
                O::Read,
                A::Allow,
            ),
            acl(R::Topic, "orders", P::Literal, "User:bob", O::All, A::Allow),
            acl(R::Topic, "ord", P::Prefixed, "User:bob", O::Write, A::Deny),
        ];
        let s = strict();
        let can = |who, op| s.authorize(&acls, who, "127.0.0.1", op, R::Topic, "orders");
        assert!(can("User:alice", O::Read));
        assert!(can("User:alice", O::Describe), "READ implies DESCRIBE");
        assert!(!can("User:alice", O::Write));
        assert!(can("User:bob", O::Read));
        assert!(
            !can("User:bob", O::Write),
            "a prefixed DENY beats a literal ALL"
        );
        assert!(!can("User:carol", O::Describe));
        assert!(can("User:admin", O::Delete), "super user");
        // A DENY of READ does not deny DESCRIBE (implication only widens ALLOW).
        let acls = vec![
            acl(R::Topic, "t", P::Literal, "User:a", O::Write, A::Allow),
            acl(R::Topic, "t", P::Literal, "User:a", O::Read, A::Deny),
        ];
        assert!(s.authorize(&acls, "User:a", "h", O::Describe, R::Topic, "t"));
        let cfg = vec![acl(
            R::Topic,
            "t",
            P::Literal,
            "User:a",
            O::AlterConfigs,
            A::Allow,
        )];
        assert!(s.authorize(&cfg, "User:a", "h", O::DescribeConfigs, R::Topic, "t"));
        assert!(!s.authorize(&cfg, "User:a", "h", O::Describe, R::Topic, "t"));
    }

    #[test]
    fn wildcards_hosts_and_the_no_acl_rule() {
        let mut any = acl(R::Group, "*", P::Literal, "User:*", O::Read, A::Allow);
        any.host = "10.0.0.1".into();
        let acls = vec![any];
        let s = strict();
        assert!(s.authorize(&acls, "User:x", "10.0.0.1", O::Read, R::Group, "g"));
        assert!(!s.authorize(&acls, "User:x", "10.0.0.2", O::Read, R::Group, "g"));
        // No ACL for the resource: the default decides; an ACL for someone else is "an ACL".
        let open = AuthorizerSettings::new("", true);
        assert!(open.authorize(&acls, "User:x", "h", O::Write, R::Topic, "t"));
        assert!(!strict().authorize(&acls, "User:x", "h", O::Write, R::Topic, "t"));
        assert!(!open.authorize(&acls, "User:x", "10.0.0.2", O::Read, R::Group, "g"));
    }

    #[test]
    fn any_resource_of_a_type_follows_kip_679() {
        let s = strict();
        let allow = acl(R::Topic, "logs-", P::Prefixed, "User:a", O::Write, A::Allow);
        let acls = vec![allow.clone()];
        assert!(s.authorize_any(&acls, "User:a", "h", O::Write, R::Topic));
        assert!(!s.authorize_any(&acls, "User:b", "h", O::Write, R::Topic));
        assert!(!s.authorize_any(&acls, "User:a", "h", O::Read, R::Topic));
        let deny_prefix = acl(R::Topic, "log", P::Prefixed, "User:a", O::Write, A::Deny);
        let covered = vec![allow.clone(), deny_prefix];
        assert!(!s.authorize_any(&covered, "User:a", "h", O::Write, R::Topic));
        let deny_all = acl(R::Topic, "*", P::Literal, "User:*", O::All, A::Deny);
        let mut both = vec![allow, deny_all];
        assert!(!s.authorize_any(&both, "User:a", "h", O::Write, R::Topic));
        both.clear();
        assert!(AuthorizerSettings::new("", true).authorize_any(
            &both,
            "User:a",
            "h",
            O::Write,
            R::Topic
        ));
    }

    #[test]
    fn filters_follow_kafkas_pattern_rules() {
        let lit = acl(R::Topic, "orders", P::Literal, "User:a", O::Read, A::Allow);
        let star = acl(R::Topic, "*", P::Literal, "User:a", O::Read, A::Allow);
        let pre = acl(R::Topic, "ord", P::Prefixed, "User:a", O::Read, A::Allow);
        let other = acl(R::Group, "orders", P::Literal, "User:a", O::Read, A::Allow);
        let mut f = AclFilter::any();
        assert!([&lit, &star, &pre, &other].iter().all(|b| f.matches(b)));
        f.resource_name = Some("orders".into());
        f.pattern_type = P::Match;
        f.resource_type = R::Topic;
        assert!(f.matches(&lit) && f.matches(&star) && f.matches(&pre) && !f.matches(&other));
        f.pattern_type = P::Any;
        assert!(f.matches(&lit) && !f.matches(&star) && !f.matches(&pre));
        f.pattern_type = P::Prefixed;
        assert!(!f.matches(&lit));
        assert!(AclFilter::exact(&pre).matches(&pre));
        f.operation = O::Write;
        f.pattern_type = P::Any;
        assert!(!f.matches(&lit));
    }

    #[test]
    fn wire_forms_round_trip() {
        let b = acl(R::Group, "g-", P::Prefixed, "User:a", O::Delete, A::Deny);
        assert_eq!(AclBinding::from_creation(&b.creation()), b);
        assert_eq!(AclBinding::from_matching_acl(&b.matching_acl()), b);
        let f = AclFilter::exact(&b);
        assert_eq!(AclFilter::from_delete_filter(&f.delete_filter()), f);
        assert_eq!(AclFilter::from_describe_request(&f.describe_request()), f);
        let any = AclFilter::any();
        assert_eq!(
            AclFilter::from_describe_request(&any.describe_request()),
            any
        );
    }

    #[test]
    fn creations_are_checked_as_kafka_does() {
        let ok = acl(R::Topic, "t", P::Literal, "User:a", O::Read, A::Allow);
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.pattern_type = P::Match;
        assert_eq!(bad.validate().unwrap_err(), "Invalid patternType MATCH");
        let mut bad = ok.clone();
        bad.principal = "alice".into();
        assert!(bad
            .validate()
            .unwrap_err()
            .starts_with("Could not parse principal"));
        let mut bad = ok.clone();
        bad.resource_type = R::Cluster;
        assert!(bad.validate().unwrap_err().contains("kafka-cluster"));
        let mut bad = ok;
        bad.operation = O::Any;
        assert_eq!(bad.validate().unwrap_err(), "Invalid operation ANY");
    }
}
