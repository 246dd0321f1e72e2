//! The client's metadata and admin calls against an in-process Strata broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::TestBroker;
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{GroupId, JoinGroupRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;
use strata_client::{
    Client, ClientConfig, ConfigOp, ConfigSource, Error, NewTopic, ResponseError, Target,
};

fn topic(name: &str, partitions: Option<i32>) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        ..NewTopic::default()
    }
}

#[tokio::test]
async fn metadata_describes_brokers_topics_and_partitions() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(&topic("orders", Some(3)))
        .await
        .expect("create");

    let all = client.metadata(None).await.expect("metadata");
    assert_eq!(all.brokers.len(), 1);
    let b = &all.brokers[0];
    assert_eq!((b.id, b.host.as_str()), (1, "127.0.0.1"));
    assert_eq!(b.address(), broker.addr);
    assert_eq!(all.controller_id, Some(1));
    assert!(all.cluster_id.is_some());
    let orders = &all.topics["orders"];
    assert!(orders.id.is_some());
    assert!(!orders.internal);
    assert_eq!(orders.partitions.len(), 3);
    for (i, p) in orders.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        assert_eq!(p.leader, 1);
        assert_eq!(p.replicas, vec![1]);
        assert_eq!(p.isr, vec![1]);
        assert!(p.offline.is_empty());
        assert!(!p.under_replicated());
        assert!(p.leader_epoch >= 0);
    }

    let some = client
        .metadata(Some(&["orders".to_string(), "absent".to_string()]))
        .await
        .expect("metadata of named topics");
    assert!(some.topics.contains_key("orders"));
    assert!(
        !some.topics.contains_key("absent"),
        "a missing topic is absent, and not auto-created"
    );
    let again = client.metadata(None).await.expect("metadata");
    assert!(!again.topics.contains_key("absent"));

    let cluster = client.describe_cluster().await.expect("describe cluster");
    assert_eq!(Some(cluster.cluster_id), all.cluster_id);
    assert_eq!(cluster.controller_id, 1);
    assert_eq!(cluster.brokers, all.brokers);
}

#[tokio::test]
async fn create_topic_with_configs_defaults_and_errors() {
    let broker = TestBroker::start(&["num.partitions=2"]).await;
    let mut config = broker.config();
    // A retry would take seconds: the fatal errors below must come back at once.
    config.retry_backoff = Duration::from_secs(3);
    config.retry_backoff_max = Duration::from_secs(3);
    let client = Client::connect(config).await.expect("connect");
    let admin = client.admin();

    let mut t = topic("configured", Some(4));
    t.replication_factor = Some(1);
    t.configs.insert("retention.ms".into(), "60000".into());
    t.configs.insert("cleanup.policy".into(), "compact".into());
    let created = admin.create_topic(&t).await.expect("create");
    assert_eq!(created.partitions, 4);
    assert_eq!(created.replication_factor, 1);
    assert!(created.topic_id.is_some());
    let meta = client
        .metadata(Some(&["configured".to_string()]))
        .await
        .expect("metadata");
    assert_eq!(meta.topics["configured"].id, created.topic_id);

    let defaults = admin
        .create_topic(&topic("defaults", None))
        .await
        .expect("create with broker defaults");
    assert_eq!(defaults.partitions, 2, "num.partitions");
    assert_eq!(defaults.replication_factor, 1);

    let started = Instant::now();
    let err = admin.create_topic(&t).await.expect_err("already exists");
    match &err {
        Error::Kafka {
            api, code, name, ..
        } => {
            assert_eq!(*api, "CreateTopics");
            assert_eq!(*code, 36);
            assert_eq!(name, "TOPIC_ALREADY_EXISTS");
        }
        other => panic!("expected a Kafka error, got {other:?}"),
    }
    assert!(err.is(ResponseError::TopicAlreadyExists));
    assert!(!err.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(2), "not retried");

    let mut too_many = topic("replicated", Some(1));
    too_many.replication_factor = Some(3);
    let err = admin
        .create_topic(&too_many)
        .await
        .expect_err("rf 3 on one broker");
    assert!(err.is(ResponseError::InvalidReplicationFactor), "{err}");

    let mut bad_config = topic("bad-config", Some(1));
    bad_config
        .configs
        .insert("retention.ms".into(), "soon".into());
    let err = admin
        .create_topic(&bad_config)
        .await
        .expect_err("bad config");
    assert!(err.is(ResponseError::InvalidConfig), "{err}");

    let err = admin
        .create_topic(&topic("bad name!", Some(1)))
        .await
        .expect_err("bad name");
    assert!(err.is(ResponseError::InvalidTopicException), "{err}");
}

#[tokio::test]
async fn create_partitions_only_grows() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(&topic("grow", Some(1)))
        .await
        .expect("create");
    admin.create_partitions("grow", 3).await.expect("increase");
    let meta = client
        .metadata(Some(&["grow".to_string()]))
        .await
        .expect("metadata");
    assert_eq!(meta.topics["grow"].partitions.len(), 3);

    let err = admin
        .create_partitions("grow", 2)
        .await
        .expect_err("decrease");
    assert!(err.is(ResponseError::InvalidPartitions), "{err}");
    let err = admin
        .create_partitions("grow", 3)
        .await
        .expect_err("no change");
    assert!(err.is(ResponseError::InvalidPartitions), "{err}");
    let err = admin
        .create_partitions("nowhere", 3)
        .await
        .expect_err("unknown topic");
    assert!(err.is(ResponseError::UnknownTopicOrPartition), "{err}");
}

#[tokio::test]
async fn describe_and_incrementally_alter_configs() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    let admin = client.admin();
    let mut t = topic("tuned", Some(1));
    t.configs.insert("retention.ms".into(), "60000".into());
    admin.create_topic(&t).await.expect("create");

    let entry = |entries: &[strata_client::ConfigEntry], name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not described"))
    };
    let configs = admin
        .describe_topic_configs("tuned")
        .await
        .expect("describe");
    let retention = entry(&configs, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.sensitive);
    let cleanup = entry(&configs, "cleanup.policy");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert_ne!(cleanup.source, ConfigSource::DynamicTopic);

    admin
        .incremental_alter_topic_configs(
            "tuned",
            &[
                ConfigOp::Set("cleanup.policy".into(), "compact".into()),
                ConfigOp::Delete("retention.ms".into()),
            ],
        )
        .await
        .expect("alter");
    let configs = admin
        .describe_topic_configs("tuned")
        .await
        .expect("describe");
    let cleanup = entry(&configs, "cleanup.policy");
    assert_eq!(cleanup.value.as_deref(), Some("compact"));
    assert_eq!(cleanup.source, ConfigSource::DynamicTopic);
    let retention = entry(&configs, "retention.ms");
    assert_ne!(retention.source, ConfigSource::DynamicTopic);
    assert_ne!(retention.value.as_deref(), Some("60000"));

    let err = admin
        .incremental_alter_topic_configs(
            "tuned",
            &[ConfigOp::Set("retention.ms".into(), "never".into())],
        )
        .await
        .expect_err("invalid value");
    assert!(err.is(ResponseError::InvalidConfig), "{err}");
    let err = admin
        .describe_topic_configs("nowhere")
        .await
        .expect_err("unknown topic");
    assert!(err.is(ResponseError::UnknownTopicOrPartition), "{err}");

    let broker_configs = admin
        .describe_broker_configs(1)
        .await
        .expect("broker configs");
    assert!(!broker_configs.is_empty());
}

#[tokio::test]
async fn delete_topic_then_unknown() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(&topic("doomed", Some(2)))
        .await
        .expect("create");
    admin.delete_topic("doomed").await.expect("delete");
    let meta = client.metadata(None).await.expect("metadata");
    assert!(!meta.topics.contains_key("doomed"));
    let started = Instant::now();
    let err = admin.delete_topic("doomed").await.expect_err("gone");
    assert!(
        matches!(&err, Error::Kafka { name, .. } if name == "UNKNOWN_TOPIC_OR_PARTITION"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "not retried");
}

#[tokio::test]
async fn group_offsets_and_listings() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(&topic("events", Some(2)))
        .await
        .expect("create");

    assert!(admin
        .fetch_group_offsets("reader")
        .await
        .expect("fetch of an unknown group")
        .is_empty());
    let offsets = BTreeMap::from([
        (("events".to_string(), 0), 5),
        (("events".to_string(), 1), 7),
    ]);
    admin
        .commit_group_offsets("reader", &offsets)
        .await
        .expect("commit");
    assert_eq!(
        admin.fetch_group_offsets("reader").await.expect("fetch"),
        offsets
    );
    let moved = BTreeMap::from([(("events".to_string(), 1), 9)]);
    admin
        .commit_group_offsets("reader", &moved)
        .await
        .expect("commit again");
    let fetched = admin.fetch_group_offsets("reader").await.expect("fetch");
    assert_eq!(fetched[&("events".to_string(), 0)], 5);
    assert_eq!(fetched[&("events".to_string(), 1)], 9);

    // A member joins "active": the group is Stable with one member, and an admin commit is
    // refused with a fatal Kafka error.
    let member = join_and_sync(&client, "active").await;
    let groups = admin.list_groups().await.expect("list groups");
    let ids: Vec<&str> = groups.iter().map(|g| g.group_id.as_str()).collect();
    assert!(
        ids.contains(&"reader") && ids.contains(&"active"),
        "{ids:?}"
    );
    let active = groups
        .iter()
        .find(|g| g.group_id == "active")
        .expect("listed");
    assert_eq!(active.protocol_type, "consumer");
    assert_eq!(active.state.as_deref(), Some("Stable"));

    let described = admin
        .describe_groups(&[
            "active".to_string(),
            "reader".to_string(),
            "ghost".to_string(),
        ])
        .await
        .expect("describe groups");
    assert_eq!(described.len(), 3);
    assert_eq!(described[0].state, "Stable");
    assert_eq!(described[0].protocol_type, "consumer");
    assert_eq!(described[0].members.len(), 1);
    assert_eq!(described[0].members[0].member_id, member);
    assert_eq!(described[1].state, "Empty");
    assert!(described[1].members.is_empty());
    assert_eq!(described[2].state, "Dead");

    let started = Instant::now();
    let err = admin
        .commit_group_offsets("active", &offsets)
        .await
        .expect_err("group has members");
    assert!(
        matches!(
            err,
            Error::Kafka {
                api: "OffsetCommit",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(1), "not retried");
}

/// Joins `group` as the only member of a consumer group and completes the rebalance.
async fn join_and_sync(client: &Client, group: &str) -> String {
    let target = Target::GroupCoordinator(group.to_string());
    let join = |member_id: String| {
        let client = client.clone();
        let target = target.clone();
        async move {
            client
                .send(target, |v| {
                    let mut req = JoinGroupRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                        .with_session_timeout_ms(30_000)
                        .with_member_id(StrBytes::from_string(member_id.clone()))
                        .with_protocol_type(StrBytes::from_static_str("consumer"))
                        .with_protocols(vec![JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_static_str("range"))
                            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0\0\0"))]);
                    if v >= 1 {
                        req = req.with_rebalance_timeout_ms(30_000);
                    }
                    req
                })
                .await
                .expect("join")
        }
    };
    let (_, mut resp) = join(String::new()).await;
    if resp.error_code == ResponseError::MemberIdRequired.code() {
        (_, resp) = join(resp.member_id.to_string()).await;
    }
    assert_eq!(resp.error_code, 0, "join");
    let member = resp.member_id.to_string();
    let generation = resp.generation_id;
    let (_, sync) = client
        .send(target.clone(), |v| {
            let mut req = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(member.clone()))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member.clone()))
                    .with_assignment(Bytes::new())]);
            if v >= 5 {
                req = req
                    .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                    .with_protocol_name(Some(StrBytes::from_static_str("range")));
            }
            req
        })
        .await
        .expect("sync");
    assert_eq!(sync.error_code, 0, "sync");
    member
}

#[tokio::test]
async fn unreachable_bootstrap_fails_clearly_after_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut config = ClientConfig::new([addr.clone()]);
    config.retries = 2;
    config.retry_backoff = Duration::from_millis(10);
    config.retry_backoff_max = Duration::from_millis(20);
    config.connect_timeout = Duration::from_secs(2);
    let err = Client::connect(config).await.expect_err("nothing listens");
    match &err {
        Error::Connect { addr: a, source } => {
            assert_eq!(a, &addr);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(err.to_string().contains(&addr), "{err}");

    let empty: [&str; 0] = [];
    assert!(matches!(
        Client::connect(ClientConfig::new(empty)).await,
        Err(Error::NoBrokerAvailable)
    ));
}

#[tokio::test]
async fn reconnects_after_the_broker_restarts() {
    // A broken connection is replaced on the next call: stop the broker, expect a connection
    // error, start a new one on the same port, expect success.
    let mut broker = TestBroker::start(&[]).await;
    let port = broker.addr.rsplit(':').next().expect("port").to_string();
    let mut config = broker.config();
    config.retries = 0;
    let client = Client::connect(config).await.expect("connect");
    client.metadata(None).await.expect("metadata");
    broker.stop().await;
    let err = client.metadata(None).await.expect_err("broker down");
    assert!(err.is_retriable(), "{err:?}");
    let _again =
        crate::common::wait_for("a broker on the same port", Duration::from_secs(10), || {
            let port = port.clone();
            async move {
                let dir = tempfile::tempdir().ok()?;
                let props = vec![
                    "node.id=1".to_string(),
                    format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                    format!("log.dirs={}", dir.path().display()),
                ];
                let cfg = strata_broker::BrokerConfig::load(None, &props).ok()?;
                let handle = strata_broker::start(cfg).await.ok()?;
                Some((handle, dir))
            }
        })
        .await;
    client
        .metadata(None)
        .await
        .expect("metadata after reconnect");
}

#[tokio::test]
async fn acl_calls_are_security_disabled_without_an_authorizer() {
    // Kafka without `authorizer.class.name` answers every ACL call SECURITY_DISABLED, and so
    // does Strata: callers (the mirror's ACL sync) tell "no ACLs here" from a failure.
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    let err = client
        .admin()
        .describe_acls()
        .await
        .expect_err("no authorizer");
    assert!(err.is(ResponseError::SecurityDisabled), "{err:?}");
    assert!(
        err.to_string().contains("No Authorizer is configured"),
        "{err}"
    );
    let acl = strata_client::AclBinding {
        resource_type: strata_client::AclResourceType::Topic,
        resource_name: "orders".into(),
        pattern_type: strata_client::AclPatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: strata_client::AclOperation::Read,
        permission: strata_client::AclPermission::Allow,
    };
    let err = client
        .admin()
        .create_acls(std::slice::from_ref(&acl))
        .await
        .expect_err("no authorizer");
    assert!(err.is(ResponseError::SecurityDisabled), "{err:?}");
    let err = client
        .admin()
        .delete_acls(&[acl])
        .await
        .expect_err("no authorizer");
    assert!(err.is(ResponseError::SecurityDisabled), "{err:?}");
}

#[tokio::test]
async fn acls_round_trip_through_the_authorizer() {
    // With Kafka's authorizer class the ACL APIs are served: created bindings are listed,
    // creating one twice keeps one, a delete filter removes what it matches, and Kafka's checks
    // of a new binding refuse a MATCH pattern.
    let broker = TestBroker::start(&[
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:ANONYMOUS",
    ])
    .await;
    let client = broker.client().await;
    let admin = client.admin();
    let acl = |name: &str, op| strata_client::AclBinding {
        resource_type: strata_client::AclResourceType::Topic,
        resource_name: name.into(),
        pattern_type: strata_client::AclPatternType::Prefixed,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op,
        permission: strata_client::AclPermission::Allow,
    };
    let read = acl("orders-", strata_client::AclOperation::Read);
    let write = acl("payments-", strata_client::AclOperation::Write);
    admin
        .create_acls(&[read.clone(), write.clone(), read.clone()])
        .await
        .expect("create");
    assert_eq!(
        admin.describe_acls().await.expect("describe"),
        vec![read.clone(), write.clone()]
    );
    assert_eq!(
        admin
            .delete_acls(std::slice::from_ref(&write))
            .await
            .unwrap(),
        1
    );
    assert_eq!(admin.describe_acls().await.unwrap(), vec![read.clone()]);
    let mut bad = read;
    bad.pattern_type = strata_client::AclPatternType::Match;
    let err = admin
        .create_acls(&[bad])
        .await
        .expect_err("MATCH is a filter");
    assert!(err.is(ResponseError::InvalidRequest), "{err:?}");
    assert!(
        err.to_string().contains("Invalid patternType MATCH"),
        "{err}"
    );
}

#[tokio::test]
async fn acl_management_needs_the_cluster_permissions() {
    // Without a super user or an ACL, the anonymous principal may not list or change ACLs.
    let broker = TestBroker::start(&[
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    ])
    .await;
    let client = broker.client().await;
    let admin = client.admin();
    let err = admin.describe_acls().await.expect_err("not authorized");
    assert!(err.is(ResponseError::ClusterAuthorizationFailed), "{err:?}");
}
