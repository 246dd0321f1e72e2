//! ACLs through DescribeAcls, CreateAcls and DeleteAcls. A broker that does not advertise these APIs
//! yields [`Error::Unsupported`]; a broker without an authorizer answers SECURITY_DISABLED,
//! returned as [`Error::Kafka`]. The bindings are `strata_kafka::acl`'s: Kafka's wire codes,
//! kept even when unnamed, so bindings round-trip between clusters unchanged.

use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest};
use strata_kafka::acl::AclFilter;

use crate::client::Target;
use crate::{Admin, Error};

pub use strata_kafka::acl::{
    AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType,
};

impl Admin {
    /// Every ACL of the cluster.
    pub async fn describe_acls(&self) -> Result<Vec<AclBinding>, Error> {
        let c = &self.client;
        c.retry("DescribeAcls", || async move {
            let conn = c.connection_for(&Target::Any).await?;
            let (_, resp) = conn
                .request(|_| AclFilter::any().describe_request(), c.timeout())
                .await?;
            Error::check(
                "DescribeAcls",
                resp.error_code,
                resp.error_message.as_deref(),
            )?;
            let mut out = Vec::new();
            for r in resp.resources {
                for a in r.acls {
                    out.push(AclBinding {
                        resource_type: AclResourceType::from_code(r.resource_type),
                        resource_name: r.resource_name.to_string(),
                        pattern_type: AclPatternType::from_code(r.pattern_type),
                        principal: a.principal.to_string(),
                        host: a.host.to_string(),
                        operation: AclOperation::from_code(a.operation),
                        permission: AclPermission::from_code(a.permission_type),
                    });
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    /// Creates ACLs (creating one that exists is not an error in Kafka).
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), Error> {
        if acls.is_empty() {
            return Ok(());
        }
        let c = &self.client;
        c.retry("CreateAcls", || async move {
            let conn = c.connection_for(&Target::Any).await?;
            let (_, resp) = conn
                .request(|_| create_acls_request(acls), c.timeout())
                .await?;
            for r in resp.results {
                Error::check("CreateAcls", r.error_code, r.error_message.as_deref())?;
            }
            Ok(())
        })
        .await
    }
}

impl Admin {
    /// Deletes the ACLs equal to `acls` (each binding used as an exact filter); returns how
    /// many were deleted. Deleting one that does not exist is not an error in Kafka.
    pub async fn delete_acls(&self, acls: &[AclBinding]) -> Result<usize, Error> {
        if acls.is_empty() {
            return Ok(0);
        }
        let c = &self.client;
        c.retry("DeleteAcls", || async move {
            let conn = c.connection_for(&Target::Any).await?;
            let (_, resp) = conn
                .request(|_| delete_acls_request(acls), c.timeout())
                .await?;
            let mut deleted = 0;
            for r in resp.filter_results {
                Error::check("DeleteAcls", r.error_code, r.error_message.as_deref())?;
                deleted += r.matching_acls.len();
            }
            Ok(deleted)
        })
        .await
    }
}

fn delete_acls_request(acls: &[AclBinding]) -> DeleteAclsRequest {
    DeleteAclsRequest::default().with_filters(
        acls.iter()
            .map(|a| AclFilter::exact(a).delete_filter())
            .collect(),
    )
}

fn create_acls_request(acls: &[AclBinding]) -> CreateAclsRequest {
    CreateAclsRequest::default().with_creations(acls.iter().map(AclBinding::creation).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::implemented;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_kept() {
        for code in -2..20 {
            assert_eq!(AclOperation::from_code(code).code(), code);
            assert_eq!(AclResourceType::from_code(code).code(), code);
            assert_eq!(AclPatternType::from_code(code).code(), code);
            assert_eq!(AclPermission::from_code(code).code(), code);
        }
        assert_eq!(AclOperation::from_code(3), AclOperation::Read);
        assert_eq!(AclResourceType::from_code(2), AclResourceType::Topic);
        assert_eq!(AclPatternType::from_code(4), AclPatternType::Prefixed);
        assert_eq!(AclPermission::from_code(3), AclPermission::Allow);
        assert_eq!(AclPermission::from_code(9), AclPermission::Other(9));
    }

    #[test]
    fn create_acls_encodes_at_every_negotiable_version() {
        let acl = AclBinding {
            resource_type: AclResourceType::Topic,
            resource_name: "orders".into(),
            pattern_type: AclPatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Deny,
        };
        let (lo, hi) = implemented(ApiKey::CreateAcls);
        for v in lo..=hi {
            create_acls_request(std::slice::from_ref(&acl))
                .encode(&mut bytes::BytesMut::new(), v)
                .unwrap_or_else(|e| panic!("CreateAcls v{v}: {e}"));
        }
    }
}
