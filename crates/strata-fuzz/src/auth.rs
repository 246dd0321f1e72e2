//! Handshake fuzzing over the wire: SASL exchanges (SaslHandshake, then SaslAuthenticate with
//! PLAIN and SCRAM tokens) and TLS handshakes against a running broker's SASL and TLS listeners,
//! each session with one fault at one step: mutated frames and tokens, wrong secrets, steps out
//! of order, truncation, a mutated ClientHello or client Finished, a corrupted record, garbage
//! and plaintext on a TLS port. Every tenth session is a valid one (a control), and every few
//! sessions each worker checks that a valid client still gets in; the run fails when a control
//! or a liveness probe does not authenticate, or when a session that must be refused (a wrong
//! password, an unknown user, a wrong proof, a request before authenticating, a corrupted
//! record) is served. The sessions depend only on the seed (SCRAM nonces aside), so Strata and
//! Apache Kafka can be given the same ones.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader, RequestKind, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use strata_client::{SaslCredentials, SaslExchange, SaslMechanism};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::mutate::Mutator;

/// Settings of a run.
#[derive(Clone)]
pub struct AuthConfig {
    /// A SASL_PLAINTEXT listener: SASL faults.
    pub sasl: Option<String>,
    /// An SSL or SASL_SSL listener: TLS faults.
    pub tls: Option<String>,
    /// The TLS listener is SASL_SSL: a session authenticates after the handshake.
    pub tls_sasl: bool,
    /// The client's TLS configuration (trusting the broker's CA).
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// A user whose password works with PLAIN and both SCRAM mechanisms.
    pub user: String,
    pub password: String,
    pub sessions: usize,
    pub seed: u64,
    pub concurrency: usize,
    /// How long one read waits (a failed authentication is answered after the broker's delay).
    pub timeout: Duration,
    /// Each worker checks liveness (a valid session on every listener) every this many sessions.
    pub probe_every: usize,
}

/// Which listener a session goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Layer {
    Sasl,
    Tls,
}

/// The one fault of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Fault {
    /// A valid session: it must authenticate.
    Control,
    /// The SaslHandshake frame mutated.
    HandshakeFrame,
    /// The mechanism's name mutated in a well-formed SaslHandshake.
    MechanismName,
    /// One SaslAuthenticate frame mutated.
    AuthenticateFrame,
    /// One token mutated in a well-formed SaslAuthenticate.
    Token,
    /// A valid exchange with a password one character off: refused.
    WrongPassword,
    /// A valid exchange for a user that does not exist: refused.
    UnknownUser,
    /// SCRAM's client proof with one bit flipped (PLAIN: a wrong password): refused.
    WrongProof,
    /// SaslAuthenticate without a SaslHandshake first.
    SkipHandshake,
    /// A second SaslHandshake before the tokens: refused (Kafka takes one handshake per
    /// authentication).
    HandshakeTwice,
    /// Metadata before authenticating: never served.
    RequestFirst,
    /// Part of one frame of the exchange, then the client's side closes.
    TruncatedFrame,
    /// The ClientHello flight mutated.
    HelloMutated,
    /// The client's second flight (its Finished) mutated.
    FinishedMutated,
    /// Part of the ClientHello, then the client's side closes.
    HelloTruncated,
    /// After the handshake, a request whose TLS record has a bit flipped: never served.
    RecordMutated,
    /// Random bytes instead of a ClientHello.
    Garbage,
    /// A Kafka request in the clear on the TLS port: never answered as Kafka.
    PlaintextFrame,
    /// A valid handshake whose ClientHello is written a few bytes at a time: it must
    /// authenticate.
    Fragmented,
}

const SASL_FAULTS: [Fault; 11] = [
    Fault::HandshakeFrame,
    Fault::MechanismName,
    Fault::AuthenticateFrame,
    Fault::Token,
    Fault::WrongPassword,
    Fault::UnknownUser,
    Fault::WrongProof,
    Fault::SkipHandshake,
    Fault::HandshakeTwice,
    Fault::RequestFirst,
    Fault::TruncatedFrame,
];

const TLS_FAULTS: [Fault; 7] = [
    Fault::HelloMutated,
    Fault::FinishedMutated,
    Fault::HelloTruncated,
    Fault::RecordMutated,
    Fault::Garbage,
    Fault::PlaintextFrame,
    Fault::Fragmented,
];

impl Fault {
    /// Sessions that must end authenticated (served).
    pub fn must_authenticate(self) -> bool {
        matches!(self, Fault::Control | Fault::Fragmented)
    }

    /// Sessions that must never be served.
    pub fn must_not_authenticate(self) -> bool {
        matches!(
            self,
            Fault::WrongPassword
                | Fault::UnknownUser
                | Fault::WrongProof
                | Fault::SkipHandshake
                | Fault::HandshakeTwice
                | Fault::RequestFirst
                | Fault::RecordMutated
                | Fault::PlaintextFrame
        )
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Outcome {
    /// A request that needs an authenticated connection was served.
    Authenticated,
    /// The broker answered with an error code or a TLS alert.
    Refused,
    /// The broker answered the faulty step without an error and the session stopped there.
    Answered,
    /// The client's own TLS stack refused the broker's answer (a mutated flight leaves the two
    /// sides with different transcripts).
    Failed,
    /// The connection was closed without an answer.
    Closed,
    /// Nothing within the timeout.
    NoAnswer,
}

/// A session whose outcome broke a rule.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub session: usize,
    pub layer: Layer,
    pub fault: Fault,
    pub mechanism: &'static str,
    pub outcome: Outcome,
}

/// The outcome of a run.
#[derive(Debug, Serialize)]
pub struct AuthReport {
    pub sessions: usize,
    pub seed: u64,
    pub seconds: f64,
    /// Layer and fault → outcome → sessions.
    pub outcomes: BTreeMap<String, BTreeMap<String, usize>>,
    pub probes: usize,
    pub failed_probes: usize,
    pub findings: Vec<Finding>,
}

/// One session: where, which fault, which mechanism and the seed of its mutations.
#[derive(Debug, Clone, Copy)]
struct Plan {
    index: usize,
    layer: Layer,
    fault: Fault,
    mechanism: SaslMechanism,
    seed: u64,
}

const MECHANISMS: [SaslMechanism; 3] = [
    SaslMechanism::Plain,
    SaslMechanism::ScramSha256,
    SaslMechanism::ScramSha512,
];

fn plans(config: &AuthConfig) -> Vec<Plan> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let layers: Vec<Layer> = [
        config.sasl.as_ref().map(|_| Layer::Sasl),
        config.tls.as_ref().map(|_| Layer::Tls),
    ]
    .into_iter()
    .flatten()
    .collect();
    (0..config.sessions)
        .map(|index| {
            let layer = layers[rng.random_range(0..layers.len())];
            let fault = if index % 10 == 0 {
                Fault::Control
            } else if layer == Layer::Sasl {
                SASL_FAULTS[rng.random_range(0..SASL_FAULTS.len())]
            } else {
                TLS_FAULTS[rng.random_range(0..TLS_FAULTS.len())]
            };
            Plan {
                index,
                layer,
                fault,
                mechanism: MECHANISMS[rng.random_range(0..MECHANISMS.len())],
                seed: rng.random(),
            }
        })
        .collect()
}

/// Runs the sessions; each worker takes every n-th.
pub async fn run(config: &AuthConfig) -> AuthReport {
    let all = plans(config);
    let start = Instant::now();
    let workers = config.concurrency.max(1);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mine: Vec<Plan> = all
            .iter()
            .copied()
            .filter(|p| p.index % workers == w)
            .collect();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::with_capacity(mine.len());
            let (mut probes, mut failed) = (0, 0);
            for (n, plan) in mine.into_iter().enumerate() {
                if n > 0 && n % config.probe_every == 0 {
                    probes += 1;
                    if !probe(&config).await {
                        failed += 1;
                        break;
                    }
                }
                results.push((plan, session(&config, &plan).await));
            }
            (results, probes, failed)
        }));
    }
    let mut outcomes: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut findings = Vec::new();
    let (mut probes, mut failed_probes) = (0, 0);
    for t in tasks {
        let Ok((results, p, f)) = t.await else {
            failed_probes += 1;
            continue;
        };
        probes += p;
        failed_probes += f;
        for (plan, outcome) in results {
            *outcomes
                .entry(format!("{:?} {:?}", plan.layer, plan.fault))
                .or_default()
                .entry(format!("{outcome:?}"))
                .or_default() += 1;
            let authenticated = outcome == Outcome::Authenticated;
            if (plan.fault.must_authenticate() && !authenticated)
                || (plan.fault.must_not_authenticate() && authenticated)
            {
                findings.push(Finding {
                    session: plan.index,
                    layer: plan.layer,
                    fault: plan.fault,
                    mechanism: plan.mechanism.name(),
                    outcome,
                });
            }
        }
    }
    // A last probe after everything: valid clients must still get in.
    probes += 1;
    if !probe(config).await {
        failed_probes += 1;
    }
    findings.sort_by_key(|f| f.session);
    AuthReport {
        sessions: all.len(),
        seed: config.seed,
        seconds: start.elapsed().as_secs_f64(),
        outcomes,
        probes,
        failed_probes,
        findings,
    }
}

/// How long each read of a session that must authenticate waits (controls and probes).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// A valid session on every listener.
async fn probe(config: &AuthConfig) -> bool {
    for layer in [Layer::Sasl, Layer::Tls] {
        let address = match layer {
            Layer::Sasl => &config.sasl,
            Layer::Tls => &config.tls,
        };
        if address.is_none() {
            continue;
        }
        let plan = Plan {
            index: 0,
            layer,
            fault: Fault::Control,
            mechanism: SaslMechanism::ScramSha256,
            seed: 0,
        };
        if session(config, &plan).await != Outcome::Authenticated {
            return false;
        }
    }
    true
}

async fn session(config: &AuthConfig, plan: &Plan) -> Outcome {
    // A session that must get in waits longer for each answer: a busy machine must not turn a
    // slow answer into a finding (a faulty one's silence is an outcome, "NoAnswer").
    let wider;
    let config = if plan.fault.must_authenticate() && config.timeout < CONTROL_TIMEOUT {
        wider = AuthConfig {
            timeout: CONTROL_TIMEOUT,
            ..config.clone()
        };
        &wider
    } else {
        config
    };
    let address = match plan.layer {
        Layer::Sasl => config.sasl.as_deref(),
        Layer::Tls => config.tls.as_deref(),
    };
    let Some(address) = address else {
        return Outcome::Closed;
    };
    let Ok(Ok(tcp)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(address)).await
    else {
        return Outcome::Closed;
    };
    let _ = tcp.set_nodelay(true);
    let mut m = Mutator::new(plan.seed);
    match plan.layer {
        Layer::Sasl => {
            let mut conn = Conn::Tcp(tcp, Vec::new());
            sasl_session(&mut conn, config, plan, &mut m).await
        }
        Layer::Tls => tls_session(tcp, address, config, plan, &mut m).await,
    }
}

// --- SASL -------------------------------------------------------------------------------------

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 2;
const METADATA_VERSION: i16 = 1;

/// One length-prefixed request frame.
fn request(key: ApiKey, version: i16, correlation: i32, body: RequestKind) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("strata-fuzz-auth")));
    let mut out = BytesMut::new();
    out.put_i32(0);
    header
        .encode(&mut out, key.request_header_version(version))
        .expect("a request header encodes");
    body.encode(&mut out, version).expect("a request encodes");
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.to_vec()
}

fn handshake_frame(mechanism: &str, correlation: i32) -> Vec<u8> {
    request(
        ApiKey::SaslHandshake,
        HANDSHAKE_VERSION,
        correlation,
        RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
        ),
    )
}

fn authenticate_frame(token: Vec<u8>, correlation: i32) -> Vec<u8> {
    request(
        ApiKey::SaslAuthenticate,
        AUTHENTICATE_VERSION,
        correlation,
        RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
        ),
    )
}

fn metadata_frame(correlation: i32) -> Vec<u8> {
    request(
        ApiKey::Metadata,
        METADATA_VERSION,
        correlation,
        RequestKind::Metadata(MetadataRequest::default()),
    )
}

/// A frame's body mutated, behind a length prefix that tells its size (one in fifty lies).
fn mutated_frame(frame: &[u8], m: &mut Mutator) -> Vec<u8> {
    let body = m.mutate(&frame[4..], &frame[4..]);
    let mut len = body.len() as i32;
    if m.rng().random_bool(0.02) {
        len = m.rng().random_range(0..=len * 2 + 8);
    }
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// What one read brought.
enum Recv {
    Frame(Bytes),
    Closed,
    NoAnswer,
    /// A TLS alert from the broker.
    Alert,
    /// The client's TLS stack refused what came.
    Failed,
}

impl Recv {
    fn outcome(self) -> Outcome {
        match self {
            Recv::Frame(_) => Outcome::Answered,
            Recv::Closed => Outcome::Closed,
            Recv::NoAnswer => Outcome::NoAnswer,
            Recv::Alert => Outcome::Refused,
            Recv::Failed => Outcome::Failed,
        }
    }
}

/// The error code of a SaslHandshake or SaslAuthenticate answer, and the server's token;
/// `None` when the frame is not such an answer.
fn sasl_answer(key: ApiKey, version: i16, mut body: Bytes) -> Option<(i16, Bytes)> {
    ResponseHeader::decode(&mut body, key.response_header_version(version)).ok()?;
    match key {
        ApiKey::SaslHandshake => SaslHandshakeResponse::decode(&mut body, version)
            .ok()
            .map(|r| (r.error_code, Bytes::new())),
        _ => SaslAuthenticateResponse::decode(&mut body, version)
            .ok()
            .map(|r| (r.error_code, r.auth_bytes)),
    }
}

/// Reads the answer to a faulty step: an error code is a refusal, anything else stops there.
async fn faulty_answer(conn: &mut Conn, key: ApiKey, version: i16, timeout: Duration) -> Outcome {
    match conn.recv(timeout).await {
        Recv::Frame(body) => match sasl_answer(key, version, body) {
            Some((code, _)) if code != 0 => Outcome::Refused,
            _ => Outcome::Answered,
        },
        other => other.outcome(),
    }
}

/// The answer to a well-formed SaslHandshake: `Err` with how the session ends unless the
/// broker took the mechanism.
async fn handshake_accepted(conn: &mut Conn, timeout: Duration) -> Result<(), Outcome> {
    match conn.recv(timeout).await {
        Recv::Frame(body) => match sasl_answer(ApiKey::SaslHandshake, HANDSHAKE_VERSION, body) {
            Some((0, _)) => Ok(()),
            Some(_) => Err(Outcome::Refused),
            None => Err(Outcome::Answered),
        },
        other => Err(other.outcome()),
    }
}

/// After an exchange: served when a Metadata request (which needs an authenticated
/// connection) is answered.
async fn served(conn: &mut Conn, correlation: i32, timeout: Duration) -> Outcome {
    if conn.send(&metadata_frame(correlation)).await.is_err() {
        return Outcome::Closed;
    }
    match conn.recv(timeout).await {
        Recv::Frame(_) => Outcome::Authenticated,
        other => other.outcome(),
    }
}

/// One character of `text` changed (a different one, so the result never equals it).
fn one_off(text: &str, rng: &mut StdRng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return "x".into();
    }
    let at = rng.random_range(0..chars.len());
    chars[at] = if chars[at] == 'x' { 'y' } else { 'x' };
    chars.into_iter().collect()
}

/// SCRAM's client-final message with one bit of its proof flipped.
fn flip_proof(token: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let text = String::from_utf8_lossy(token);
    let Some((head, proof)) = text.rsplit_once(",p=") else {
        return token.to_vec();
    };
    let Ok(mut proof) = B64.decode(proof) else {
        return token.to_vec();
    };
    if proof.is_empty() {
        return token.to_vec();
    }
    let at = rng.random_range(0..proof.len());
    proof[at] ^= 1 << rng.random_range(0..8);
    format!("{head},p={}", B64.encode(proof)).into_bytes()
}

async fn sasl_session(
    conn: &mut Conn,
    config: &AuthConfig,
    plan: &Plan,
    m: &mut Mutator,
) -> Outcome {
    let timeout = config.timeout;
    let mut creds = SaslCredentials {
        mechanism: plan.mechanism,
        username: config.user.clone(),
        password: config.password.clone(),
    };
    match plan.fault {
        Fault::WrongPassword => creds.password = one_off(&creds.password, m.rng()),
        Fault::WrongProof if plan.mechanism == SaslMechanism::Plain => {
            creds.password = one_off(&creds.password, m.rng())
        }
        Fault::UnknownUser => {
            creds.username = format!("{}-{}", creds.username, m.rng().random::<u32>())
        }
        Fault::RequestFirst => return served(conn, 1, timeout).await,
        _ => {}
    }
    let mut exchange = SaslExchange::new(&creds);
    let mut correlation = 1;
    // The step a per-step fault hits: 0 the handshake, 1.. the tokens.
    let tokens = if plan.mechanism == SaslMechanism::Plain {
        1
    } else {
        2
    };
    let faulty_token = m.rng().random_range(1..=tokens);
    let truncate_handshake = plan.fault == Fault::TruncatedFrame && m.rng().random_bool(0.3);

    if plan.fault != Fault::SkipHandshake {
        let mut frame = handshake_frame(plan.mechanism.name(), correlation);
        match plan.fault {
            Fault::HandshakeFrame => frame = mutated_frame(&frame, m),
            Fault::MechanismName => {
                let name = m.mutate(plan.mechanism.name().as_bytes(), b"SCRAM-SHA-512");
                let name = String::from_utf8_lossy(&name).into_owned();
                frame = handshake_frame(&name, correlation);
            }
            Fault::TruncatedFrame if truncate_handshake => {
                return truncated(conn, &frame, m, timeout).await;
            }
            _ => {}
        }
        if conn.send(&frame).await.is_err() {
            return Outcome::Closed;
        }
        if matches!(plan.fault, Fault::HandshakeFrame | Fault::MechanismName) {
            return faulty_answer(conn, ApiKey::SaslHandshake, HANDSHAKE_VERSION, timeout).await;
        }
        if let Err(outcome) = handshake_accepted(conn, timeout).await {
            return outcome;
        }
        correlation += 1;
        if plan.fault == Fault::HandshakeTwice {
            let again = handshake_frame(plan.mechanism.name(), correlation);
            if conn.send(&again).await.is_err() {
                return Outcome::Closed;
            }
            if let Err(outcome) = handshake_accepted(conn, timeout).await {
                return outcome;
            }
            correlation += 1;
        }
    }

    let mut server: Option<Bytes> = None;
    let mut step = 0;
    loop {
        let token = match exchange.next(server.as_deref()) {
            Ok(Some(token)) => token,
            Ok(None) => break,
            // The client refuses the broker's answer (a wrong user's SCRAM exchange may be
            // refused by the broker only at its end).
            Err(_) => return Outcome::Refused,
        };
        step += 1;
        let at_fault = step == faulty_token;
        let frame = match plan.fault {
            Fault::Token if at_fault => {
                let other = token.clone();
                authenticate_frame(m.mutate(&token, &other).to_vec(), correlation)
            }
            Fault::WrongProof if step == 2 => {
                authenticate_frame(flip_proof(&token, m.rng()), correlation)
            }
            Fault::AuthenticateFrame if at_fault => {
                mutated_frame(&authenticate_frame(token, correlation), m)
            }
            Fault::TruncatedFrame if at_fault => {
                return truncated(conn, &authenticate_frame(token, correlation), m, timeout).await;
            }
            _ => authenticate_frame(token, correlation),
        };
        if conn.send(&frame).await.is_err() {
            return Outcome::Closed;
        }
        if at_fault && matches!(plan.fault, Fault::Token | Fault::AuthenticateFrame) {
            let outcome = faulty_answer(
                conn,
                ApiKey::SaslAuthenticate,
                AUTHENTICATE_VERSION,
                timeout,
            )
            .await;
            // A mutated token the broker took: whether the connection is now served is what
            // matters (informational: a mutation can leave a token equivalent).
            if outcome == Outcome::Answered && plan.fault == Fault::Token && step == tokens {
                return served(conn, correlation + 1, timeout).await;
            }
            return outcome;
        }
        match conn.recv(timeout).await {
            Recv::Frame(body) => {
                match sasl_answer(ApiKey::SaslAuthenticate, AUTHENTICATE_VERSION, body) {
                    Some((0, token)) => server = Some(token),
                    Some(_) => return Outcome::Refused,
                    None => return Outcome::Answered,
                }
            }
            other => return other.outcome(),
        }
        correlation += 1;
    }
    served(conn, correlation, timeout).await
}

/// Sends the first part of `frame`, closes the writing side and reads what comes.
async fn truncated(conn: &mut Conn, frame: &[u8], m: &mut Mutator, timeout: Duration) -> Outcome {
    let cut = m.rng().random_range(1..frame.len());
    if conn.send(&frame[..cut]).await.is_err() {
        return Outcome::Closed;
    }
    conn.shutdown().await;
    conn.recv(timeout).await.outcome()
}

// --- connections ------------------------------------------------------------------------------

/// A connection the exchange runs on: plain TCP, or TLS driven by hand (so that the handshake's
/// flights can be mutated); both keep what was read beyond the last frame.
enum Conn {
    Tcp(TcpStream, Vec<u8>),
    Tls(Box<TlsConn>),
}

struct TlsConn {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    pending: Vec<u8>,
}

/// A whole frame at the head of `pending`, taken off it.
fn take_frame(pending: &mut Vec<u8>) -> Option<Bytes> {
    if pending.len() < 4 {
        return None;
    }
    let size = (&pending[..4]).get_i32();
    let size = usize::try_from(size).ok()?;
    if pending.len() < 4 + size {
        return None;
    }
    let frame = Bytes::copy_from_slice(&pending[4..4 + size]);
    pending.drain(..4 + size);
    Some(frame)
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(tcp, _) => tcp.write_all(bytes).await,
            Conn::Tls(c) => {
                c.tls.writer().write_all(bytes)?;
                flush(&mut c.tcp, &mut c.tls).await
            }
        }
    }

    async fn shutdown(&mut self) {
        let tcp = match self {
            Conn::Tcp(tcp, _) => tcp,
            Conn::Tls(c) => &mut c.tcp,
        };
        let _ = tcp.shutdown().await;
    }

    /// The next response frame (its body after the size), a close, or nothing in time.
    async fn recv(&mut self, timeout: Duration) -> Recv {
        let deadline = tokio::time::Instant::now() + timeout;
        match self {
            Conn::Tcp(tcp, pending) => loop {
                if let Some(frame) = take_frame(pending) {
                    return Recv::Frame(frame);
                }
                let mut buf = [0u8; 8192];
                match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
                    Err(_) => return Recv::NoAnswer,
                    Ok(Ok(0)) | Ok(Err(_)) => return Recv::Closed,
                    Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
                }
            },
            Conn::Tls(c) => loop {
                let mut buf = [0u8; 8192];
                loop {
                    match c.tls.reader().read(&mut buf) {
                        Ok(0) => return Recv::Closed,
                        Ok(n) => c.pending.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return Recv::Closed,
                    }
                }
                if let Some(frame) = take_frame(&mut c.pending) {
                    return Recv::Frame(frame);
                }
                if let Err(r) = pump(&mut c.tcp, &mut c.tls, deadline).await {
                    return r;
                }
            },
        }
    }
}

/// Writes what rustls has to send.
async fn flush(tcp: &mut TcpStream, tls: &mut rustls::ClientConnection) -> io::Result<()> {
    let mut out = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut out)?;
    }
    tcp.write_all(&out).await
}

/// One read from the socket through rustls.
async fn pump(
    tcp: &mut TcpStream,
    tls: &mut rustls::ClientConnection,
    deadline: tokio::time::Instant,
) -> Result<(), Recv> {
    let mut buf = vec![0u8; 16 * 1024];
    let n = match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
        Err(_) => return Err(Recv::NoAnswer),
        Ok(Ok(0)) | Ok(Err(_)) => return Err(Recv::Closed),
        Ok(Ok(n)) => n,
    };
    let mut rd = &buf[..n];
    while !rd.is_empty() {
        if tls.read_tls(&mut rd).is_err() {
            return Err(Recv::Failed);
        }
        match tls.process_new_packets() {
            Ok(_) => {}
            Err(rustls::Error::AlertReceived(_)) => return Err(Recv::Alert),
            Err(_) => return Err(Recv::Failed),
        }
    }
    Ok(())
}

/// What comes back on a connection the client does not speak TLS on: a TLS alert record
/// (content type 21) is a refusal, a Kafka frame or anything else an answer.
async fn raw_answer(tcp: &mut TcpStream, timeout: Duration) -> Outcome {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(timeout, tcp.read(&mut buf)).await {
        Err(_) => Outcome::NoAnswer,
        Ok(Ok(0)) | Ok(Err(_)) => Outcome::Closed,
        Ok(Ok(_)) if buf[0] == 21 => Outcome::Refused,
        Ok(Ok(_)) => Outcome::Answered,
    }
}

// --- TLS --------------------------------------------------------------------------------------

fn apiversions_frame() -> Vec<u8> {
    request(
        ApiKey::ApiVersions,
        0,
        1,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    )
}

async fn tls_session(
    mut tcp: TcpStream,
    address: &str,
    config: &AuthConfig,
    plan: &Plan,
    m: &mut Mutator,
) -> Outcome {
    let timeout = config.timeout;
    match plan.fault {
        Fault::Garbage => {
            let bytes = m.random_bytes(2048);
            if tcp.write_all(&bytes).await.is_err() {
                return Outcome::Closed;
            }
            return raw_answer(&mut tcp, timeout).await;
        }
        Fault::PlaintextFrame => {
            if tcp.write_all(&apiversions_frame()).await.is_err() {
                return Outcome::Closed;
            }
            return match raw_answer(&mut tcp, timeout).await {
                // A Kafka answer in the clear would start with a size, never 21 (an alert).
                Outcome::Answered => Outcome::Authenticated,
                other => other,
            };
        }
        _ => {}
    }
    let Some(client) = config.tls_client.clone() else {
        return Outcome::Closed;
    };
    let host = address.rsplit_once(':').map(|(h, _)| h).unwrap_or(address);
    let Ok(name) = rustls::pki_types::ServerName::try_from(host.to_string()) else {
        return Outcome::Closed;
    };
    let Ok(mut tls) = rustls::ClientConnection::new(client, name) else {
        return Outcome::Closed;
    };
    if let Err(outcome) = handshake(&mut tcp, &mut tls, plan.fault, m, timeout).await {
        return outcome;
    }
    let mut conn = Conn::Tls(Box::new(TlsConn {
        tcp,
        tls,
        pending: Vec::new(),
    }));
    match plan.fault {
        Fault::RecordMutated => {
            let Conn::Tls(c) = &mut conn else {
                unreachable!()
            };
            if c.tls.writer().write_all(&metadata_frame(1)).is_err() {
                return Outcome::Closed;
            }
            let mut out = Vec::new();
            while c.tls.wants_write() {
                if c.tls.write_tls(&mut out).is_err() {
                    return Outcome::Closed;
                }
            }
            // A bit of the encrypted payload (past the 5-byte record header).
            if out.len() > 5 {
                let at = m.rng().random_range(5..out.len());
                out[at] ^= 1 << m.rng().random_range(0..8);
            }
            if c.tcp.write_all(&out).await.is_err() {
                return Outcome::Closed;
            }
            match conn.recv(timeout).await {
                Recv::Frame(_) => Outcome::Authenticated,
                other => other.outcome(),
            }
        }
        _ if config.tls_sasl => {
            let control = Plan {
                fault: Fault::Control,
                ..*plan
            };
            sasl_session(&mut conn, config, &control, m).await
        }
        _ => served(&mut conn, 1, timeout).await,
    }
}

/// Drives the handshake, applying the session's fault to the client's flights; `Err` is how
/// the session ended when it did not complete.
async fn handshake(
    tcp: &mut TcpStream,
    tls: &mut rustls::ClientConnection,
    fault: Fault,
    m: &mut Mutator,
    timeout: Duration,
) -> Result<(), Outcome> {
    let mut flight = 0;
    loop {
        if tls.wants_write() {
            let mut out = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut out).map_err(|_| Outcome::Failed)?;
            }
            let written = match (fault, flight) {
                (Fault::HelloMutated, 0) | (Fault::FinishedMutated, 1) => {
                    let mutated = m.mutate(&out, &out);
                    tcp.write_all(&mutated).await
                }
                (Fault::HelloTruncated, 0) => {
                    let cut = m.rng().random_range(1..out.len().max(2));
                    let _ = tcp.write_all(&out[..cut.min(out.len())]).await;
                    let _ = tcp.shutdown().await;
                    return Err(raw_answer(tcp, timeout).await);
                }
                (Fault::Fragmented, 0) => {
                    let mut rest = &out[..];
                    let mut result = Ok(());
                    while !rest.is_empty() && result.is_ok() {
                        let n = m.rng().random_range(1..=8).min(rest.len());
                        result = tcp.write_all(&rest[..n]).await;
                        rest = &rest[n..];
                        tokio::task::yield_now().await;
                    }
                    result
                }
                _ => tcp.write_all(&out).await,
            };
            written.map_err(|_| Outcome::Closed)?;
            flight += 1;
        }
        if !tls.is_handshaking() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        pump(tcp, tls, deadline).await.map_err(Recv::outcome)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sessions: usize) -> AuthConfig {
        AuthConfig {
            sasl: Some("127.0.0.1:1".into()),
            tls: Some("127.0.0.1:2".into()),
            tls_sasl: true,
            tls_client: None,
            user: "alice".into(),
            password: "alice-secret".into(),
            sessions,
            seed: 7,
            concurrency: 4,
            timeout: Duration::from_secs(1),
            probe_every: 50,
        }
    }

    #[test]
    fn plans_depend_only_on_the_seed_and_cover_every_fault() {
        let a = plans(&config(2000));
        let b = plans(&config(2000));
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| (x.layer, x.fault, x.seed) == (y.layer, y.fault, y.seed)));
        for fault in SASL_FAULTS.iter().chain(&TLS_FAULTS) {
            assert!(a.iter().any(|p| p.fault == *fault), "{fault:?}");
        }
        assert!(a.iter().step_by(10).all(|p| p.fault == Fault::Control));
        let tls_faults_on_sasl = a
            .iter()
            .filter(|p| p.layer == Layer::Sasl && TLS_FAULTS.contains(&p.fault))
            .count();
        assert_eq!(tls_faults_on_sasl, 0);
    }

    #[test]
    fn a_flipped_proof_differs_only_in_the_proof() {
        let token = format!("c=biws,r=abc,p={}", B64.encode([7u8; 32]));
        let mut rng = StdRng::seed_from_u64(1);
        let flipped = String::from_utf8(flip_proof(token.as_bytes(), &mut rng)).unwrap();
        assert_ne!(flipped, token);
        assert!(flipped.starts_with("c=biws,r=abc,p="));
        let proof = B64.decode(flipped.rsplit_once(",p=").unwrap().1).unwrap();
        let differing: u32 = proof.iter().map(|b| (b ^ 7).count_ones()).sum();
        assert_eq!(differing, 1);
    }

    #[test]
    fn one_off_never_returns_the_same_text() {
        let mut rng = StdRng::seed_from_u64(3);
        for text in ["alice-secret", "x", "xx", ""] {
            for _ in 0..50 {
                assert_ne!(one_off(text, &mut rng), text);
            }
        }
    }

    #[test]
    fn frames_are_taken_whole() {
        let mut pending = vec![0, 0, 0, 3, 1, 2];
        assert!(take_frame(&mut pending).is_none());
        pending.extend_from_slice(&[3, 0, 0]);
        assert_eq!(
            take_frame(&mut pending).unwrap(),
            Bytes::from_static(&[1, 2, 3])
        );
        assert_eq!(pending, vec![0, 0]);
    }
}
