//! The Secrets of a secured KafkaCluster (see [`certs`]): the cluster CA (`<cluster>-ca`,
//! created once and never replaced), the brokers' certificate of the internal replication
//! listener, a certificate per TLS listener unless the user put their own `kubernetes.io/tls`
//! Secret there (the operator leaves a Secret without its `issued-by` annotation, or with
//! cert-manager's annotations, alone), and the client certificates of the operator
//! (`<cluster>-operator-client`), of the cluster's administrators (`<cluster>-admin-client`)
//! and of the mirror pods of MirrorFlows with this cluster as a side
//! (`<cluster>-mirror-client`; the `-client` suffix cannot meet a listener's
//! `<cluster>-<listener>-tls`).
//! Each is issued when missing, when what it must name changed, or 30 days before it ends;
//! every Secret is owned by the KafkaCluster. The operator's own certificate is then handed to
//! the Kafka admin, which reaches the cluster on the replication listener with it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};

use crate::apply::owned;
use crate::cluster::certs::{self, LeafSpec, Pem};
use crate::cluster::plan::{ClusterPlan, REPLICATION_LISTENER};
use crate::context::Context;

/// Why the Secrets could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    #[error("Secret {secret} has no {key}")]
    Missing { secret: String, key: String },
    #[error(
        "the cluster CA Secret {ca} is gone while the brokers use certificates it signed (Secret \
         {internal}); a new CA would cut the brokers off from each other. Restore {ca} from a \
         backup, or delete {internal} as well to give the cluster new keys (its brokers cannot \
         reach each other until every one has restarted)"
    )]
    CaLost { ca: String, internal: String },
}

/// What [`ensure`] did.
pub struct Ensured {
    /// Secrets issued in this pass.
    pub issued: Vec<String>,
    /// Fingerprint of the brokers' internal certificate.
    pub internal_certificate: String,
}

/// The DNS names a broker certificate covers: every broker pod through the headless
/// Service, and the bootstrap Service by each of its names; a client listener's certificate
/// also the `discovery` Services of MirrorFlows with this cluster as a side (clients that
/// bootstrap through the address that follows the active cluster verify that name).
fn broker_dns_names(plan: &ClusterPlan, discovery: &[String]) -> Vec<String> {
    let names = plan.names();
    let (ns, domain) = (names.namespace(), names.cluster_domain());
    let mut out = vec![
        format!("*.{}.{ns}.svc.{domain}", names.headless_service()),
        format!("*.{}.{ns}.svc", names.headless_service()),
    ];
    for service in std::iter::once(&names.bootstrap_service()).chain(discovery) {
        out.extend([
            service.clone(),
            format!("{service}.{ns}"),
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}.svc.{domain}"),
        ]);
    }
    out
}

/// Secret of the cluster CA: `<cluster>-ca`.
pub fn ca_secret(plan: &ClusterPlan) -> String {
    format!("{}-ca", plan.names().cluster())
}

/// Secret of the operator's client certificate: `<cluster>-operator-client`.
pub fn operator_secret(plan: &ClusterPlan) -> String {
    format!("{}-operator-client", plan.names().cluster())
}

/// Secret of the administrators' client certificate: `<cluster>-admin-client`.
pub fn admin_secret(plan: &ClusterPlan) -> String {
    format!("{}-admin-client", plan.names().cluster())
}

/// Secret of the mirror pods' client certificate: `<cluster>-mirror-client`.
pub fn mirror_secret(cluster: &str) -> String {
    format!("{cluster}-mirror-client")
}

/// Every leaf the cluster needs: (Secret, what it certifies, whether the user may supply it).
/// `discovery`: the discovery Services of the MirrorFlows with this cluster as a side.
pub fn leaves(plan: &ClusterPlan, discovery: &[String]) -> Vec<(String, LeafSpec, bool)> {
    let names = plan.names();
    let mut out = Vec::new();
    for l in plan.listeners().iter().filter(|l| l.tls) {
        let internal = l.name == REPLICATION_LISTENER;
        out.push((
            names.tls_secret(&l.name),
            LeafSpec {
                common_name: certs::BROKER_CN.to_owned(),
                // (The internal certificate restarts the brokers when it changes: it names
                // what the brokers and the operator reach each other by, nothing else.)
                dns_names: broker_dns_names(plan, if internal { &[] } else { discovery }),
                server: true,
                // The brokers present the internal certificate to each other.
                client: internal,
            },
            !internal,
        ));
    }
    for (secret, cn) in [
        (operator_secret(plan), certs::OPERATOR_CN),
        (admin_secret(plan), certs::ADMIN_CN),
        (mirror_secret(plan.names().cluster()), certs::MIRROR_CN),
    ] {
        out.push((
            secret,
            LeafSpec {
                common_name: cn.to_owned(),
                dns_names: Vec::new(),
                server: false,
                client: true,
            },
            false,
        ));
    }
    out
}

fn kube_err(action: String) -> impl FnOnce(kube::Error) -> SecretsError {
    move |source| SecretsError::Kube { action, source }
}

fn text(secret: &Secret, key: &str) -> Result<String, SecretsError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or_else(|| SecretsError::Missing {
            secret: secret.metadata.name.clone().unwrap_or_default(),
            key: key.to_owned(),
        })
}

fn data(entries: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// The cluster CA: the stored one, or a new one created (never replaced: a conflict means
/// another operator created it first, whose CA is then read).
async fn cluster_ca(
    api: &Api<Secret>,
    plan: &ClusterPlan,
    owner: &OwnerReference,
    now: Timestamp,
) -> Result<Pem, SecretsError> {
    let name = ca_secret(plan);
    let read = |s: &Secret| -> Result<Pem, SecretsError> {
        Ok(Pem {
            cert: text(s, certs::CA_CERT_KEY)?,
            key: text(s, certs::CA_KEY_KEY)?,
        })
    };
    if let Some(s) = api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {name}")))?
    {
        return read(&s);
    }
    let internal = plan.names().tls_secret(REPLICATION_LISTENER);
    if api
        .get_opt(&internal)
        .await
        .map_err(kube_err(format!("reading Secret {internal}")))?
        .is_some()
    {
        return Err(SecretsError::CaLost { ca: name, internal });
    }
    let cluster = format!("{}/{}", plan.names().namespace(), plan.names().cluster());
    let ca = certs::new_ca(&cluster, now)?;
    let secret = owned(
        Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(plan.names().labels()),
                annotations: Some(BTreeMap::from([(
                    certs::ISSUED_BY_ANNOTATION.to_owned(),
                    certs::ISSUER.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data(&[
                (certs::CA_CERT_KEY, &ca.cert),
                (certs::CA_KEY_KEY, &ca.key),
            ])),
            ..Secret::default()
        },
        owner,
    );
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(ca),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let s = api
                .get(&name)
                .await
                .map_err(kube_err(format!("reading Secret {name}")))?;
            read(&s)
        }
        Err(e) => Err(kube_err(format!("creating Secret {name}"))(e)),
    }
}

/// Whether a Secret belongs to the user: not issued by the operator, or written by cert-manager
/// (which keeps the annotations of a Secret it takes over).
fn users(secret: &Secret) -> bool {
    let annotations = secret.metadata.annotations.as_ref();
    let issued = annotations
        .and_then(|a| a.get(certs::ISSUED_BY_ANNOTATION))
        .is_some_and(|v| v == certs::ISSUER);
    let cert_manager =
        annotations.is_some_and(|a| a.keys().any(|k| k.starts_with("cert-manager.io/")));
    !issued || cert_manager
}

/// Makes every Secret of a secured cluster ready and gives the admin the operator's
/// certificate; `discovery` as for [`leaves`].
pub async fn ensure(
    ctx: &Context,
    namespace: &str,
    plan: &ClusterPlan,
    owner: &OwnerReference,
    discovery: &[String],
) -> Result<Ensured, SecretsError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let now = Timestamp::now();
    let cluster = format!("{namespace}/{}", plan.names().cluster());
    let ca = cluster_ca(&api, plan, owner, now).await?;
    let mut issued = Vec::new();
    let mut operator = None;
    let mut internal_certificate = String::new();
    for (name, spec, user_may_supply) in leaves(plan, discovery) {
        let existing = api
            .get_opt(&name)
            .await
            .map_err(kube_err(format!("reading Secret {name}")))?;
        let current = match &existing {
            Some(s) if user_may_supply && users(s) => {
                // The user's certificate (cert-manager): used as it is.
                continue;
            }
            Some(s)
                if !certs::needs_issue(s.metadata.annotations.as_ref(), &spec, now)
                    && text(s, certs::CA_CERT_KEY).ok().as_deref() == Some(&ca.cert) =>
            {
                Some(Pem {
                    cert: text(s, certs::TLS_CERT_KEY)?,
                    key: text(s, certs::TLS_KEY_KEY)?,
                })
            }
            _ => None,
        };
        let leaf = match current {
            Some(leaf) => leaf,
            None => {
                let (leaf, not_after) = certs::issue(&cluster, &ca, &ca_secret(plan), &spec, now)?;
                let secret = owned(
                    Secret {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            labels: Some(plan.names().labels()),
                            annotations: Some(BTreeMap::from([
                                (
                                    certs::ISSUED_BY_ANNOTATION.to_owned(),
                                    certs::ISSUER.to_owned(),
                                ),
                                (certs::NAMES_ANNOTATION.to_owned(), spec.digest()),
                                (
                                    certs::NOT_AFTER_ANNOTATION.to_owned(),
                                    not_after.to_string(),
                                ),
                            ])),
                            ..ObjectMeta::default()
                        },
                        type_: Some("kubernetes.io/tls".to_owned()),
                        data: Some(data(&[
                            (certs::TLS_CERT_KEY, &leaf.cert),
                            (certs::TLS_KEY_KEY, &leaf.key),
                            (certs::CA_CERT_KEY, &ca.cert),
                        ])),
                        ..Secret::default()
                    },
                    owner,
                );
                crate::apply::apply(&ctx.client, namespace, &secret)
                    .await
                    .map_err(kube_err(format!("applying Secret {name}")))?;
                issued.push(name.clone());
                leaf
            }
        };
        if name == plan.names().tls_secret(REPLICATION_LISTENER) {
            internal_certificate = certs::fingerprint(&[&leaf.cert]);
        }
        if name == operator_secret(plan) {
            operator = Some(leaf);
        }
    }
    if let Some(leaf) = operator {
        let props = certs::client_properties(&ca.cert, &leaf);
        let security = strata_client::Security::from_properties(&props).map_err(|reason| {
            SecretsError::Missing {
                secret: operator_secret(plan),
                key: format!("a usable certificate ({reason})"),
            }
        })?;
        let digest = certs::fingerprint(&[&leaf.cert, &ca.cert]);
        ctx.admin.set_credentials(&cluster, &digest, security);
    }
    Ok(Ensured {
        issued,
        internal_certificate,
    })
}
