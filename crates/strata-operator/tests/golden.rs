//! The builders against golden YAML: each custom-resource file in `tests/fixtures/` is rendered
//! the way `strata-operator render` does and compared with `tests/golden/<same name>`. A
//! change in the output fails with a line diff; after reviewing it, accept it with
//! `STRATA_UPDATE_GOLDEN=1 cargo test --release -p strata-operator --test golden`.
//!
//! Besides the exact text, every rendered cluster is checked for what the API server and the
//! StatefulSet controller would trip over: selectors that miss the pod labels, a ConfigMap key
//! missing for a pod, a Service name the pods do not use, invalid port names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Deserialize;
use serde_json::Value;
use strata_operator::cluster::plan::PlanContext;
use strata_operator::names;
use strata_operator::render::render;

const IMAGE: &str = "ghcr.io/strata-dev/strata:golden";

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

/// A line diff (longest common subsequence), with `-` for golden and `+` for rendered lines
/// and two lines of context around each change.
fn diff(golden: &str, rendered: &str) -> String {
    let a: Vec<&str> = golden.lines().collect();
    let b: Vec<&str> = rendered.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i + 1, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, a[i]));
            i += 1;
        } else {
            ops.push(('+', j + 1, b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = String::new();
    let mut last = None;
    for (k, (tag, line, text)) in ops.iter().enumerate() {
        let near = changed.iter().any(|&c| c.abs_diff(k) <= 2);
        if !near {
            continue;
        }
        if last.is_some_and(|l: usize| l + 1 != k) {
            out.push_str("  ...\n");
        }
        out.push_str(&format!("{tag}{line:>5} {text}\n"));
        last = Some(k);
    }
    out
}

fn check_golden(fixture: &str, ctx: &PlanContext) -> String {
    let input =
        std::fs::read_to_string(dir("fixtures").join(fixture)).expect("fixture is readable");
    let rendered = render(&input, ctx).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let golden_path = dir("golden").join(fixture);
    if std::env::var_os("STRATA_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &rendered).expect("golden file is writable");
        return rendered;
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap_or_default();
    assert!(
        golden == rendered,
        "{} differs from the rendered output (- golden, + rendered):\n{}\n\
         If the change is intended, rewrite the golden files with \
         STRATA_UPDATE_GOLDEN=1 cargo test --release -p strata-operator --test golden",
        golden_path.display(),
        diff(&golden, &rendered)
    );
    rendered
}

/// The objects of one rendered stream, by kind.
#[derive(Default)]
struct Rendered {
    config_maps: Vec<ConfigMap>,
    services: Vec<Service>,
    stateful_sets: Vec<StatefulSet>,
    budgets: Vec<PodDisruptionBudget>,
    kinds: Vec<String>,
}

fn parse(text: &str) -> Rendered {
    let mut out = Rendered::default();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).expect("rendered output is YAML");
        let Some(kind) = value.get("kind").and_then(Value::as_str) else {
            continue;
        };
        out.kinds.push(kind.to_owned());
        let value = value.clone();
        match kind {
            "ConfigMap" => out
                .config_maps
                .push(serde_json::from_value(value).expect("ConfigMap")),
            "Service" => out
                .services
                .push(serde_json::from_value(value).expect("Service")),
            "StatefulSet" => out
                .stateful_sets
                .push(serde_json::from_value(value).expect("StatefulSet")),
            "PodDisruptionBudget" => out
                .budgets
                .push(serde_json::from_value(value).expect("PDB")),
            other => panic!("unexpected kind {other}"),
        }
    }
    out
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

/// What a Kubernetes reviewer checks by eye, for every cluster in the stream.
fn check_consistency(objects: &Rendered) {
    // Apply order: the ConfigMap the pods mount comes before the StatefulSets.
    let first_sts = objects.kinds.iter().position(|k| k == "StatefulSet");
    let config = objects.kinds.iter().position(|k| k == "ConfigMap");
    assert!(
        config < first_sts,
        "ConfigMap after a StatefulSet: {:?}",
        objects.kinds
    );

    let config_map = &objects.config_maps[0];
    let data = config_map.data.clone().unwrap_or_default();
    for sts in &objects.stateful_sets {
        let spec = sts.spec.as_ref().expect("StatefulSet spec");
        let name = sts.metadata.name.as_deref().unwrap_or_default();
        let template = spec.template.metadata.as_ref().expect("template metadata");
        let pod_labels = template.labels.clone().unwrap_or_default();
        let selector = spec.selector.match_labels.clone().unwrap_or_default();
        assert!(
            is_subset(&selector, &pod_labels),
            "{name}: selector misses the pod labels"
        );
        assert!(
            template
                .annotations
                .as_ref()
                .is_some_and(|a| a[names::CONFIG_HASH_ANNOTATION].len() == 64),
            "{name}: config hash annotation"
        );
        assert!(
            name.len() <= 52,
            "{name}: too long for controller-revision-hash"
        );
        // The headless Service the StatefulSet names exists and selects its pods.
        let service_name = spec.service_name.as_deref().unwrap_or_default();
        let headless = objects
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(service_name))
            .unwrap_or_else(|| panic!("{name}: no Service {service_name}"));
        let headless_spec = headless.spec.as_ref().expect("Service spec");
        assert_eq!(headless_spec.cluster_ip.as_deref(), Some("None"));
        assert!(is_subset(
            headless_spec.selector.as_ref().expect("selector"),
            &pod_labels
        ));
        // Every pod finds its properties file, and the file names the pod's own identity.
        for ordinal in 0..spec.replicas.unwrap_or(1) {
            let pod = format!("{name}-{ordinal}");
            let file = data
                .get(&format!("{pod}.properties"))
                .unwrap_or_else(|| panic!("no properties for {pod}"));
            assert!(
                file.contains(&format!("://{pod}.{service_name}.")),
                "{pod}: advertised listener is not the pod's DNS name"
            );
        }
        let pod_spec = spec.template.spec.as_ref().expect("pod spec");
        let config_volume = pod_spec
            .volumes
            .as_ref()
            .and_then(|v| v.iter().find_map(|v| v.config_map.as_ref()))
            .expect("config volume");
        assert_eq!(Some(&config_volume.name), config_map.metadata.name.as_ref());
        let claims = spec
            .volume_claim_templates
            .as_ref()
            .expect("claim template");
        let mounts = pod_spec.containers[0]
            .volume_mounts
            .clone()
            .unwrap_or_default();
        for claim in claims {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            assert!(
                mounts.iter().any(|m| m.name == claim_name),
                "{claim_name} not mounted"
            );
        }
        for port in pod_spec.containers[0].ports.iter().flatten() {
            let port_name = port.name.as_deref().unwrap_or_default();
            assert!(
                port_name.len() <= 15,
                "port name {port_name} longer than 15"
            );
        }
    }
    for budget in &objects.budgets {
        let selector = budget
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        for sts in &objects.stateful_sets {
            let labels = sts
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap();
            assert!(is_subset(&selector, labels.labels.as_ref().unwrap()));
        }
    }
}

fn ctx() -> PlanContext {
    PlanContext::new(IMAGE)
}

#[test]
fn single_zone() {
    let out = check_golden("single-zone.yaml", &ctx());
    let objects = parse(&out);
    check_consistency(&objects);
    assert_eq!(objects.stateful_sets.len(), 1);
}

#[test]
fn three_zone_stretch() {
    let out = check_golden("stretch.yaml", &ctx());
    let objects = parse(&out);
    check_consistency(&objects);
    assert_eq!(objects.stateful_sets.len(), 3);
    // Voters: ordinal 0 of each rack in block order, whatever the spec order.
    let data = objects.config_maps[0].data.clone().unwrap();
    let voters = data["stretch-zone-c-0.properties"]
        .lines()
        .find_map(|l| l.strip_prefix("controller.quorum.voters="))
        .unwrap()
        .split(',')
        .map(|v| v.split('@').next().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(voters, ["0", "100", "200"]);
    assert!(out.contains("# KafkaTopic kafka/orders"));
}

#[test]
fn tls_listener() {
    let out = check_golden("tls.yaml", &ctx());
    check_consistency(&parse(&out));
    assert!(out.contains("secretName: tls-c-external-tls"));
    // The internal mutual-TLS listener of a secured cluster, with the cluster CA's certificate.
    assert!(out.contains("secretName: tls-c-replication-tls"));
    assert!(out.contains("inter.broker.listener.name=REPLICATION"));
    assert!(out.contains("clients bootstrap from tls-c-bootstrap.kafka.svc:9092"));
}

#[test]
fn custom_config_and_pod_overrides() {
    let out = check_golden("custom.yaml", &ctx());
    let objects = parse(&out);
    check_consistency(&objects);
    let replicas: Vec<_> = objects
        .stateful_sets
        .iter()
        .map(|s| s.spec.as_ref().unwrap().replicas)
        .collect();
    assert_eq!(replicas, [Some(2), Some(0)]);
}

/// The documents of a rendered stream that belong to a `MirrorFlow` (the clusters of the
/// fixture have golden files of their own).
fn flow_documents(rendered: &str) -> String {
    rendered
        .split("---\n")
        .filter(|doc| doc.contains(&format!("{}:", names::MIRRORFLOW_LABEL)))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn check_flow_golden(fixture: &str) -> Vec<Value> {
    let input =
        std::fs::read_to_string(dir("fixtures").join(fixture)).expect("fixture is readable");
    let rendered = render(&input, &ctx()).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let flow = flow_documents(&rendered);
    let golden_path = dir("golden").join(fixture);
    if std::env::var_os("STRATA_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &flow).expect("golden file is writable");
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap_or_default();
    assert!(
        golden == flow,
        "{} differs from the rendered output (- golden, + rendered):\n{}\n\
         If the change is intended, rewrite the golden files with \
         STRATA_UPDATE_GOLDEN=1 cargo test --release -p strata-operator --test golden",
        golden_path.display(),
        diff(&golden, &flow)
    );
    let objects: Vec<Value> = serde_norway::Deserializer::from_str(&flow)
        .map(|doc| Value::deserialize(doc).expect("rendered output is YAML"))
        .collect();
    // What the API server and the StatefulSet controller would trip over.
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    let config = kinds.iter().position(|k| *k == "ConfigMap");
    let sts = kinds.iter().position(|k| *k == "StatefulSet");
    assert!(
        config < sts,
        "the ConfigMap the pods mount comes first: {kinds:?}"
    );
    for o in &objects {
        if o["kind"] == "StatefulSet" {
            let selector = o["spec"]["selector"]["matchLabels"].as_object().unwrap();
            let labels = &o["spec"]["template"]["metadata"]["labels"];
            for (k, v) in selector {
                assert_eq!(&labels[k], v, "selector {k}");
            }
            let volume = &o["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"];
            let cm = objects.iter().find(|c| c["kind"] == "ConfigMap").unwrap();
            assert_eq!(volume, &cm["metadata"]["name"]);
            let file = cm["data"]["flow.yaml"].as_str().unwrap();
            let mut config: strata_mirror::MirrorConfig =
                serde_norway::from_str(file).expect("strata-mirror reads the file");
            // Client security names files of the pod's Secrets: checked with such files in
            // `secured_sides_are_read_from_mounted_secrets`.
            config.mirror.source_security.clear();
            config.mirror.target_security.clear();
            config
                .validate()
                .unwrap_or_else(|e| panic!("strata-mirror accepts {fixture}: {e}"));
        }
    }
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn strata_to_strata_preserve_flow_with_discovery() {
    let objects = check_flow_golden("flow-preserve.yaml");
    let sts = find(&objects, "StatefulSet", "east-to-west-mirror");
    assert_eq!(sts["spec"]["replicas"], 2);
    let zones = &sts["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
        ["matchExpressions"][0]["values"];
    assert_eq!(
        zones,
        &serde_json::json!(["zone-b", "zone-c"]),
        "west's zones"
    );
    let discovery = find(&objects, "Service", "kafka-active");
    assert_eq!(discovery["spec"]["selector"][names::CLUSTER_LABEL], "east");
    assert_eq!(discovery["spec"]["ports"][0]["port"], 9092);
}

#[test]
fn reversed_flow_after_a_failover() {
    let objects = check_flow_golden("flow-reversed.yaml");
    let cm = find(&objects, "ConfigMap", "east-to-west-mirror-config");
    let file: Value = serde_norway::from_str(cm["data"]["flow.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(file["source"]["alias"], "west");
    assert_eq!(
        file["target"]["bootstrapServers"],
        "east-bootstrap.kafka.svc:9092"
    );
    let discovery = find(&objects, "Service", "kafka-active");
    assert_eq!(discovery["spec"]["selector"][names::CLUSTER_LABEL], "west");
}

#[test]
fn translate_flow_to_an_external_cluster() {
    let objects = check_flow_golden("flow-translate-external.yaml");
    let discovery = find(&objects, "Service", "kafka-active");
    assert_eq!(discovery["spec"]["selector"][names::CLUSTER_LABEL], "east");
    let cm = find(&objects, "ConfigMap", "east-to-dr-mirror-config");
    let file: Value = serde_norway::from_str(cm["data"]["flow.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(file["offsets"], "Translate");
    assert_eq!(
        file["target"]["bootstrapServers"],
        "10.20.0.1:9094,10.20.0.2:9094"
    );
    let sts = find(&objects, "StatefulSet", "east-to-dr-mirror");
    assert!(
        sts["spec"]["template"]["spec"].get("affinity").is_none(),
        "no zones to follow when writing to an external cluster"
    );
}

#[test]
fn secured_sides_are_read_from_mounted_secrets() {
    let objects = check_flow_golden("flow-secured.yaml");
    let sts = find(&objects, "StatefulSet", "east-to-dr-mirror");
    let pod = &sts["spec"]["template"]["spec"];
    let secrets: Vec<(&str, &str)> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("secret").is_some())
        .map(|v| {
            (
                v["name"].as_str().unwrap(),
                v["secret"]["secretName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        secrets,
        [
            ("source-tls", "east-mirror-client"),
            ("target-tls", "dr-ca"),
            ("target-sasl", "dr-mirror-user")
        ]
    );
    // With the Secrets' files where the pod mounts them, strata-mirror accepts the flow file
    // as it is (here under a temporary root standing for /).
    let cm = find(&objects, "ConfigMap", "east-to-dr-mirror-config");
    let file = cm["data"]["flow.yaml"].as_str().unwrap();
    let root = tempfile::tempdir().unwrap();
    let pem = {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["east".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    for (dir, entries) in [
        (
            "source-tls",
            vec![("ca.crt", &pem.0), ("tls.crt", &pem.0), ("tls.key", &pem.1)],
        ),
        ("target-tls", vec![("ca.crt", &pem.0)]),
    ] {
        let d = root.path().join(format!("etc/strata/secrets/{dir}"));
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in entries {
            std::fs::write(d.join(name), text).unwrap();
        }
    }
    let d = root.path().join("etc/strata/secrets/target-sasl");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("username"), "mirror").unwrap();
    std::fs::write(d.join("password"), "mirror-secret").unwrap();
    let rooted = file.replace(
        "/etc/strata/secrets",
        &format!("{}/etc/strata/secrets", root.path().display()),
    );
    let config = strata_mirror::MirrorConfig::parse(&rooted, "flow-secured").unwrap();
    config
        .validate()
        .expect("strata-mirror accepts the flow file");
    let target = config.target_client();
    assert!(target.security.tls.is_some());
    assert_eq!(target.security.sasl.unwrap().username, "mirror");
    assert!(config.source_client().security.tls.is_some());
    assert_eq!(
        config.source_client().bootstrap,
        ["east-bootstrap.kafka.svc:9091"]
    );
}

#[test]
fn diff_shows_changed_lines_with_context() {
    let d = diff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nX\ne\nf\ng\n");
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(
        lines,
        ["     2 b", "     3 c", "-    4 d", "+    4 X", "     5 e", "     6 f"]
    );
}
