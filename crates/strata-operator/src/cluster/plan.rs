//! Validation of a `KafkaCluster` into a [`ClusterPlan`]: the typed, checked value the builder
//! and the reconciler work from. Pure: no client. Every rule a builder would otherwise trip
//! over is checked here and reported as an [`InvalidSpec`] whose `reason` becomes the
//! `Ready=False` condition reason; things that work but need attention become
//! [`PlanWarning`]s for the `Degraded` condition. Broker ids come from
//! [`crate::names::RackAssignment`], seeded with `status.rackIdBlocks`. The controller voters
//! (`voters`) and each broker's `server.properties` (`properties`) are decided in this
//! module's children and nowhere else; the plan's types and accessors are in `model`, below
//! all three. This file validates names, racks, listeners and storage into a plan.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use strata_api::{Authentication, KafkaCluster, Storage};

use crate::cluster::certs;
use crate::names::{AssignmentError, ClusterNames, RackAssignment, IDS_PER_RACK};

mod model;
mod properties;
mod voters;

pub use model::*;
use properties::{check_config, layout_defaults, operator_properties};
pub use properties::{kafka_cluster_id, RESERVED_PROPERTIES};
use voters::{choose_voters, voter_warnings};

/// Validates `cluster` into a plan. The previous id assignment comes from
/// `cluster.status.rackIdBlocks`; a missing namespace is read as `default`.
pub fn plan(cluster: &KafkaCluster, ctx: &PlanContext) -> Result<ClusterPlan, InvalidSpec> {
    let spec = &cluster.spec;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_owned());
    let names = ClusterNames::new(&name, &namespace, &ctx.cluster_domain);
    check_cluster_name(&name)?;

    // Racks.
    if spec.racks.is_empty() {
        return Err(invalid(
            reason::NO_BROKERS,
            "spec.racks is empty; add at least one rack with brokers > 0",
        ));
    }
    let mut seen = BTreeSet::new();
    for rack in &spec.racks {
        if !seen.insert(rack.name.as_str()) {
            return Err(invalid(
                reason::DUPLICATE_RACK_NAME,
                format!(
                    "rack {} appears more than once in spec.racks; rack names must be unique",
                    rack.name
                ),
            ));
        }
        check_rack_name(&names, &rack.name)?;
        if rack.brokers < 0 {
            return Err(invalid(
                reason::INVALID_BROKER_COUNT,
                format!(
                    "rack {} has brokers: {}; use 0 or more",
                    rack.name, rack.brokers
                ),
            ));
        }
        if rack.zone.is_some() && spec.topology_key.is_empty() {
            return Err(invalid(
                reason::INVALID_PLACEMENT,
                format!(
                    "rack {} sets a zone but spec.topologyKey is empty; set it to the node \
                     label that holds the zone (topology.kubernetes.io/zone)",
                    rack.name
                ),
            ));
        }
    }
    let total: i32 = spec.racks.iter().map(|r| r.brokers).sum();
    if total == 0 {
        return Err(invalid(
            reason::NO_BROKERS,
            "every rack has brokers: 0; give at least one rack a broker",
        ));
    }
    let recorded = cluster
        .status
        .as_ref()
        .map(|s| s.rack_id_blocks.clone())
        .unwrap_or_default();
    let assignment = RackAssignment::assign(
        &recorded,
        spec.racks.iter().map(|r| (r.name.as_str(), r.brokers)),
    )
    .map_err(|e: AssignmentError| invalid(reason::BROKER_ID_COLLISION, e.to_string()))?;
    let mut racks: Vec<RackPlan> = spec
        .racks
        .iter()
        .map(|r| RackPlan {
            name: r.name.clone(),
            // Every spec rack got a block from `assign`.
            block: assignment.block(&r.name).unwrap_or_default(),
            brokers: r.brokers,
            zone: r.zone.clone(),
            node_selector: r.node_selector.clone(),
            in_spec: true,
        })
        .collect();
    racks.sort_by_key(|r| r.block);

    if spec.controller_voters < 1 {
        return Err(invalid(
            reason::INVALID_CONTROLLER_VOTERS,
            format!(
                "spec.controllerVoters is {}; use 1 or more (3 survives one lost voter)",
                spec.controller_voters
            ),
        ));
    }

    let listeners = plan_listeners(spec, ctx.capabilities)?;
    check_storage(&spec.storage)?;
    let operator_config = operator_properties(&listeners);
    check_config(&spec.config, &operator_config)?;
    let defaults = layout_defaults(&spec.config, total)?;
    let mut config = operator_config;
    config.extend(defaults);
    config.extend(spec.config.clone());
    if listeners[0].name == REPLICATION_LISTENER && config.contains_key("authorizer.class.name") {
        // The brokers, the operator, the cluster's administrators and the mirror pods of its
        // MirrorFlows authenticate with certificates of the cluster CA and may do anything,
        // besides the user's super users.
        let mut users: Vec<String> = config
            .get("super.users")
            .map(|u| u.split(';').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        users.retain(|u| !u.is_empty());
        for cn in [
            certs::BROKER_CN,
            certs::OPERATOR_CN,
            certs::ADMIN_CN,
            certs::MIRROR_CN,
        ] {
            let user = format!("User:CN={cn}");
            if !users.contains(&user) {
                users.push(user);
            }
        }
        config.insert("super.users".into(), users.join(";"));
    }

    let mut plan = ClusterPlan {
        cluster_id: kafka_cluster_id(cluster.metadata.uid.as_deref(), &namespace, &name),
        names,
        racks,
        assignment,
        requested_voters: spec.controller_voters,
        voters: Vec::new(),
        listeners,
        config,
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| ctx.broker_image.clone()),
        topology_key: spec.topology_key.clone(),
        storage: spec.storage.clone(),
        resources: spec.resources.clone(),
        template: spec.template.clone(),
        warnings: Vec::new(),
        internal_certificate: None,
    };
    plan.voters = choose_voters(&plan.racks, plan.voter_count());
    plan.warnings = voter_warnings(&plan);
    Ok(plan)
}

fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.is_empty()
        && text.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Longest StatefulSet name: its pods get a `controller-revision-hash` label of
/// `<name>-<hash of up to 10 characters>`, and label values are at most 63 characters.
const MAX_STATEFUL_SET_NAME: usize = 52;

fn check_cluster_name(name: &str) -> Result<(), InvalidSpec> {
    // Services need DNS-1035 labels: `c-bootstrap` must start with a letter and fit 63.
    let starts_with_letter = name.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    let longest = format!("{name}-bootstrap");
    if !is_dns_label(name) || !starts_with_letter || longest.len() > 63 {
        return Err(invalid(
            reason::INVALID_NAME,
            format!(
                "cluster name {name:?} cannot name its Services ({longest}); use at most 52 \
                 lowercase letters, digits and '-', starting with a letter"
            ),
        ));
    }
    Ok(())
}

fn check_rack_name(names: &ClusterNames, rack: &str) -> Result<(), InvalidSpec> {
    let sts = names.stateful_set(rack);
    if !is_dns_label(rack) || sts.len() > MAX_STATEFUL_SET_NAME {
        return Err(invalid(
            reason::INVALID_NAME,
            format!(
                "rack {rack:?} makes the StatefulSet name {sts:?}; rack names are lowercase \
                 letters, digits and '-', and cluster name + '-' + rack name fit in \
                 {MAX_STATEFUL_SET_NAME} characters"
            ),
        ));
    }
    Ok(())
}

/// Port names (container and Service) must be IANA service names: at most 15 lowercase
/// letters, digits and '-', with a letter, no leading, trailing or doubled '-'.
fn is_port_name(name: &str) -> bool {
    is_dns_label(name)
        && name.len() <= 15
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.contains("--")
}

fn plan_listeners(
    spec: &strata_api::KafkaClusterSpec,
    capabilities: BrokerCapabilities,
) -> Result<Vec<ListenerPlan>, InvalidSpec> {
    if spec.listeners.is_empty() {
        return Err(invalid(
            reason::INVALID_LISTENER,
            "spec.listeners is empty; clients need at least one listener (e.g. plain on 9092)",
        ));
    }
    let mut names_seen = BTreeSet::new();
    let mut ports_seen = BTreeMap::new();
    let mut out = Vec::new();
    for l in &spec.listeners {
        let kafka_name = l.name.to_uppercase().replace('-', "_");
        if !is_port_name(&l.name) {
            return Err(invalid(
                reason::INVALID_LISTENER,
                format!(
                    "listener name {:?} is not a valid port name; use at most 15 lowercase \
                     letters, digits and single '-', with at least one letter",
                    l.name
                ),
            ));
        }
        if kafka_name == CONTROLLER_LISTENER {
            return Err(invalid(
                reason::DUPLICATE_LISTENER,
                "listener name controller is taken by the controller-quorum listener; rename it",
            ));
        }
        if !names_seen.insert(l.name.as_str()) {
            return Err(invalid(
                reason::DUPLICATE_LISTENER,
                format!(
                    "listener {} appears more than once; names must be unique",
                    l.name
                ),
            ));
        }
        if !(1..=65535).contains(&l.port) {
            return Err(invalid(
                reason::INVALID_LISTENER,
                format!("listener {} has port {}; use 1-65535", l.name, l.port),
            ));
        }
        if l.port == CONTROLLER_PORT {
            return Err(invalid(
                reason::DUPLICATE_LISTENER,
                format!(
                    "listener {} uses port {CONTROLLER_PORT}, which the controller quorum \
                     listens on; choose another port",
                    l.name
                ),
            ));
        }
        if l.port == METRICS_PORT {
            return Err(invalid(
                reason::DUPLICATE_LISTENER,
                format!(
                    "listener {} uses port {METRICS_PORT}, which the broker's metrics and \
                     readiness endpoint listens on; choose another port",
                    l.name
                ),
            ));
        }
        if let Some(other) = ports_seen.insert(l.port, l.name.as_str()) {
            return Err(invalid(
                reason::DUPLICATE_LISTENER,
                format!(
                    "listeners {other} and {} both use port {}; ports must be unique",
                    l.name, l.port
                ),
            ));
        }
        if l.authentication == Authentication::Mtls && !l.tls {
            return Err(invalid(
                reason::INVALID_LISTENER,
                format!(
                    "listener {} uses authentication: mtls without tls: true; client \
                     certificates need TLS",
                    l.name
                ),
            ));
        }
        let listener = ListenerPlan {
            name: l.name.clone(),
            kafka_name,
            port: l.port,
            tls: l.tls,
            authentication: l.authentication,
        };
        if l.authentication == Authentication::Plain {
            return Err(invalid(
                reason::UNSUPPORTED_LISTENER,
                format!(
                    "listener {} uses authentication: plain, whose users live in the brokers' \
                     configuration, which the operator does not render; use scram-sha-512 \
                     (users managed with kafka-configs) or mtls",
                    l.name
                ),
            ));
        }
        let needs_tls = l.tls && !capabilities.tls;
        let needs_sasl = listener.sasl_mechanism().is_some() && !capabilities.sasl;
        if needs_tls || needs_sasl {
            return Err(invalid(
                reason::UNSUPPORTED_LISTENER,
                format!(
                    "listener {} asks for {}, but the broker of this release serves PLAINTEXT \
                     listeners only; use tls: false and authentication: none",
                    l.name,
                    listener.security_protocol()
                ),
            ));
        }
        out.push(listener);
    }
    if out.iter().any(ListenerPlan::secured) {
        if let Some(l) = out
            .iter()
            .find(|l| l.name == REPLICATION_LISTENER || l.port == REPLICATION_PORT)
        {
            return Err(invalid(
                reason::DUPLICATE_LISTENER,
                format!(
                    "listener {} takes the name or port of the internal listener \
                     {REPLICATION_LISTENER} ({REPLICATION_PORT}) a cluster with TLS or \
                     authentication has; rename it or choose another port",
                    l.name
                ),
            ));
        }
        out.insert(
            0,
            ListenerPlan {
                name: REPLICATION_LISTENER.to_owned(),
                kafka_name: REPLICATION_LISTENER.to_uppercase(),
                port: REPLICATION_PORT,
                tls: true,
                authentication: Authentication::Mtls,
            },
        );
    }
    Ok(out)
}

fn check_storage(storage: &Storage) -> Result<(), InvalidSpec> {
    let size = storage.size.0.trim();
    let digits_end = size
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(size.len());
    let (number, suffix) = size.split_at(digits_end);
    let suffix_ok = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ]
    .contains(&suffix)
        || (suffix.starts_with(['e', 'E'])
            && suffix.len() > 1
            && suffix[1..].bytes().all(|b| b.is_ascii_digit()));
    let positive = number.parse::<f64>().is_ok_and(|n| n > 0.0);
    if !(suffix_ok && positive) {
        return Err(invalid(
            reason::INVALID_STORAGE,
            format!(
                "spec.storage.size {:?} is not a positive Kubernetes quantity; write e.g. 100Gi",
                storage.size.0
            ),
        ));
    }
    Ok(())
}

impl ClusterPlan {
    /// Raises `rack`'s broker count back to `brokers` (never lowers it, never beyond the id
    /// block), so a scale-down whose leaving brokers still hold partitions does not happen;
    /// voters are chosen again for the new count. A rack the spec no longer has comes back
    /// with `in_spec: false` (see [`RackPlan::in_spec`]); a rack that never had a block is
    /// ignored.
    pub fn hold_rack(&mut self, rack: &str, brokers: i32) {
        let brokers = brokers.clamp(0, IDS_PER_RACK);
        match self.racks.iter_mut().find(|r| r.name == rack) {
            Some(r) => r.brokers = r.brokers.max(brokers),
            None => {
                let Some(block) = self.assignment.block(rack) else {
                    return;
                };
                self.racks.push(RackPlan {
                    name: rack.to_owned(),
                    block,
                    brokers,
                    zone: None,
                    node_selector: None,
                    in_spec: false,
                });
                self.racks.sort_by_key(|r| r.block);
            }
        }
        self.voters = choose_voters(&self.racks, self.voter_count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_api::{KafkaClusterSpec, KafkaClusterStatus, Listener, Rack};

    fn rack(name: &str, brokers: i32) -> Rack {
        Rack {
            name: name.to_owned(),
            zone: Some(format!("zone-{name}")),
            node_selector: None,
            brokers,
        }
    }

    fn listener(name: &str, port: i32) -> Listener {
        Listener {
            name: name.to_owned(),
            port,
            tls: false,
            authentication: Authentication::None,
        }
    }

    fn cluster(racks: Vec<Rack>) -> KafkaCluster {
        let spec: KafkaClusterSpec = serde_json::from_value(serde_json::json!({
            "racks": [],
            "storage": {"size": "10Gi"},
        }))
        .unwrap();
        let mut c = KafkaCluster::new("c", KafkaClusterSpec { racks, ..spec });
        c.metadata.namespace = Some("ns".to_owned());
        c
    }

    fn with_blocks(mut c: KafkaCluster, blocks: &[(&str, i32)]) -> KafkaCluster {
        c.status = Some(KafkaClusterStatus {
            rack_id_blocks: blocks.iter().map(|(r, b)| (r.to_string(), *b)).collect(),
            ..Default::default()
        });
        c
    }

    fn ctx() -> PlanContext {
        PlanContext::new("img")
    }

    fn ok(c: &KafkaCluster) -> ClusterPlan {
        plan(c, &ctx()).expect("valid spec")
    }

    fn reason_of(c: &KafkaCluster) -> &'static str {
        plan(c, &ctx()).expect_err("invalid spec").reason
    }

    fn ids(p: &ClusterPlan) -> BTreeMap<String, Vec<i32>> {
        p.broker_ids()
    }

    fn map(entries: &[(&str, &[i32])]) -> BTreeMap<String, Vec<i32>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    /// What the reconciler writes back and the next plan reads.
    fn next(c: &KafkaCluster, racks: Vec<Rack>) -> KafkaCluster {
        let p = ok(c);
        let blocks: Vec<(String, i32)> = p.rack_id_blocks().into_iter().collect();
        let mut c = cluster(racks);
        c.status = Some(KafkaClusterStatus {
            rack_id_blocks: blocks.into_iter().collect(),
            broker_ids: p.broker_ids(),
            ..Default::default()
        });
        c
    }

    #[test]
    fn new_cluster_blocks_follow_spec_order() {
        let p = ok(&cluster(vec![rack("b", 2), rack("a", 1)]));
        assert_eq!(ids(&p), map(&[("b", &[0, 1]), ("a", &[100])]));
        assert_eq!(p.racks()[0].name, "b");
    }

    #[test]
    fn adding_a_rack_keeps_existing_ids() {
        let c0 = cluster(vec![rack("a", 2), rack("b", 2)]);
        let c1 = next(&c0, vec![rack("new", 1), rack("a", 2), rack("b", 2)]);
        assert_eq!(
            ids(&ok(&c1)),
            map(&[("a", &[0, 1]), ("b", &[100, 101]), ("new", &[200])])
        );
    }

    #[test]
    fn reordering_racks_changes_nothing() {
        let c0 = cluster(vec![rack("a", 2), rack("b", 2), rack("c", 1)]);
        let p0 = ok(&c0);
        let c1 = next(&c0, vec![rack("c", 1), rack("a", 2), rack("b", 2)]);
        let p1 = ok(&c1);
        assert_eq!(p0.broker_ids(), p1.broker_ids());
        assert_eq!(p0.voters(), p1.voters());
        assert_eq!(p0.properties_files(), p1.properties_files());
    }

    #[test]
    fn removed_rack_keeps_its_block_and_gets_it_back() {
        let c0 = cluster(vec![rack("a", 1), rack("b", 1), rack("c", 1)]);
        let c1 = next(&c0, vec![rack("a", 1), rack("c", 1)]);
        let p1 = ok(&c1);
        assert_eq!(ids(&p1), map(&[("a", &[0]), ("c", &[200])]));
        assert_eq!(
            p1.rack_id_blocks()["b"],
            1,
            "removed rack's block is retained"
        );
        assert_eq!(p1.leaving_brokers(&ok(&c0).broker_ids()), vec![100]);

        // A new rack after a removed one does not reuse its block.
        let c2 = next(&c1, vec![rack("a", 1), rack("c", 1), rack("d", 1)]);
        assert_eq!(ids(&ok(&c2))["d"], vec![300]);

        // Re-adding the removed rack's name gives it its old ids back.
        let c3 = next(
            &c2,
            vec![rack("a", 1), rack("b", 1), rack("c", 1), rack("d", 1)],
        );
        assert_eq!(ids(&ok(&c3))["b"], vec![100]);
    }

    #[test]
    fn rack_with_zero_brokers_keeps_ids_reserved() {
        let p = ok(&cluster(vec![rack("a", 3), rack("idle", 0)]));
        assert_eq!(ids(&p), map(&[("a", &[0, 1, 2]), ("idle", &[])]));
        assert_eq!(p.rack_id_blocks()["idle"], 1);
        assert_eq!(p.brokers().len(), 3);
    }

    #[test]
    fn voters_round_robin_in_block_order() {
        let p = ok(&cluster(vec![rack("a", 2), rack("b", 2), rack("c", 2)]));
        assert_eq!(p.voters(), &[0, 100, 200]);
        let mut c = cluster(vec![rack("a", 3), rack("b", 1), rack("c", 2)]);
        c.spec.controller_voters = 5;
        assert_eq!(ok(&c).voters(), &[0, 100, 200, 1, 201]);
        // Reordering the spec does not move the voters once blocks are recorded.
        let c2 = next(&c, vec![rack("c", 2), rack("b", 1), rack("a", 3)]);
        let mut c2 = c2;
        c2.spec.controller_voters = 5;
        assert_eq!(ok(&c2).voters(), &[0, 100, 200, 1, 201]);
    }

    #[test]
    fn voter_properties() {
        let p = ok(&cluster(vec![rack("a", 2), rack("b", 1), rack("c", 1)]));
        let brokers = p.brokers();
        let voter = &brokers[0];
        let plain = brokers.iter().find(|b| !b.voter).unwrap();
        assert_eq!(plain.id, 1);
        let vp = p.properties(voter);
        assert_eq!(vp["process.roles"], "broker,controller");
        assert_eq!(
            vp["listeners"],
            "PLAIN://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093"
        );
        assert_eq!(
            vp["controller.quorum.voters"],
            "0@c-a-0.c-brokers.ns.svc.cluster.local:9093,\
             100@c-b-0.c-brokers.ns.svc.cluster.local:9093,\
             200@c-c-0.c-brokers.ns.svc.cluster.local:9093"
        );
        let pp = p.properties(plain);
        assert_eq!(pp["process.roles"], "broker");
        assert_eq!(pp["listeners"], "PLAIN://0.0.0.0:9092");
        assert_eq!(
            pp["advertised.listeners"],
            "PLAIN://c-a-1.c-brokers.ns.svc.cluster.local:9092"
        );
        assert_eq!(pp["node.id"], "1");
        assert_eq!(pp["broker.rack"], "a");
        assert_eq!(
            pp["listener.security.protocol.map"],
            "PLAIN:PLAINTEXT,CONTROLLER:PLAINTEXT"
        );
        assert_eq!(pp["inter.broker.listener.name"], "PLAIN");
        assert_eq!(pp["log.dirs"], "/var/lib/strata/data");
    }

    #[test]
    fn cluster_id_is_the_uid_in_kafka_form_for_every_broker() {
        let mut c = cluster(vec![rack("a", 2), rack("b", 1)]);
        c.metadata.uid = Some("18c188b7-a31e-479c-a168-d173c63f095c".into());
        let p = ok(&c);
        assert_eq!(p.cluster_id(), "GMGIt6MeR5yhaNFzxj8JXA");
        for b in p.brokers() {
            assert_eq!(p.properties(&b)["cluster.id"], "GMGIt6MeR5yhaNFzxj8JXA");
        }
        // Nothing the spec or the status changes moves it: a broker formats once.
        let mut grown = next(&c, vec![rack("a", 3), rack("b", 1), rack("c", 1)]);
        grown.metadata.uid = c.metadata.uid.clone();
        grown
            .spec
            .config
            .insert("log.retention.hours".into(), "1".into());
        grown.spec.controller_voters = 5;
        assert_eq!(ok(&grown).cluster_id(), "GMGIt6MeR5yhaNFzxj8JXA");
        assert!(p
            .properties_file(&p.brokers()[0])
            .contains("\ncluster.id=GMGIt6MeR5yhaNFzxj8JXA\n"));
    }

    #[test]
    fn cluster_id_without_a_uuid_uid_is_a_stable_hash() {
        let c = cluster(vec![rack("a", 1)]);
        assert_eq!(c.metadata.uid, None);
        let id = ok(&c).cluster_id().to_owned();
        assert_eq!(id.len(), 22);
        assert!(strata_client::parse_kafka_uuid(&id).is_some(), "{id}");
        assert_eq!(ok(&c).cluster_id(), id, "deterministic");
        assert_eq!(id, kafka_cluster_id(None, "ns", "c"));
        assert_ne!(id, kafka_cluster_id(None, "other", "c"));
        assert_ne!(id, kafka_cluster_id(None, "ns", "d"));
        let odd = kafka_cluster_id(Some("uid-1"), "ns", "c");
        assert!(strata_client::parse_kafka_uuid(&odd).is_some(), "{odd}");
        assert_eq!(
            odd,
            kafka_cluster_id(Some("uid-1"), "other", "name"),
            "the uid decides"
        );
        assert_ne!(odd, kafka_cluster_id(Some("uid-2"), "ns", "c"));
    }

    #[test]
    fn defaults_follow_the_broker_count() {
        let one = ok(&cluster(vec![rack("a", 1)]));
        let p = one.properties(&one.brokers()[0]);
        assert_eq!(
            (
                p["default.replication.factor"].as_str(),
                p["min.insync.replicas"].as_str(),
                p["offsets.topic.replication.factor"].as_str()
            ),
            ("1", "1", "1")
        );
        let two = ok(&cluster(vec![rack("a", 1), rack("b", 1)]));
        let p = two.properties(&two.brokers()[0]);
        assert_eq!(p["default.replication.factor"], "2");
        assert_eq!(p["min.insync.replicas"], "1");
        let six = ok(&cluster(vec![rack("a", 2), rack("b", 2), rack("c", 2)]));
        let p = six.properties(&six.brokers()[0]);
        assert_eq!(p["default.replication.factor"], "3");
        assert_eq!(p["min.insync.replicas"], "2");
        assert_eq!(p["offsets.topic.replication.factor"], "3");
        assert_eq!(p["transaction.state.log.min.isr"], "2");
    }

    #[test]
    fn spec_config_overrides_defaults() {
        let mut c = cluster(vec![rack("a", 3)]);
        c.spec
            .config
            .insert("min.insync.replicas".into(), "1".into());
        c.spec
            .config
            .insert("log.retention.hours".into(), "24".into());
        let p = ok(&c);
        let props = p.properties(&p.brokers()[0]);
        assert_eq!(props["min.insync.replicas"], "1");
        assert_eq!(props["default.replication.factor"], "3");
        assert_eq!(props["log.retention.hours"], "24");
    }

    #[test]
    fn no_brokers_is_refused() {
        assert_eq!(reason_of(&cluster(vec![])), reason::NO_BROKERS);
        assert_eq!(
            reason_of(&cluster(vec![rack("a", 0), rack("b", 0)])),
            reason::NO_BROKERS
        );
    }

    #[test]
    fn duplicate_rack_name_is_refused() {
        assert_eq!(
            reason_of(&cluster(vec![rack("a", 1), rack("a", 2)])),
            reason::DUPLICATE_RACK_NAME
        );
    }

    #[test]
    fn duplicate_listeners_are_refused() {
        let mut c = cluster(vec![rack("a", 1)]);
        c.spec.listeners = vec![listener("plain", 9092), listener("plain", 9094)];
        assert_eq!(reason_of(&c), reason::DUPLICATE_LISTENER);
        c.spec.listeners = vec![listener("plain", 9092), listener("other", 9092)];
        assert_eq!(reason_of(&c), reason::DUPLICATE_LISTENER);
        c.spec.listeners = vec![listener("plain", CONTROLLER_PORT)];
        assert_eq!(reason_of(&c), reason::DUPLICATE_LISTENER);
        c.spec.listeners = vec![listener("controller", 9092)];
        assert_eq!(reason_of(&c), reason::DUPLICATE_LISTENER);
    }

    #[test]
    fn malformed_listeners_are_refused() {
        let mut c = cluster(vec![rack("a", 1)]);
        c.spec.listeners = vec![listener("much-too-long-listener", 9092)];
        assert_eq!(reason_of(&c), reason::INVALID_LISTENER);
        c.spec.listeners = vec![];
        assert_eq!(reason_of(&c), reason::INVALID_LISTENER);
        let mut mtls = listener("mtls", 9094);
        mtls.authentication = Authentication::Mtls;
        c.spec.listeners = vec![mtls];
        assert_eq!(
            plan(
                &c,
                &PlanContext {
                    capabilities: BrokerCapabilities::ALL,
                    ..ctx()
                }
            )
            .unwrap_err()
            .reason,
            reason::INVALID_LISTENER
        );
    }

    #[test]
    fn a_secured_cluster_talks_mutual_tls_inside() {
        let mut c = cluster(vec![rack("a", 1)]);
        let mut tls = listener("tls", 9094);
        tls.tls = true;
        let mut scram = listener("scram", 9095);
        scram.tls = true;
        scram.authentication = Authentication::ScramSha512;
        c.spec.listeners = vec![listener("plain", 9092), tls, scram];
        c.spec.config.insert(
            "authorizer.class.name".into(),
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        );
        c.spec
            .config
            .insert("super.users".into(), "User:alice".into());
        let p = plan(&c, &ctx()).expect("TLS and SCRAM listeners are served");
        assert!(p.secured());
        let names: Vec<_> = p.listeners().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["replication", "plain", "tls", "scram"]);
        let props = p.properties(&p.brokers()[0]);
        assert_eq!(props["inter.broker.listener.name"], "REPLICATION");
        assert_eq!(
            props["listener.security.protocol.map"],
            "REPLICATION:SSL,PLAIN:PLAINTEXT,TLS:SSL,SCRAM:SASL_SSL,CONTROLLER:SSL"
        );
        for listener in ["replication", "controller"] {
            let key = |k: &str| props[&format!("listener.name.{listener}.{k}")].clone();
            assert_eq!(key("ssl.client.auth"), "required");
            assert_eq!(
                key("ssl.keystore.certificate.chain"),
                "${dir:/etc/strata/tls/replication:tls.crt}"
            );
            assert_eq!(
                key("ssl.truststore.certificates"),
                "${dir:/etc/strata/tls/replication:ca.crt}"
            );
        }
        assert_eq!(
            props["listener.name.scram.sasl.enabled.mechanisms"],
            "SCRAM-SHA-512"
        );
        assert!(!props.contains_key("listener.name.tls.ssl.client.auth"));
        assert_eq!(
            props["super.users"],
            "User:alice;User:CN=strata-broker;User:CN=strata-operator;User:CN=strata-admin;\
             User:CN=strata-mirror"
        );
        assert!(props["advertised.listeners"].starts_with("REPLICATION://c-a-0."));
        // A plaintext cluster is as before: no internal listener.
        let plain = plan(&cluster(vec![rack("a", 1)]), &ctx()).unwrap();
        assert!(!plain.secured());
        assert_eq!(
            plain.properties(&plain.brokers()[0])["listener.security.protocol.map"],
            "PLAIN:PLAINTEXT,CONTROLLER:PLAINTEXT"
        );
    }

    #[test]
    fn listeners_the_operator_cannot_serve_are_refused() {
        let mut c = cluster(vec![rack("a", 1)]);
        let mut plain = listener("users", 9094);
        plain.authentication = Authentication::Plain;
        c.spec.listeners = vec![listener("plain", 9092), plain];
        assert_eq!(reason_of(&c), reason::UNSUPPORTED_LISTENER);
        let mut tls = listener("tls", 9091);
        tls.tls = true;
        c.spec.listeners = vec![listener("plain", 9092), tls];
        assert_eq!(reason_of(&c), reason::DUPLICATE_LISTENER);
        let mut tls = listener("tls", 9094);
        tls.tls = true;
        c.spec.listeners = vec![listener("replication", 9092), tls];
        assert_eq!(reason_of(&c), reason::DUPLICATE_LISTENER);
    }

    #[test]
    fn too_many_brokers_in_a_rack_is_an_id_collision() {
        assert_eq!(
            reason_of(&cluster(vec![rack("a", 101)])),
            reason::BROKER_ID_COLLISION
        );
    }

    #[test]
    fn colliding_recorded_blocks_are_refused() {
        let c = with_blocks(
            cluster(vec![rack("a", 1), rack("b", 1)]),
            &[("a", 0), ("b", 0)],
        );
        let err = plan(&c, &ctx()).unwrap_err();
        assert_eq!(err.reason, reason::BROKER_ID_COLLISION);
        assert!(err.message.contains("block 0"), "{}", err.message);
    }

    #[test]
    fn reserved_properties_are_refused() {
        for key in RESERVED_PROPERTIES {
            let mut c = cluster(vec![rack("a", 1)]);
            c.spec.config.insert((*key).to_owned(), "1".to_owned());
            assert_eq!(reason_of(&c), reason::RESERVED_PROPERTY, "{key}");
        }
    }

    #[test]
    fn malformed_properties_are_refused() {
        for (key, value) in [
            ("num.partitions", "many"),
            ("log.retention.hours", "1.5"),
            ("auto.create.topics.enable", "yes"),
            ("bad key", "1"),
            ("log.retention.hours", "1\nnode.id=7"),
            ("default.replication.factor", "0"),
        ] {
            let mut c = cluster(vec![rack("a", 3)]);
            c.spec.config.insert(key.to_owned(), value.to_owned());
            assert_eq!(reason_of(&c), reason::INVALID_PROPERTY, "{key}={value:?}");
        }
    }

    #[test]
    fn min_insync_above_replication_is_refused() {
        let mut c = cluster(vec![rack("a", 3)]);
        c.spec
            .config
            .insert("default.replication.factor".into(), "2".into());
        c.spec
            .config
            .insert("min.insync.replicas".into(), "3".into());
        assert_eq!(reason_of(&c), reason::MIN_INSYNC_ABOVE_REPLICATION);
        // Against the default RF too: 2 brokers give RF 2.
        let mut c = cluster(vec![rack("a", 2)]);
        c.spec
            .config
            .insert("min.insync.replicas".into(), "3".into());
        assert_eq!(reason_of(&c), reason::MIN_INSYNC_ABOVE_REPLICATION);
    }

    #[test]
    fn replication_above_brokers_is_refused() {
        let mut c = cluster(vec![rack("a", 2)]);
        c.spec
            .config
            .insert("default.replication.factor".into(), "3".into());
        assert_eq!(reason_of(&c), reason::REPLICATION_ABOVE_BROKERS);
        let mut c = cluster(vec![rack("a", 2)]);
        c.spec
            .config
            .insert("offsets.topic.replication.factor".into(), "3".into());
        assert_eq!(reason_of(&c), reason::REPLICATION_ABOVE_BROKERS);
    }

    #[test]
    fn names_that_cannot_become_objects_are_refused() {
        let mut c = cluster(vec![rack("a", 1)]);
        c.metadata.name = Some("1kafka".into());
        assert_eq!(reason_of(&c), reason::INVALID_NAME);
        let long = "r".repeat(51);
        assert_eq!(
            reason_of(&cluster(vec![rack(&long, 1)])),
            reason::INVALID_NAME
        );
        assert_eq!(
            reason_of(&cluster(vec![rack("Upper", 1)])),
            reason::INVALID_NAME
        );
    }

    #[test]
    fn other_refusals() {
        let mut c = cluster(vec![rack("a", -1), rack("b", 1)]);
        assert_eq!(reason_of(&c), reason::INVALID_BROKER_COUNT);
        c = cluster(vec![rack("a", 1)]);
        c.spec.controller_voters = 0;
        assert_eq!(reason_of(&c), reason::INVALID_CONTROLLER_VOTERS);
        c = cluster(vec![rack("a", 1)]);
        c.spec.storage.size.0 = "ten gigs".into();
        assert_eq!(reason_of(&c), reason::INVALID_STORAGE);
        c = cluster(vec![rack("a", 1)]);
        c.spec.topology_key = String::new();
        assert_eq!(reason_of(&c), reason::INVALID_PLACEMENT);
    }

    fn warning_reasons(p: &ClusterPlan) -> Vec<&'static str> {
        p.warnings().iter().map(|w| w.reason).collect()
    }

    #[test]
    fn three_racks_with_one_voter_each_is_not_degraded() {
        let p = ok(&cluster(vec![rack("a", 1), rack("b", 2), rack("c", 2)]));
        assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    }

    #[test]
    fn two_racks_cannot_survive_losing_one() {
        let p = ok(&cluster(vec![rack("a", 2), rack("b", 2)]));
        assert_eq!(p.voters(), &[0, 100, 1]);
        assert_eq!(warning_reasons(&p), [reason::FEWER_THAN_THREE_VOTER_RACKS]);
        assert!(p.warnings()[0].message.contains("losing rack a"));
    }

    #[test]
    fn uneven_racks_can_concentrate_voters() {
        let mut c = cluster(vec![rack("a", 1), rack("b", 1), rack("c", 5)]);
        c.spec.controller_voters = 5;
        let p = ok(&c);
        assert_eq!(p.voters(), &[0, 100, 200, 201, 202]);
        assert_eq!(warning_reasons(&p), [reason::RACK_LOSS_BREAKS_QUORUM]);
    }

    #[test]
    fn even_and_capped_voters_are_warned() {
        let mut c = cluster(vec![rack("a", 2), rack("b", 2), rack("c", 2), rack("d", 2)]);
        c.spec.controller_voters = 4;
        let p = ok(&c);
        assert_eq!(warning_reasons(&p), [reason::EVEN_VOTER_COUNT]);
        let p = ok(&cluster(vec![rack("a", 1)]));
        assert_eq!(p.voters(), &[0]);
        assert_eq!(
            warning_reasons(&p),
            [reason::FEWER_THAN_THREE_VOTER_RACKS, reason::VOTERS_CAPPED]
        );
    }

    #[test]
    fn hold_rack_and_leaving_brokers() {
        let c0 = cluster(vec![rack("a", 3), rack("b", 3), rack("c", 3)]);
        let previous = ok(&c0).broker_ids();
        let c1 = next(&c0, vec![rack("a", 1), rack("b", 3)]);
        let mut p = ok(&c1);
        assert_eq!(p.leaving_brokers(&previous), vec![1, 2, 200, 201, 202]);
        p.hold_rack("a", 3);
        assert_eq!(p.leaving_brokers(&previous), vec![200, 201, 202]);
        assert_eq!(p.broker_ids()["a"], vec![0, 1, 2]);
        // Holding never lowers.
        p.hold_rack("b", 1);
        assert_eq!(p.broker_ids()["b"], vec![100, 101, 102]);
        // A removed rack comes back outside the spec, with its old ids.
        p.hold_rack("c", 3);
        assert_eq!(p.leaving_brokers(&previous), Vec::<i32>::new());
        assert_eq!(p.broker_ids()["c"], vec![200, 201, 202]);
        assert!(!p.racks()[2].in_spec);
        assert_eq!(p.brokers().len(), 9);
        // A rack that never existed is ignored.
        p.hold_rack("never", 2);
        assert_eq!(p.racks().len(), 3);
    }

    #[test]
    fn hold_rack_restores_voters_capped_by_the_scale_down() {
        let c0 = cluster(vec![rack("a", 3)]);
        let before = ok(&c0).voters().to_vec();
        let c1 = next(&c0, vec![rack("a", 1)]);
        let mut p = ok(&c1);
        assert_eq!(p.voters(), &[0]);
        p.hold_rack("a", 3);
        assert_eq!(p.voters(), before.as_slice());
    }

    #[test]
    fn config_hash_ignores_scale_but_not_config() {
        let small = ok(&cluster(vec![rack("a", 3), rack("b", 3), rack("c", 3)]));
        let big = ok(&cluster(vec![rack("a", 5), rack("b", 3), rack("c", 3)]));
        assert_eq!(small.config_hash("a"), big.config_hash("a"));
        assert_ne!(small.config_hash("a"), small.config_hash("b"));
        let mut c = cluster(vec![rack("a", 3), rack("b", 3), rack("c", 3)]);
        c.spec
            .config
            .insert("log.retention.hours".into(), "1".into());
        assert_ne!(ok(&c).config_hash("a"), small.config_hash("a"));
        // Voter changes reach every rack.
        let mut c = cluster(vec![rack("a", 3), rack("b", 3), rack("c", 3)]);
        c.spec.controller_voters = 5;
        assert_ne!(ok(&c).config_hash("c"), small.config_hash("c"));
    }

    #[test]
    fn properties_file_is_sorted_and_parseable() {
        let p = ok(&cluster(vec![rack("a", 1)]));
        let file = p.properties_file(&p.brokers()[0]);
        let keys: Vec<&str> = file
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_once('=').expect("key=value").0)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert!(file.starts_with("# Broker 0 (rack a) of KafkaCluster ns/c."));
    }

    #[test]
    fn listener_certificates_name_the_discovery_services_of_the_clusters_flows() {
        let mut c = cluster(vec![rack("a", 1)]);
        let mut tls = listener("tls", 9094);
        tls.tls = true;
        c.spec.listeners = vec![tls];
        let p = plan(&c, &ctx()).unwrap();
        let leaves = crate::cluster::secrets::leaves(&p, &["kafka-active".to_owned()]);
        let names = |secret: &str| {
            leaves
                .iter()
                .find(|(s, _, _)| s == secret)
                .map(|(_, spec, _)| spec.dns_names.clone())
                .unwrap()
        };
        let listener_names = names(&p.names().tls_secret("tls"));
        let ns = p.names().namespace().to_owned();
        assert!(listener_names.contains(&"kafka-active".to_owned()));
        assert!(listener_names.contains(&format!("kafka-active.{ns}.svc")));
        // The internal certificate (whose change restarts the brokers) does not follow flows.
        assert!(!names(&p.names().tls_secret(REPLICATION_LISTENER))
            .iter()
            .any(|n| n.starts_with("kafka-active")));
        // A flow's discovery Service added: the listener certificate is issued again.
        let before = crate::cluster::secrets::leaves(&p, &[]);
        let spec = |l: &[(String, crate::cluster::certs::LeafSpec, bool)]| {
            l.iter()
                .find(|(s, _, _)| *s == p.names().tls_secret("tls"))
                .unwrap()
                .1
                .digest()
        };
        assert_ne!(spec(&before), spec(&leaves));
    }
}
