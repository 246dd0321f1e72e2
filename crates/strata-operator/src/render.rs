//! Offline rendering: custom resources in, the Kubernetes objects the operator would create
//! out, with no cluster needed (`strata-operator render -f FILE`). Pure: no client, no I/O;
//! the same [`plan`] and [`build`] steps the controller runs. Each resource is first checked
//! against its CRD schema (so a misspelt field fails here instead of being pruned silently by
//! the API server), then:
//! - a `KafkaCluster` becomes its ConfigMap, Services, PodDisruptionBudget and StatefulSets, in
//!   apply order (the ConfigMap the pods mount first, the StatefulSets last);
//! - a `KafkaTopic` becomes a comment: topics live in Kafka, created through its admin API;
//! - a `MirrorFlow` becomes its ConfigMap (the flow file), the mirror's Service and
//!   StatefulSet and its discovery objects, resolving `clusterRef`s against the `KafkaCluster`s
//!   of the same file (a cluster missing from the file makes the flow invalid, as the
//!   controller would report it); its direction follows `status.activeCluster` when the file
//!   carries one, else `spec.failover.active`.
//!
//! Objects of other API groups (a Namespace in the same file) are skipped with a comment. A
//! namespace missing from a resource is `default`.

use kube::{CustomResourceExt, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_api::{schema_check, KafkaCluster, KafkaTopic, MirrorFlow, API_VERSION, GROUP};

use crate::cluster::build::{build, ClusterChildren};
use crate::cluster::plan::{plan, InvalidSpec, PlanContext};
use crate::flow::build::{build as build_flow, Discovery, FlowChildren};
use crate::flow::plan::{plan as plan_flow, InvalidFlow, Referenced};
use crate::topic::plan::{desired, InvalidTopic};

/// Why a file could not be rendered; every variant names the document or resource.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("document {document} is not valid YAML: {source}")]
    Yaml {
        document: usize,
        #[source]
        source: serde_norway::Error,
    },
    #[error("document {document} is not a Kubernetes object (no apiVersion and kind)")]
    NotAnObject { document: usize },
    #[error("document {document}: {API_VERSION} has no kind {kind}; expected KafkaCluster, KafkaTopic or MirrorFlow")]
    UnknownKind { document: usize, kind: String },
    #[error("document {document}: apiVersion {api_version} is not served; use {API_VERSION}")]
    UnknownVersion {
        document: usize,
        api_version: String,
    },
    #[error("{kind} {name} does not match the CRD schema:\n  {}", problems.join("\n  "))]
    Schema {
        kind: String,
        name: String,
        problems: Vec<String>,
    },
    #[error("{kind} {name} cannot be read: {source}")]
    Decode {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("KafkaCluster {name} is invalid: {source}")]
    InvalidCluster {
        name: String,
        #[source]
        source: InvalidSpec,
    },
    #[error("KafkaTopic {name} is invalid: {source}")]
    InvalidTopic {
        name: String,
        #[source]
        source: InvalidTopic,
    },
    #[error("MirrorFlow {name} is invalid: {source}")]
    InvalidFlow {
        name: String,
        #[source]
        source: InvalidFlow,
    },
    #[error("cannot write {what} as YAML: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_norway::Error,
    },
}

impl RenderError {
    /// The condition reason of an invalid resource, as the controller would report it.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            RenderError::InvalidCluster { source, .. } => Some(source.reason),
            RenderError::InvalidTopic { source, .. } => Some(source.reason),
            RenderError::InvalidFlow { source, .. } => Some(source.reason),
            _ => None,
        }
    }
}

/// Renders every resource of the multi-document `yaml` into one multi-document YAML stream.
pub fn render(yaml: &str, ctx: &PlanContext) -> Result<String, RenderError> {
    // Flows are rendered once every cluster of the file is known (a flow may come first).
    enum Pending {
        Done(String),
        Flow(Box<MirrorFlow>),
    }
    let mut documents = Vec::new();
    let mut clusters = Vec::new();
    for (index, doc) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let document = index + 1;
        let value =
            Value::deserialize(doc).map_err(|source| RenderError::Yaml { document, source })?;
        if value.is_null() {
            continue;
        }
        let api_version = value.get("apiVersion").and_then(Value::as_str);
        let kind = value.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return Err(RenderError::NotAnObject { document });
        };
        if api_version.split('/').next() != Some(GROUP) {
            documents.push(Pending::Done(format!(
                "# {kind} {}: not a Strata resource, skipped\n",
                display_name(&value)
            )));
            continue;
        }
        if api_version != API_VERSION {
            return Err(RenderError::UnknownVersion {
                document,
                api_version: api_version.to_owned(),
            });
        }
        match kind {
            "KafkaCluster" => {
                let cluster: KafkaCluster = load(value)?;
                documents.extend(
                    render_cluster(&cluster, ctx)?
                        .into_iter()
                        .map(Pending::Done),
                );
                clusters.push(cluster);
            }
            "KafkaTopic" => {
                let topic: KafkaTopic = load(value)?;
                documents.push(Pending::Done(render_topic(&topic)?));
            }
            "MirrorFlow" => {
                let flow: MirrorFlow = load(value)?;
                documents.push(Pending::Flow(Box::new(flow)));
            }
            other => {
                return Err(RenderError::UnknownKind {
                    document,
                    kind: other.to_owned(),
                })
            }
        }
    }
    let mut out = Vec::new();
    for doc in documents {
        match doc {
            Pending::Done(text) => out.push(text),
            Pending::Flow(flow) => out.extend(render_flow(&flow, &clusters, ctx)?),
        }
    }
    Ok(out.join("---\n"))
}

fn namespace_of(namespace: Option<&str>) -> &str {
    namespace.unwrap_or("default")
}

fn display_name(value: &Value) -> String {
    let meta = value.get("metadata");
    let field = |key| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
    format!(
        "{}/{}",
        namespace_of(field("namespace")),
        field("name").unwrap_or("<unnamed>")
    )
}

/// Checks `value` against the CRD schema of `K`, then decodes it with `default` as the
/// namespace when it has none.
fn load<K>(mut value: Value) -> Result<K, RenderError>
where
    K: CustomResourceExt + Resource<DynamicType = ()> + DeserializeOwned,
{
    let kind = K::kind(&()).into_owned();
    let name = display_name(&value);
    let schema = K::crd()
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.clone())
        .and_then(|s| s.open_api_v3_schema)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    let problems = schema_check::validate(&schema, &value);
    if !problems.is_empty() {
        return Err(RenderError::Schema {
            kind,
            name,
            problems,
        });
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("namespace")
            .or_insert_with(|| Value::String("default".to_owned()));
    }
    serde_json::from_value(value).map_err(|source| RenderError::Decode { kind, name, source })
}

fn to_yaml<T: Serialize>(what: &str, object: &T) -> Result<String, RenderError> {
    serde_norway::to_string(object).map_err(|source| RenderError::Serialize {
        what: what.to_owned(),
        source,
    })
}

fn render_cluster(cluster: &KafkaCluster, ctx: &PlanContext) -> Result<Vec<String>, RenderError> {
    let name = format!(
        "{}/{}",
        namespace_of(cluster.metadata.namespace.as_deref()),
        cluster.metadata.name.as_deref().unwrap_or_default()
    );
    let plan = plan(cluster, ctx).map_err(|source| RenderError::InvalidCluster {
        name: name.clone(),
        source,
    })?;
    let mut header = format!(
        "# KafkaCluster {name}: {} broker(s) in {} rack(s), controller voters {:?}; clients \
         bootstrap from {}\n",
        plan.brokers().len(),
        plan.racks().len(),
        plan.voters(),
        plan.bootstrap_address()
    );
    for warning in plan.warnings() {
        header.push_str(&format!(
            "# warning ({}): {}\n",
            warning.reason, warning.message
        ));
    }
    // Destructured without `..` so that a new child cannot be left out of the output.
    let ClusterChildren {
        config_map,
        headless_service,
        bootstrap_service,
        stateful_sets,
        pod_disruption_budget,
    } = build(&plan);
    let mut documents = vec![
        format!("{header}{}", to_yaml(&name, &config_map)?),
        to_yaml(&name, &headless_service)?,
        to_yaml(&name, &bootstrap_service)?,
        to_yaml(&name, &pod_disruption_budget)?,
    ];
    for sts in &stateful_sets {
        documents.push(to_yaml(&name, sts)?);
    }
    Ok(documents)
}

fn render_flow(
    flow: &MirrorFlow,
    clusters: &[KafkaCluster],
    ctx: &PlanContext,
) -> Result<Vec<String>, RenderError> {
    let namespace = namespace_of(flow.metadata.namespace.as_deref());
    let name = format!(
        "{namespace}/{}",
        flow.metadata.name.as_deref().unwrap_or_default()
    );
    let find = |endpoint: &strata_api::ClusterEndpoint| {
        let reference = endpoint.cluster_ref.as_ref()?;
        clusters
            .iter()
            .find(|c| {
                c.metadata.name.as_deref() == Some(reference.name.as_str())
                    && namespace_of(c.metadata.namespace.as_deref()) == namespace
            })
            .cloned()
    };
    let referenced = Referenced {
        source: find(&flow.spec.source),
        target: find(&flow.spec.target),
    };
    let active = flow
        .status
        .as_ref()
        .and_then(|s| s.active_cluster)
        .unwrap_or(flow.spec.failover.active);
    let mut plan =
        plan_flow(flow, &referenced, active, ctx).map_err(|source| RenderError::InvalidFlow {
            name: name.clone(),
            source,
        })?;
    // A saved failover state says where discovery points and which way the mirror runs.
    if let Some(state) = flow.status.as_ref().and_then(|s| s.failover.as_ref()) {
        plan.set_active(state.active);
        plan.set_mirror(state.mirror_from);
    }
    let mut header = format!(
        "# MirrorFlow {name}: mirrors {} -> {} with {} mirror pod(s)",
        plan.reading().describe(),
        plan.writing().describe(),
        plan.replicas()
    );
    match plan.discovery() {
        Some((service, side)) => header.push_str(&format!(
            "; discovery Service {service} points at {}\n",
            side.describe()
        )),
        None => header.push('\n'),
    }
    // Destructured without `..` so that a new child cannot be left out of the output.
    let FlowChildren {
        config_map,
        mirror_service,
        stateful_set,
        discovery,
    } = build_flow(&plan);
    let mut documents = vec![
        format!("{header}{}", to_yaml(&name, &config_map)?),
        to_yaml(&name, &mirror_service)?,
        to_yaml(&name, &stateful_set)?,
    ];
    if let Some(Discovery {
        service,
        endpoint_slice,
    }) = discovery
    {
        documents.push(to_yaml(&name, &service)?);
        if let Some(slice) = endpoint_slice {
            documents.push(to_yaml(&name, &slice)?);
        }
    }
    Ok(documents)
}

fn render_topic(topic: &KafkaTopic) -> Result<String, RenderError> {
    let name = format!(
        "{}/{}",
        namespace_of(topic.metadata.namespace.as_deref()),
        topic.metadata.name.as_deref().unwrap_or_default()
    );
    let wanted = desired(topic).map_err(|source| RenderError::InvalidTopic {
        name: name.clone(),
        source,
    })?;
    let count = |value: Option<i32>, default: &str| {
        value.map_or_else(|| format!("broker default ({default})"), |v| v.to_string())
    };
    let mut text = format!(
        "# KafkaTopic {name}: topic {:?} on KafkaCluster {} is managed through the Kafka admin \
         API, not as a Kubernetes object.\n# Created with partitions={}, replicationFactor={}",
        wanted.name,
        topic.spec.cluster_ref.name,
        count(wanted.partitions, "num.partitions"),
        count(wanted.replication_factor, "default.replication.factor"),
    );
    if wanted.config.is_empty() {
        text.push_str(", no topic config.\n");
    } else {
        let config: Vec<String> = wanted
            .config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        text.push_str(&format!(", config {}.\n", config.join(", ")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "\
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: dev
spec:
  racks:
    - name: r0
      brokers: 1
  storage:
    size: 1Gi
";

    fn ctx() -> PlanContext {
        PlanContext::new("img:1")
    }

    fn kinds(out: &str) -> Vec<String> {
        serde_norway::Deserializer::from_str(out)
            .filter_map(|doc| {
                let v = Value::deserialize(doc).expect("output is YAML");
                v.get("kind").and_then(Value::as_str).map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn cluster_renders_children_in_apply_order() {
        let out = render(CLUSTER, &ctx()).unwrap();
        assert_eq!(
            kinds(&out),
            [
                "ConfigMap",
                "Service",
                "Service",
                "PodDisruptionBudget",
                "StatefulSet"
            ]
        );
        assert!(out.contains("namespace: default"));
        assert!(out.contains("# KafkaCluster default/dev: 1 broker(s)"));
    }

    #[test]
    fn topics_become_comments() {
        let yaml = format!(
            "{CLUSTER}---\n\
             apiVersion: kafka.strata.dev/v1alpha1\nkind: KafkaTopic\nmetadata:\n  name: orders\n\
             spec:\n  clusterRef:\n    name: dev\n  partitions: 3\n  config:\n    retention.ms: \"1000\"\n\
             ---\n\
             apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kafka\n\
             ---\n"
        );
        let out = render(&yaml, &ctx()).unwrap();
        assert!(out.contains(
            "# KafkaTopic default/orders: topic \"orders\" on KafkaCluster dev is managed \
             through the Kafka admin API"
        ));
        assert!(out.contains("partitions=3, replicationFactor=broker default"));
        assert!(out.contains("config retention.ms=1000."));
        assert!(out.contains("# Namespace default/kafka: not a Strata resource, skipped"));
        assert_eq!(kinds(&out).len(), 5);
    }

    #[test]
    fn flows_resolve_clusters_of_the_same_file_wherever_they_are() {
        let flow = "\
apiVersion: kafka.strata.dev/v1alpha1
kind: MirrorFlow
metadata:
  name: f
spec:
  source: {alias: a, clusterRef: {name: dev}}
  target: {alias: b, bootstrapServers: \"10.0.0.1:9092\"}
";
        // The flow comes before the cluster it names.
        let out = render(&format!("{flow}---\n{CLUSTER}"), &ctx()).unwrap();
        assert!(out.contains("# MirrorFlow default/f: mirrors a (KafkaCluster dev) -> b"));
        assert!(out.contains("bootstrapServers: dev-bootstrap.default.svc:9092"));
        let err = render(flow, &ctx()).unwrap_err();
        assert_eq!(err.reason(), Some("ClusterNotFound"));
    }

    #[test]
    fn invalid_cluster_carries_the_reason() {
        let yaml = CLUSTER.replace("brokers: 1", "brokers: 0");
        let err = render(&yaml, &ctx()).unwrap_err();
        assert_eq!(err.reason(), Some("NoBrokers"));
        assert!(err
            .to_string()
            .contains("KafkaCluster default/dev is invalid"));
    }

    #[test]
    fn misspelt_fields_fail_against_the_schema() {
        let yaml = CLUSTER.replace("brokers: 1", "brokers: 1\n      zones: a");
        let err = render(&yaml, &ctx()).unwrap_err();
        assert!(matches!(err, RenderError::Schema { .. }), "{err}");
        assert!(err.to_string().contains("zones"), "{err}");
    }

    #[test]
    fn unknown_kinds_and_versions_fail() {
        let yaml = CLUSTER.replace("kind: KafkaCluster", "kind: KafkaBroker");
        assert!(matches!(
            render(&yaml, &ctx()),
            Err(RenderError::UnknownKind { .. })
        ));
        let yaml = CLUSTER.replace("v1alpha1", "v1");
        assert!(matches!(
            render(&yaml, &ctx()),
            Err(RenderError::UnknownVersion { .. })
        ));
        assert!(matches!(
            render("just: text\n", &ctx()),
            Err(RenderError::NotAnObject { document: 1 })
        ));
    }
}
