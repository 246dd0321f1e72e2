//! Test doubles for reconcile tests (compiled only in tests): a stateful mock Kubernetes API
//! server behind `tower-test`, and an in-memory [`KafkaAdmin`]. The API server keeps objects by
//! path, understands GET/LIST (with equality label selectors)/POST/PUT (with resourceVersion
//! conflicts)/DELETE (finalizers honoured) and apply, merge, JSON and status patches, and logs
//! every request so a test can assert what was written and in which order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::kafka::{
    AdminError, ClusterSnapshot, KafkaAdmin, KafkaTarget, ObservedTopic, PartitionMove, Refusals,
    SideOffsets,
};
use strata_failover::{Action as FailoverAction, FlowSides, Outcome as FailoverOutcome};

/// One request the mock API server answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<String, Value>,
    log: Vec<Logged>,
    next_version: u64,
}

/// Handle on the mock API server's state.
#[derive(Clone, Default)]
pub struct FakeApi {
    store: Arc<Mutex<Store>>,
}

impl FakeApi {
    /// A client whose requests this fake answers, plus the fake; call within a Tokio runtime.
    pub fn start() -> (Client, FakeApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = FakeApi::default();
        let state = api.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let response = state.answer(request).await;
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), api)
    }

    /// Stores an object as if it had been created (`path` is its REST path).
    pub fn insert(&self, path: &str, mut object: Value) {
        let mut store = self.store.lock();
        store.next_version += 1;
        let version = store.next_version;
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(version.to_string());
        if meta.get("uid").is_none() {
            meta["uid"] = json!(format!("uid-{version}"));
        }
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!(format!("2026-01-01T00:00:{:02}Z", version % 60));
        }
        if meta.get("generation").is_none() {
            meta["generation"] = json!(1);
        }
        store.objects.insert(path.to_owned(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.store.lock().objects.get(path).cloned()
    }

    /// Applies `f` to a stored object (e.g. to simulate the StatefulSet controller).
    pub fn update(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut store = self.store.lock();
        if let Some(obj) = store.objects.get_mut(path) {
            f(obj);
        }
    }

    /// Requests answered so far.
    pub fn log(&self) -> Vec<Logged> {
        self.store.lock().log.clone()
    }

    /// `METHOD path` of every request that changed something (not GET/LIST).
    pub fn writes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.method != Method::GET)
            .map(|l| format!("{} {}", l.method, l.path))
            .collect()
    }

    pub fn clear_log(&self) {
        self.store.lock().log.clear();
    }

    async fn answer(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut store = self.store.lock();
        store.log.push(Logged {
            method: method.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        let (status, value) = handle(&mut store, &method, &path, &query, &content_type, body);
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
            .unwrap_or_else(|_| Response::new(Body::from(Vec::new())))
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    )
}

fn conflict(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::CONFLICT,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": "Conflict", "code": 409, "message": format!("{path}: the object has been modified")}),
    )
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` names a collection (`.../plural`) rather than one object.
fn is_collection(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let base = if segments.first() == Some(&"api") {
        2
    } else {
        3
    };
    matches!(segments.len().saturating_sub(base), 1 | 3)
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(map) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in map {
                if v.is_null() {
                    if let Some(obj) = target.as_object_mut() {
                        obj.remove(k);
                    }
                } else {
                    merge(&mut target[k], v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn bump(store: &mut Store, obj: &mut Value, spec_changed: bool) {
    store.next_version += 1;
    obj["metadata"]["resourceVersion"] = json!(store.next_version.to_string());
    if spec_changed {
        let g = obj["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        obj["metadata"]["generation"] = json!(g);
    }
}

fn handle(
    store: &mut Store,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    body: Value,
) -> (StatusCode, Value) {
    let (object_path, subresource) = match path.strip_suffix("/status") {
        Some(p) if store.objects.contains_key(p) => (p.to_owned(), Some("status")),
        _ => (path.to_owned(), None),
    };
    match *method {
        Method::GET => {
            if let Some(obj) = store.objects.get(&object_path) {
                return (StatusCode::OK, obj.clone());
            }
            // A collection: everything directly below the path (or across namespaces).
            let selector = query_param(query, "labelSelector").unwrap_or_default();
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|(k, _)| is_member(k, path))
                .filter(|(_, v)| labels_match(v, &selector))
                .map(|(_, v)| v.clone())
                .collect();
            if !is_collection(path) {
                return not_found(path);
            }
            (
                StatusCode::OK,
                json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": store.next_version.to_string()}, "items": items}),
            )
        }
        Method::POST => {
            let name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
            if name.is_empty() {
                // Events and other generated-name objects are accepted and not stored.
                return (StatusCode::CREATED, body);
            }
            let full = format!("{path}/{name}");
            if store.objects.contains_key(&full) {
                return (
                    StatusCode::CONFLICT,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "reason": "AlreadyExists", "code": 409, "message": "exists"}),
                );
            }
            let mut obj = body;
            obj["metadata"]["uid"] = json!(format!("uid-{name}"));
            obj["metadata"]["generation"] = json!(1);
            bump(store, &mut obj, false);
            store.objects.insert(full, obj.clone());
            (StatusCode::CREATED, obj)
        }
        Method::PUT => {
            let Some(current) = store.objects.get(&object_path).cloned() else {
                return not_found(path);
            };
            if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return conflict(path);
            }
            let mut obj = body;
            let changed = obj.get("spec") != current.get("spec");
            bump(store, &mut obj, changed);
            store.objects.insert(object_path, obj.clone());
            (StatusCode::OK, obj)
        }
        Method::PATCH => {
            let existing = store.objects.get(&object_path).cloned();
            let apply = content_type.contains("apply-patch");
            let mut obj = match (&existing, apply) {
                (Some(o), _) => o.clone(),
                (None, true) => json!({}),
                (None, false) => return not_found(path),
            };
            let before_spec = obj.get("spec").cloned();
            if content_type.contains("json-patch") {
                let Ok(patch) = serde_json::from_value::<json_patch::Patch>(body) else {
                    return (
                        StatusCode::BAD_REQUEST,
                        json!({"kind": "Status", "code": 400}),
                    );
                };
                if json_patch::patch(&mut obj, &patch).is_err() {
                    return (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "reason": "Invalid", "code": 422, "message": "json patch test failed"}),
                    );
                }
            } else if subresource == Some("status") && apply {
                // One field manager writes the status: what its apply leaves out is removed,
                // as the API server does for fields the manager no longer sets.
                obj["status"] = body["status"].clone();
            } else if subresource == Some("status") {
                merge(&mut obj["status"], &body["status"]);
            } else {
                let mut body = body;
                if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                merge(&mut obj, &body);
            }
            if existing.is_none() {
                obj["metadata"]["uid"] = json!(format!(
                    "uid-{}",
                    object_path.rsplit('/').next().unwrap_or("")
                ));
                obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                obj["metadata"]["generation"] = json!(0);
            }
            let changed = obj.get("spec") != before_spec.as_ref() || existing.is_none();
            bump(store, &mut obj, changed && subresource.is_none());
            let finalizing = obj["metadata"]["deletionTimestamp"].is_string()
                && obj["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
            if finalizing {
                store.objects.remove(&object_path);
            } else {
                store.objects.insert(object_path, obj.clone());
            }
            (StatusCode::OK, obj)
        }
        Method::DELETE => {
            let Some(mut obj) = store.objects.get(&object_path).cloned() else {
                return not_found(path);
            };
            let has_finalizers = obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if has_finalizers {
                obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T01:00:00Z");
                bump(store, &mut obj, false);
                store.objects.insert(object_path, obj.clone());
            } else {
                store.objects.remove(&object_path);
            }
            (StatusCode::OK, obj)
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
    }
}

/// Whether stored object `key` is a member of collection `collection` — directly, or (for a
/// cluster-wide list such as `/api/v1/pods`) in any namespace.
fn is_member(key: &str, collection: &str) -> bool {
    if let Some(rest) = key.strip_prefix(collection) {
        return rest.starts_with('/') && rest[1..].split('/').count() == 1;
    }
    // `/apis/g/v/plural` lists `/apis/g/v/namespaces/*/plural/*`.
    let Some((prefix, plural)) = collection.rsplit_once('/') else {
        return false;
    };
    let Some(rest) = key.strip_prefix(&format!("{prefix}/namespaces/")) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() == 3 && parts[1] == plural
}

/// In-memory [`KafkaAdmin`]: topics, a cluster snapshot, a switch that makes every call fail as
/// unreachable, and a log of the calls made.
#[derive(Default)]
pub struct FakeAdmin {
    pub topics: Mutex<BTreeMap<String, ObservedTopic>>,
    pub snapshot: Mutex<ClusterSnapshot>,
    pub unreachable: Mutex<bool>,
    pub calls: Mutex<Vec<String>>,
    /// Partitions with a reassignment in progress: `reassign` adds, tests finish them with
    /// [`FakeAdmin::finish_moves`].
    pub ongoing: Mutex<BTreeSet<(String, i32)>>,
    /// Moves started, with their target replicas, in order.
    pub moves: Mutex<Vec<PartitionMove>>,
    /// Dynamic broker configs by broker id.
    pub broker_configs: Mutex<BTreeMap<i32, BTreeMap<String, String>>>,
    /// What each bootstrap address answers to a mirror probe; an address missing here is
    /// unreachable.
    pub sides: Mutex<BTreeMap<String, SideOffsets>>,
    /// The failover engine's Kafka-side actions run, in order (their `Debug` form).
    pub failover_actions: Mutex<Vec<String>>,
    /// Outcomes to give the next failover actions (front first); `Done`-like answers after.
    pub failover_outcomes: Mutex<std::collections::VecDeque<FailoverOutcome>>,
    /// Called with every failover action before it runs (to check what was saved first).
    #[allow(clippy::type_complexity)]
    pub on_failover_action: Mutex<Option<Box<dyn Fn(&FailoverAction) + Send>>>,
}

impl FakeAdmin {
    fn call(&self, target: &KafkaTarget, what: String) -> Result<(), AdminError> {
        self.calls.lock().push(what);
        if *self.unreachable.lock() {
            return Err(AdminError::Unreachable {
                cluster: target.cluster.clone(),
                bootstrap: target.bootstrap.clone(),
                source: strata_client::Error::NoBrokerAvailable,
            });
        }
        Ok(())
    }

    /// Completes every ongoing reassignment as Kafka would: the partition's replicas become
    /// the target, all in sync.
    pub fn finish_moves(&self) {
        let moves = self.moves.lock().clone();
        let mut snapshot = self.snapshot.lock();
        for key in std::mem::take(&mut *self.ongoing.lock()) {
            let Some(m) = moves
                .iter()
                .rev()
                .find(|m| (&m.topic, m.partition) == (&key.0, key.1))
            else {
                continue;
            };
            if let Some(p) = snapshot
                .partitions
                .iter_mut()
                .find(|p| (&p.topic, p.partition) == (&key.0, key.1))
            {
                p.replicas = m.to.clone();
                p.isr = m.to.clone();
                p.leader = m.to.first().copied();
            }
        }
    }

    /// Calls that changed something (not describe/snapshot).
    pub fn writes(&self) -> Vec<String> {
        self.calls
            .lock()
            .iter()
            .filter(|c| {
                !c.starts_with("describe") && !c.starts_with("snapshot") && !c.starts_with("probe")
            })
            .cloned()
            .collect()
    }
}

impl KafkaAdmin for FakeAdmin {
    fn snapshot<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<ClusterSnapshot, AdminError>> {
        Box::pin(async move {
            self.call(target, "snapshot".into())?;
            Ok(self.snapshot.lock().clone())
        })
    }

    fn describe_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObservedTopic>, AdminError>> {
        Box::pin(async move {
            self.call(target, format!("describe {name}"))?;
            Ok(self.topics.lock().get(name).cloned())
        })
    }

    fn create_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        partitions: Option<i32>,
        replication_factor: Option<i32>,
        config: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.call(target, format!("create {name}"))?;
            self.topics.lock().insert(
                name.to_owned(),
                ObservedTopic {
                    topic_id: Some(format!("id-{name}")),
                    partitions: partitions.unwrap_or(1),
                    replication_factor: replication_factor.unwrap_or(1),
                    configs: config.clone(),
                },
            );
            Ok(())
        })
    }

    fn create_partitions<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        total: i32,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.call(target, format!("partitions {name} {total}"))?;
            if let Some(t) = self.topics.lock().get_mut(name) {
                t.partitions = total;
            }
            Ok(())
        })
    }

    fn alter_topic_config<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        set: &'a BTreeMap<String, String>,
        delete: &'a [String],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let keys: BTreeSet<&String> = set.keys().chain(delete.iter()).collect();
            self.call(target, format!("config {name} {keys:?}"))?;
            if let Some(t) = self.topics.lock().get_mut(name) {
                for (k, v) in set {
                    t.configs.insert(k.clone(), v.clone());
                }
                for k in delete {
                    t.configs.remove(k);
                }
            }
            Ok(())
        })
    }

    fn delete_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            self.call(target, format!("delete {name}"))?;
            self.topics.lock().remove(name);
            Ok(())
        })
    }

    fn ongoing_reassignments<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<BTreeSet<(String, i32)>, AdminError>> {
        Box::pin(async move {
            self.call(target, "describe reassignments".into())?;
            Ok(self.ongoing.lock().clone())
        })
    }

    fn reassign<'a>(
        &'a self,
        target: &'a KafkaTarget,
        moves: &'a [PartitionMove],
    ) -> BoxFuture<'a, Result<Refusals, AdminError>> {
        Box::pin(async move {
            let labels: Vec<String> = moves
                .iter()
                .map(|m| format!("{}->{:?}", m.label(), m.to))
                .collect();
            self.call(target, format!("reassign {}", labels.join(" ")))?;
            for m in moves {
                self.ongoing.lock().insert((m.topic.clone(), m.partition));
                self.moves.lock().push(m.clone());
            }
            Ok(Vec::new())
        })
    }

    fn elect_preferred<'a>(
        &'a self,
        target: &'a KafkaTarget,
        partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Result<Refusals, AdminError>> {
        Box::pin(async move {
            let labels: Vec<String> = partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect();
            self.call(target, format!("elect {}", labels.join(" ")))?;
            let mut snapshot = self.snapshot.lock();
            for p in snapshot.partitions.iter_mut() {
                if partitions.contains(&(p.topic.clone(), p.partition)) {
                    p.leader = p.replicas.first().copied();
                }
            }
            Ok(Vec::new())
        })
    }

    fn alter_broker_config<'a>(
        &'a self,
        target: &'a KafkaTarget,
        broker: i32,
        set: &'a BTreeMap<String, String>,
        delete: &'a [String],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let keys: BTreeSet<&String> = set.keys().chain(delete.iter()).collect();
            self.call(target, format!("broker-config {broker} {keys:?}"))?;
            let mut configs = self.broker_configs.lock();
            let c = configs.entry(broker).or_default();
            for (k, v) in set {
                c.insert(k.clone(), v.clone());
            }
            for k in delete {
                c.remove(k);
            }
            Ok(())
        })
    }

    fn failover_action<'a>(
        &'a self,
        _sides: &'a FlowSides,
        action: &'a FailoverAction,
    ) -> BoxFuture<'a, FailoverOutcome> {
        Box::pin(async move {
            if let Some(check) = self.on_failover_action.lock().as_ref() {
                check(action);
            }
            self.failover_actions.lock().push(format!("{action:?}"));
            if let Some(outcome) = self.failover_outcomes.lock().pop_front() {
                return outcome;
            }
            match action {
                FailoverAction::Fence { .. } => FailoverOutcome::Fenced { confirmed: true },
                FailoverAction::CheckDrained { .. } => FailoverOutcome::Drained { lag: 0 },
                FailoverAction::Promote { .. } => FailoverOutcome::Promoted {
                    end_offsets: Default::default(),
                },
                FailoverAction::Quarantine { .. } => FailoverOutcome::Quarantined {
                    divergent: 0,
                    truncated: true,
                    cannot_truncate: false,
                    partitions: Vec::new(),
                },
                _ => FailoverOutcome::Done,
            }
        })
    }

    fn end_offsets<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<SideOffsets, AdminError>> {
        Box::pin(async move {
            self.call(target, format!("probe {}", target.bootstrap))?;
            self.sides
                .lock()
                .get(&target.bootstrap)
                .cloned()
                .ok_or_else(|| AdminError::Unreachable {
                    cluster: target.cluster.clone(),
                    bootstrap: target.bootstrap.clone(),
                    source: strata_client::Error::NoBrokerAvailable,
                })
        })
    }
}

impl FakeAdmin {
    /// Makes `bootstrap` answer probes with `offsets` (topic, partition, end offset).
    pub fn set_side(&self, bootstrap: &str, offsets: &[(&str, i32, i64)]) {
        let mut side = SideOffsets {
            cluster_id: format!("id-{bootstrap}"),
            brokers: 1,
            end_offsets: BTreeMap::new(),
            checkpoint_times: BTreeMap::new(),
        };
        for (topic, partition, end) in offsets {
            side.end_offsets
                .entry((*topic).to_owned())
                .or_default()
                .insert(*partition, *end);
        }
        self.sides.lock().insert(bootstrap.to_owned(), side);
    }

    /// Makes `bootstrap`'s checkpoints topic `topic` hold a newest record at `ms`.
    pub fn set_checkpoint_time(&self, bootstrap: &str, topic: &str, ms: i64) {
        if let Some(side) = self.sides.lock().get_mut(bootstrap) {
            side.checkpoint_times.insert(topic.to_owned(), ms);
        }
    }
}

/// A [`crate::context::Context`] over a fake API server and a fake admin, with short timings.
pub fn context(client: Client, admin: Arc<FakeAdmin>) -> Arc<crate::context::Context> {
    use std::time::Duration;
    Arc::new(crate::context::Context {
        reporter: kube::runtime::events::Reporter {
            controller: "strata-operator".to_owned(),
            instance: Some("test".to_owned()),
        },
        client,
        admin,
        resolver: crate::kafka::BootstrapResolver::default(),
        plan: crate::cluster::plan::PlanContext {
            broker_image: "ghcr.io/strata-dev/strata:test".to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            capabilities: crate::cluster::plan::BrokerCapabilities::CURRENT,
        },
        metrics: Arc::new(crate::metrics::Metrics::new()),
        backoff: crate::context::ErrorBackoff::default(),
        timing: crate::context::Timing {
            resync: Duration::from_secs(300),
            progress: Duration::from_secs(1),
            waiting: Duration::from_secs(30),
            restart_wait_deadline: Duration::from_secs(600),
            health: Duration::from_secs(30),
        },
        health: Arc::default(),
    })
}

/// REST path of a Strata custom resource.
pub fn cr_path(plural: &str, namespace: &str, name: &str) -> String {
    format!("/apis/kafka.strata.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}")
}

/// Reads a stored object back as a typed value.
pub fn typed<K: serde::de::DeserializeOwned>(api: &FakeApi, path: &str) -> Option<K> {
    api.get(path).and_then(|v| serde_json::from_value(v).ok())
}
