//! The configuration file of `strata-mirror` and the `MirrorFlow` resource describe a flow with
//! the same types (`strata-flow`); this test keeps their field lists equal: a `MirrorFlow` spec
//! with every field set reads into a `MirrorConfig` (which refuses unknown fields) with the same
//! values, and the destructuring below fails to compile when `MirrorConfig` gains a field.

use strata_api::MirrorFlowSpec;
use strata_flow::{
    ActiveSide, ClusterEndpoint, CompressionType, FailoverMode, FailoverSpec, GroupFilter,
    NamingMode, OffsetMode, SyncSpec, TopicFilter, Tuning,
};
use strata_mirror::{MirrorConfig, MirrorOptions};

#[test]
fn a_mirror_flow_spec_is_a_mirror_configuration() {
    let side = |alias: &str| ClusterEndpoint {
        alias: alias.into(),
        cluster_ref: None,
        bootstrap_servers: Some(format!("{alias}:9092")),
        tls: None,
        sasl: None,
    };
    let spec = MirrorFlowSpec {
        source: side("east"),
        target: side("west"),
        topics: TopicFilter {
            include: vec!["orders.*".into()],
            exclude: vec!["orders-tmp".into()],
        },
        groups: GroupFilter {
            include: vec!["billing".into()],
            exclude: Vec::new(),
        },
        naming: NamingMode::Identity,
        offsets: OffsetMode::Preserve,
        sync: SyncSpec {
            topic_configs: false,
            acls: false,
            group_offsets: false,
            checkpoint_interval_seconds: 7,
            heartbeat_interval_seconds: 3,
        },
        tuning: Tuning {
            linger_ms: 9,
            compression: CompressionType::Zstd,
            ..Tuning::default()
        },
        replicas: 3,
        resources: Some(
            serde_json::from_value(serde_json::json!({"requests": {"cpu": "500m"}})).unwrap(),
        ),
        failover: FailoverSpec {
            mode: FailoverMode::Automatic,
            active: ActiveSide::Target,
            discovery_service: Some("kafka".into()),
            ..FailoverSpec::default()
        },
    };
    let yaml = serde_norway::to_string(&spec).expect("serialize");
    let config = MirrorConfig::parse(&yaml, "spec").expect("a MirrorFlow spec reads as a flow");
    let MirrorConfig {
        source,
        target,
        topics,
        groups,
        naming,
        offsets,
        sync,
        tuning,
        replicas,
        failover,
        resources,
        mirror,
    } = config;
    assert_eq!(source, spec.source);
    assert_eq!(target, spec.target);
    assert_eq!(topics, spec.topics);
    assert_eq!(groups, spec.groups);
    assert_eq!(naming, spec.naming);
    assert_eq!(offsets, spec.offsets);
    assert_eq!(sync, spec.sync);
    assert_eq!(tuning, spec.tuning);
    assert_eq!(replicas, Some(spec.replicas));
    assert_eq!(failover, Some(spec.failover));
    assert_eq!(
        resources,
        Some(serde_json::to_value(&spec.resources).expect("resources serialize"))
    );
    assert_eq!(mirror, MirrorOptions::default());
}
