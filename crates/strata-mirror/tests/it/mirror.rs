//! End-to-end flows between two in-process Strata brokers: content and order, topic sync,
//! restart resume, group offset translation, and loop prevention in active-active setups.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use strata_client::OffsetSpec;
use strata_flow::NamingMode;
use strata_mirror::{Mirror, RunOptions};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_in_partition_order_with_keys_headers_timestamps() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(
        &src,
        "orders",
        4,
        &[("retention.ms", "86400000"), ("min.insync.replicas", "1")],
    )
    .await;
    produce(&src, "orders", 4, 0, 2000).await;

    let mirror = Mirror::start(
        flow(("east", &source), ("west", &target)),
        RunOptions {
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..RunOptions::default()
        },
    )
    .await
    .expect("mirror starts");
    wait_for("2000 records on the target", WAIT, || async {
        (count(&dst, "east.orders").await >= 2000).then_some(())
    })
    .await;
    let want = read_all(&src, "orders").await;
    let got = read_all(&dst, "east.orders").await;
    assert_eq!(got.len(), 4, "same partition count");
    for (p, records) in &want {
        let mirrored: Vec<_> = got[p].iter().map(content).collect();
        let original: Vec<_> = records.iter().map(content).collect();
        assert_eq!(mirrored, original, "partition {p}");
    }

    // Configs: the topic's own overrides are copied, broker-local ones are not.
    let configs = dst
        .admin()
        .describe_topic_configs("east.orders")
        .await
        .unwrap();
    let value = |name: &str| {
        configs
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.value.clone())
    };
    assert_eq!(value("retention.ms").as_deref(), Some("86400000"));
    assert_ne!(
        configs
            .iter()
            .find(|c| c.name == "min.insync.replicas")
            .map(|c| c.source),
        Some(strata_client::ConfigSource::DynamicTopic)
    );

    // A config change and a partition increase on the source follow to the target.
    src.admin()
        .incremental_alter_topic_configs(
            "orders",
            &[strata_client::ConfigOp::Set(
                "retention.ms".into(),
                "3600000".into(),
            )],
        )
        .await
        .unwrap();
    src.admin().create_partitions("orders", 6).await.unwrap();
    produce(&src, "orders", 6, 10_000, 60).await;
    wait_for("partition increase and config change", WAIT, || async {
        let configs = dst
            .admin()
            .describe_topic_configs("east.orders")
            .await
            .ok()?;
        let retention = configs
            .iter()
            .find(|c| c.name == "retention.ms")?
            .value
            .clone();
        let n = count(&dst, "east.orders").await;
        (retention.as_deref() == Some("3600000") && n >= 2060).then_some(())
    })
    .await;
    let got = read_all(&dst, "east.orders").await;
    assert_eq!(got.len(), 6);
    assert_eq!(got[&5].len(), 10, "records of the new partition");

    // Heartbeats of this flow reach the target's `heartbeats` topic in MM2's layout.
    wait_for("a heartbeat", WAIT, || async {
        (count(&dst, "heartbeats").await >= 1).then_some(())
    })
    .await;
    let beats = read_all(&dst, "heartbeats").await;
    let beat = beats.values().flatten().next().expect("one heartbeat");
    let beat = strata_mirror::Heartbeat::decode(
        beat.key.as_deref().unwrap_or_default(),
        beat.value.as_deref().unwrap_or_default(),
    )
    .unwrap();
    assert_eq!(
        (beat.source_alias.as_str(), beat.target_alias.as_str()),
        ("east", "west")
    );

    // Metrics are served.
    let text = mirror.metrics().encode();
    assert!(text.contains("strata_mirror_records_total{"), "{text}");
    assert!(text.contains("strata_mirror_records_lag{"), "{text}");
    let addr = mirror.metrics_addr.expect("metrics served");
    let served = http_get(addr, "/metrics").await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(
        served.contains("strata_mirror_replication_latency_ms{"),
        "{served}"
    );
    mirror.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_mirror_resumes_without_loss() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(&src, "events", 4, &[]).await;
    produce(&src, "events", 4, 0, 1000).await;
    let config = flow(("a", &source), ("b", &target));

    let mirror = Mirror::start(config.clone(), RunOptions::default())
        .await
        .unwrap();
    wait_for("first 1000", WAIT, || async {
        (count(&dst, "a.events").await >= 1000).then_some(())
    })
    .await;
    mirror.shutdown().await;

    produce(&src, "events", 4, 1000, 1000).await;
    let mirror = Mirror::start(config, RunOptions::default()).await.unwrap();
    wait_for("all 2000 after restart", WAIT, || async {
        (count(&dst, "a.events").await >= 2000).then_some(())
    })
    .await;
    mirror.shutdown().await;

    let want = read_all(&src, "events").await;
    let got = read_all(&dst, "a.events").await;
    let mut duplicates = 0;
    for (p, records) in &want {
        let original: Vec<_> = records.iter().map(content).collect();
        let mut mirrored: Vec<_> = got[p].iter().map(content).collect();
        duplicates += mirrored.len() - original.len();
        mirrored.dedup();
        assert_eq!(
            mirrored, original,
            "partition {p}: nothing lost, order kept"
        );
    }
    println!("duplicates after a graceful restart: {duplicates}");
    assert_eq!(
        duplicates, 0,
        "a graceful stop commits what the target acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_are_translated_and_never_ahead() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(&src, "pay", 2, &[]).await;
    produce(&src, "pay", 2, 0, 600).await;
    let config = flow(("a", &source), ("b", &target));
    let lag_max = config.mirror.offset_lag_max;
    let mirror = Mirror::start(config, RunOptions::default()).await.unwrap();
    wait_for("600 records", WAIT, || async {
        (count(&dst, "a.pay").await >= 600).then_some(())
    })
    .await;

    let committed: BTreeMap<(String, i32), i64> =
        [(("pay".to_string(), 0), 137), (("pay".to_string(), 1), 300)].into();
    src.admin()
        .commit_group_offsets("billing", &committed)
        .await
        .unwrap();
    let translated = wait_for("translated offsets on the target", WAIT, || async {
        let o = dst.admin().fetch_group_offsets("billing").await.ok()?;
        (o.len() == 2).then_some(o)
    })
    .await;
    for ((_, p), c) in &committed {
        let t = translated[&("a.pay".to_string(), *p)];
        // No duplicates were written, so the exact equivalent of source offset c is c.
        assert!(t <= *c, "partition {p}: {t} must not be ahead of {c}");
        assert!(
            t >= c - lag_max,
            "partition {p}: {t} within one sync spacing of {c}"
        );
        assert_eq!(mirror.translate("pay", *p, *c), Some(t));
    }

    // The checkpoints topic holds MM2-format checkpoints for the group.
    let checkpoints = read_all(&dst, "a.checkpoints.internal").await;
    let decoded: Vec<_> = checkpoints
        .values()
        .flatten()
        .filter_map(|r| {
            strata_mirror::Checkpoint::decode(r.key.as_deref()?, r.value.as_deref()?).ok()
        })
        .collect();
    assert!(decoded
        .iter()
        .any(|c| c.group == "billing" && c.topic == "a.pay" && c.upstream == 137));

    // A target offset the group already passed is never moved back.
    let ahead: BTreeMap<(String, i32), i64> = [(("a.pay".to_string(), 0), 200)].into();
    dst.admin()
        .commit_group_offsets("billing", &ahead)
        .await
        .unwrap();
    src.admin()
        .commit_group_offsets("billing", &[(("pay".to_string(), 0), 150)].into())
        .await
        .unwrap();
    // Wait for a checkpoint of 150 to be written, then check the target kept 200.
    wait_for("checkpoint of 150", WAIT, || async {
        let cps = read_all(&dst, "a.checkpoints.internal").await;
        cps.values()
            .flatten()
            .any(|r| {
                r.key
                    .as_deref()
                    .zip(r.value.as_deref())
                    .and_then(|(k, v)| strata_mirror::Checkpoint::decode(k, v).ok())
                    .is_some_and(|c| c.upstream == 150)
            })
            .then_some(())
    })
    .await;
    let after = dst.admin().fetch_group_offsets("billing").await.unwrap();
    assert_eq!(after[&("a.pay".to_string(), 0)], 200);
    mirror.shutdown().await;
}

/// Waits until `topic` has `n` records on both clients and both mirrors report no lag on it.
async fn settle(
    a: &strata_client::Client,
    b: &strata_client::Client,
    mirrors: [&strata_mirror::MirrorHandle; 2],
    topics: [&str; 2],
    n: usize,
) {
    wait_for("both sides settled", WAIT, || async {
        let counts = (count(a, topics[0]).await, count(b, topics[1]).await);
        let idle = mirrors.iter().all(|m| {
            let text = m.metrics().encode();
            let lags: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("strata_mirror_records_lag{") && !l.contains("heartbeats")
                })
                .collect();
            !lags.is_empty() && lags.iter().all(|l| l.ends_with(" 0"))
        });
        (counts == (n, n) && idle).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_active_active_never_loops() {
    let a = TestBroker::start(&[]).await;
    let b = TestBroker::start(&[]).await;
    let ca = a.client().await;
    let cb = b.client().await;
    create_topic(&ca, "events", 2, &[]).await;
    create_topic(&cb, "events", 2, &[]).await;
    produce(&ca, "events", 2, 0, 100).await;
    produce(&cb, "events", 2, 100, 50).await;
    let mut ab = flow(("a", &a), ("b", &b));
    ab.naming = NamingMode::Identity;
    let mut ba = flow(("b", &b), ("a", &a));
    ba.naming = NamingMode::Identity;
    let m1 = Mirror::start(ab, RunOptions::default()).await.unwrap();
    let m2 = Mirror::start(ba, RunOptions::default()).await.unwrap();
    settle(&ca, &cb, [&m1, &m2], ["events", "events"], 150).await;
    // More writes on both sides after the mirrors caught up.
    produce(&ca, "events", 2, 200, 20).await;
    produce(&cb, "events", 2, 300, 20).await;
    settle(&ca, &cb, [&m1, &m2], ["events", "events"], 190).await;
    let on_b = read_all(&cb, "events").await;
    let from_a = on_b
        .values()
        .flatten()
        .filter(|r| {
            r.headers.iter().any(|(k, v)| {
                k == strata_mirror::PROVENANCE_HEADER && v.as_deref() == Some(b"a".as_slice())
            })
        })
        .count();
    assert_eq!(from_a, 120, "every record from a carries its origin");
    m1.shutdown().await;
    m2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixed_active_active_never_loops() {
    let a = TestBroker::start(&[]).await;
    let b = TestBroker::start(&[]).await;
    let ca = a.client().await;
    let cb = b.client().await;
    create_topic(&ca, "orders", 2, &[]).await;
    create_topic(&cb, "orders", 2, &[]).await;
    produce(&ca, "orders", 2, 0, 80).await;
    produce(&cb, "orders", 2, 100, 40).await;
    let m1 = Mirror::start(flow(("a", &a), ("b", &b)), RunOptions::default())
        .await
        .unwrap();
    // a.orders now exists on b; b -> a must not take it back.
    let m2 = Mirror::start(flow(("b", &b), ("a", &a)), RunOptions::default())
        .await
        .unwrap();
    let mirrored: Vec<String> = m2.mirrored_topics().into_iter().map(|(s, _)| s).collect();
    assert!(mirrored.contains(&"orders".to_string()), "{mirrored:?}");
    assert!(!mirrored.contains(&"a.orders".to_string()), "{mirrored:?}");
    wait_for("both remote topics complete", WAIT, || async {
        (count(&cb, "a.orders").await == 80 && count(&ca, "b.orders").await == 40).then_some(())
    })
    .await;
    let names = |c: &strata_client::Client| {
        let c = c.clone();
        async move {
            c.metadata(None)
                .await
                .unwrap()
                .topics
                .into_keys()
                .collect::<Vec<_>>()
        }
    };
    for t in names(&ca).await.into_iter().chain(names(&cb).await) {
        assert!(
            !t.starts_with("a.b.") && !t.starts_with("b.a."),
            "looped topic {t}"
        );
    }
    assert_eq!(count(&ca, "orders").await, 80);
    assert_eq!(count(&cb, "orders").await, 40);
    let ends = ca
        .list_offsets("b.orders", &[0, 1], OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(ends.values().map(|l| l.offset).sum::<i64>(), 40);
    m1.shutdown().await;
    m2.shutdown().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_split_a_flow_by_ordinal() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(&src, "logs", 8, &[]).await;
    produce(&src, "logs", 8, 0, 800).await;
    let config = flow(("a", &source), ("b", &target));
    let mut handles = Vec::new();
    for ordinal in 0..2 {
        let options = RunOptions {
            assignment: strata_mirror::PartitionAssignment::new(ordinal, 2, 2).unwrap(),
            metrics_addr: None,
        };
        handles.push(Mirror::start(config.clone(), options).await.unwrap());
    }
    wait_for("800 records", WAIT, || async {
        (count(&dst, "a.logs").await >= 800).then_some(())
    })
    .await;
    for h in handles {
        h.shutdown().await;
    }
    let want = read_all(&src, "logs").await;
    let got = read_all(&dst, "a.logs").await;
    for (p, records) in &want {
        let original: Vec<_> = records.iter().map(content).collect();
        let mirrored: Vec<_> = got[p].iter().map(content).collect();
        assert_eq!(mirrored, original, "partition {p} mirrored exactly once");
    }
}
