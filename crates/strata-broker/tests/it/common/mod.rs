//! The real `strata-broker` binary on loopback, driven through raw sockets: frames are built with
//! `kafka-protocol` where they are valid and by hand where they must not be.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A broker process with its own log directory, killed when dropped.
pub struct BrokerProcess {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl BrokerProcess {
    /// Starts the binary with `props` on top of a single-node configuration and waits until it
    /// answers ApiVersions.
    pub fn start(props: &[(&str, &str)]) -> BrokerProcess {
        let port = free_port();
        let config = format!(
            "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:{port}\nadvertised.listeners=PLAINTEXT://127.0.0.1:{port}\noffsets.topic.num.partitions=2\n"
        );
        BrokerProcess::start_with(port, config, props)
    }

    /// Starts a one-node cluster whose node has the controller role (`process.roles`
    /// broker,controller, a CONTROLLER listener on its own port) and waits until it serves
    /// clients; returns it with the controller listener's port.
    pub fn start_voter(props: &[(&str, &str)]) -> (BrokerProcess, u16) {
        let port = free_port();
        let controller = free_port();
        let config = format!(
            "node.id=1\nprocess.roles=broker,controller\ncontroller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\nlistener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             cluster.id=MkU3OEVBNTcwNTJENDM2Qg\noffsets.topic.replication.factor=1\noffsets.topic.num.partitions=2\n"
        );
        (BrokerProcess::start_with(port, config, props), controller)
    }

    fn start_with(port: u16, mut config: String, props: &[(&str, &str)]) -> BrokerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        config.push_str(&format!("log.dirs={}\n", dir.path().join("data").display()));
        for (k, v) in props {
            config.push_str(&format!("{k}={v}\n"));
        }
        let config_path = dir.path().join("server.properties");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("broker.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_strata-broker"))
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn strata-broker");
        let broker = BrokerProcess { child, port, dir };
        wait_for(
            Duration::from_secs(30),
            "the broker to answer ApiVersions",
            || broker.alive_and_answering(),
        );
        broker
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// The process runs and a fresh connection gets an ApiVersions response.
    pub fn alive_and_answering(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(self.addr()) else {
            return false;
        };
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
        conn.write_all(&api_versions_frame(99)).is_ok()
            && matches!(read_response(&mut conn), Reply::Frame(_))
    }

    pub fn connect(&self) -> TcpStream {
        let conn = TcpStream::connect(self.addr()).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        conn.set_nodelay(true).ok();
        conn
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Retries `check` every 50 ms until it holds; panics with `what` at the deadline.
pub fn wait_for(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a request got back.
#[derive(Debug)]
pub enum Reply {
    /// A response frame (without its length prefix).
    Frame(Bytes),
    /// The broker closed the connection.
    Closed,
    /// Nothing within the read timeout.
    Silent,
}

pub fn read_response(conn: &mut TcpStream) -> Reply {
    let mut size = [0u8; 4];
    match conn.read_exact(&mut size) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            return Reply::Silent
        }
        Err(_) => return Reply::Closed,
    }
    let size = i32::from_be_bytes(size);
    let mut body = vec![0u8; size.clamp(0, 64 << 20) as usize];
    match conn.read_exact(&mut body) {
        Ok(()) => Reply::Frame(Bytes::from(body)),
        Err(_) => Reply::Closed,
    }
}

/// `[size][header][body]` with a real request header of `key` at `version`.
pub fn frame(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut header = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("strata-broker-tests")))
        .encode(&mut header, key.request_header_version(version))
        .expect("header");
    let mut out = BytesMut::new();
    out.put_i32((header.len() + body.len()) as i32);
    out.put_slice(&header);
    out.put_slice(body);
    out.to_vec()
}

/// A request encoded with `kafka-protocol`.
pub fn encoded<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, req: &T) -> Vec<u8> {
    let mut body = BytesMut::new();
    req.encode(&mut body, version).expect("encode");
    frame(key, version, correlation_id, &body)
}

pub fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
    frame(ApiKey::ApiVersions, 0, correlation_id, &[])
}

/// Sends `bytes` and reads what comes back.
pub fn send(conn: &mut TcpStream, bytes: &[u8]) -> Reply {
    if conn.write_all(bytes).is_err() {
        return Reply::Closed;
    }
    read_response(conn)
}

/// Sends `req` as `key` at `version` and decodes its response, checking the correlation id.
/// Panics when the broker closes the connection or stays silent.
pub fn call<Req: Encodable, Resp: Decodable>(
    conn: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    static NEXT_CORRELATION_ID: AtomicI32 = AtomicI32::new(1000);
    let id = NEXT_CORRELATION_ID.fetch_add(1, Ordering::Relaxed);
    let mut body = match send(conn, &encoded(key, version, id, req)) {
        Reply::Frame(body) => body,
        other => panic!("{key:?} v{version}: no response ({other:?})"),
    };
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .expect("response header");
    assert_eq!(
        header.correlation_id, id,
        "{key:?} v{version}: correlation id"
    );
    Resp::decode(&mut body, version).expect("response body")
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Creates `name` with `partitions` partitions and topic `configs`; panics unless it succeeds.
pub fn create_topic(broker: &BrokerProcess, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            )]);
    let resp: CreateTopicsResponse = call(&mut broker.connect(), ApiKey::CreateTopics, 4, &req);
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

/// A plain record `key` → `value` (no headers, a fixed timestamp).
pub fn record(key: &str, value: Vec<u8>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    }
}

/// A v2 record batch of `records` encoded by kafka-protocol.
pub fn encode_batch(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode batch");
    buf.freeze()
}
