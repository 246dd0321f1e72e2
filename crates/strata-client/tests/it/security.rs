//! strata-client against SASL listeners of an in-process Strata broker: PLAIN and SCRAM users,
//! credentials managed through the admin API, refusals that are not retried.

use std::time::Duration;

use strata_client::{Client, Error, SaslCredentials, SaslMechanism, Security, SecurityProtocol};
use strata_testkit::{free_port, wait_for, TestBroker};

async fn sasl_broker() -> (TestBroker, String) {
    let sasl_port = free_port();
    let plain_port = free_port();
    let broker = TestBroker::start(&[
        &format!("listeners=PLAINTEXT://127.0.0.1:{plain_port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin=\"admin-secret\";",
        "connection.failed.authentication.delay.ms=0",
    ])
    .await;
    (broker, format!("127.0.0.1:{sasl_port}"))
}

fn as_user(
    broker: &TestBroker,
    addr: &str,
    mechanism: SaslMechanism,
    user: &str,
    pw: &str,
) -> strata_client::ClientConfig {
    let mut c = broker.config();
    c.bootstrap = vec![addr.to_string()];
    c.retries = 1;
    c.security = Security {
        protocol: SecurityProtocol::SaslPlaintext,
        tls: None,
        sasl: Some(SaslCredentials {
            mechanism,
            username: user.into(),
            password: pw.into(),
        }),
    };
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_scram_users_connect_and_wrong_passwords_do_not() {
    let (broker, addr) = sasl_broker().await;
    // PLAIN from the JAAS entry: metadata over the SASL listener names its endpoint.
    let admin_cfg = as_user(
        &broker,
        &addr,
        SaslMechanism::Plain,
        "admin",
        "admin-secret",
    );
    let client = Client::connect(admin_cfg)
        .await
        .expect("PLAIN admin connects");
    let admin = client.admin();
    admin
        .upsert_scram_credential("alice", SaslMechanism::ScramSha512, "alice-secret", 8192)
        .await
        .expect("SCRAM user created");
    let described = admin.describe_scram_credentials(&["alice"]).await.unwrap();
    assert_eq!(
        described,
        vec![("alice".to_string(), SaslMechanism::ScramSha512, 8192)]
    );

    // SCRAM-SHA-512 as alice: the client checks the broker's signature too.
    let alice = wait_for("alice to authenticate", Duration::from_secs(10), || {
        let cfg = as_user(
            &broker,
            &addr,
            SaslMechanism::ScramSha512,
            "alice",
            "alice-secret",
        );
        async move { Client::connect(cfg).await.ok() }
    })
    .await;
    alice
        .admin()
        .describe_scram_credentials(&["alice"])
        .await
        .expect("alice is served");

    for (mechanism, user, pw) in [
        (SaslMechanism::ScramSha512, "alice", "wrong"),
        (SaslMechanism::ScramSha512, "nobody", "x"),
        (SaslMechanism::Plain, "admin", "wrong"),
        (SaslMechanism::ScramSha256, "alice", "alice-secret"),
    ] {
        let err = Client::connect(as_user(&broker, &addr, mechanism, user, pw))
            .await
            .err()
            .unwrap_or_else(|| panic!("{mechanism:?} {user} connected"));
        assert!(matches!(err, Error::Authentication(_)), "{err}");
        assert!(!err.is_retriable());
        assert!(!err.to_string().contains(pw) || pw == "x", "{err}");
    }

    // A deleted credential stops working.
    admin
        .delete_scram_credential("alice", SaslMechanism::ScramSha512)
        .await
        .unwrap();
    assert!(admin
        .describe_scram_credentials(&[])
        .await
        .unwrap()
        .is_empty());
    let Err(err) = Client::connect(as_user(
        &broker,
        &addr,
        SaslMechanism::ScramSha512,
        "alice",
        "alice-secret",
    ))
    .await
    else {
        panic!("a deleted credential connected");
    };
    assert!(matches!(err, Error::Authentication(_)), "{err}");
}
