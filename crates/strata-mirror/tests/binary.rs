//! The `strata-mirror` binary: version, clear configuration errors, and a flow driven by a
//! MirrorMaker 2 properties file that stops gracefully on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_strata-mirror");

#[test]
fn version_and_config_errors() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("strata-mirror"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.yaml");
    std::fs::write(
        &path,
        "source: {alias: a, bootstrapServers: 'x:1'}\ntarget: {alias: b, bootstrapServers: 'y:1'}\noffsets: Preserve\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not yet supported"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mm2_properties_drive_a_flow_and_sigterm_stops_it() {
    let source = TestBroker::start().await;
    let target = TestBroker::start().await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(&src, "clicks", 3, &[]).await;
    produce(&src, "clicks", 3, 0, 300).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mm2.properties");
    std::fs::write(
        &path,
        format!(
            "clusters = us, eu\nus.bootstrap.servers = {}\neu.bootstrap.servers = {}\n\
             us->eu.enabled = true\nus->eu.topics = clicks\n\
             emit.checkpoints.interval.seconds = 1\nrefresh.topics.interval.seconds = 1\n\
             eu.producer.linger.ms = 1\nus.consumer.fetch.max.wait.ms = 100\n",
            source.addr, target.addr
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--mm2-properties")
        .arg(&path)
        .args(["--source", "us", "--target", "eu"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("300 records on eu", Duration::from_secs(20), || async {
        (count(&dst, "us.clicks").await >= 300).then_some(())
    })
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_for("exit after SIGTERM", Duration::from_secs(20), || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(status.success(), "{status:?}");
    // Progress was committed on the source before exiting.
    let progress = src
        .admin()
        .fetch_group_offsets("strata-mirror-us-eu")
        .await
        .unwrap();
    assert_eq!(progress.values().sum::<i64>(), 300, "{progress:?}");
}
