//! The over-the-wire driver: mutated request frames sent to a running broker, each classified by
//! what came back, with a liveness probe (ApiVersions on a fresh connection) between rounds. The
//! frames depend only on the corpus and the seed, so Strata and Apache Kafka can be given the same
//! ones and their outcomes compared frame by frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::Rng;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::corpus::Frame;
use crate::mutate::Mutator;

/// What one frame got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// A response frame with the request's correlation id.
    Response,
    /// The broker closed the connection.
    Closed,
    /// Neither within the timeout (a long poll, acks=0, or a length that lies).
    NoAnswer,
}

impl Outcome {
    fn letter(self) -> char {
        match self {
            Outcome::Response => 'R',
            Outcome::Closed => 'C',
            Outcome::NoAnswer => 'N',
        }
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct WireConfig {
    pub bootstrap: String,
    pub frames: usize,
    pub seed: u64,
    pub concurrency: usize,
    pub timeout: Duration,
    /// Probe liveness every this many frames per worker.
    pub probe_every: usize,
}

/// The outcome of a run.
#[derive(Debug, Serialize)]
pub struct WireReport {
    pub frames: usize,
    pub seed: u64,
    pub seconds: f64,
    pub responses: usize,
    pub closed: usize,
    pub no_answer: usize,
    pub probes: usize,
    pub failed_probes: usize,
    /// One letter per frame (R, C, N) in frame order.
    pub outcomes: String,
    /// API key of each frame's original, in frame order.
    pub api_keys: Vec<i16>,
}

/// The mutated frames of a run: `(original API key, frame)`; a few have a length prefix that
/// lies about their size.
pub fn frames(requests: &[Frame], count: usize, seed: u64) -> Vec<(i16, Bytes)> {
    let mut m = Mutator::new(seed);
    (0..count)
        .map(|i| {
            let f = &requests[m.rng().random_range(0..requests.len())];
            let other = &requests[m.rng().random_range(0..requests.len())];
            // Every 20th frame goes out unchanged, as a control.
            let body = if i % 20 == 0 {
                f.bytes.clone()
            } else {
                m.mutate(&f.bytes, &other.bytes)
            };
            let mut len = body.len() as i32;
            if m.rng().random_bool(0.02) {
                len = m.rng().random_range(0..=body.len() as i32 * 2 + 8);
            }
            let mut out = BytesMut::with_capacity(body.len() + 4);
            out.put_i32(len);
            out.put_slice(&body);
            (f.key, out.freeze())
        })
        .collect()
}

/// Sends the frames; each worker keeps one connection open while the broker keeps it open.
pub async fn run(config: &WireConfig, requests: &[Frame]) -> WireReport {
    let all = frames(requests, config.frames, config.seed);
    let start = Instant::now();
    let down = Arc::new(AtomicBool::new(false));
    let workers = config.concurrency.max(1);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mine: Vec<(usize, Bytes)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % workers == w)
            .map(|(i, (_, f))| (i, f.clone()))
            .collect();
        let config = config.clone();
        let down = down.clone();
        tasks.push(tokio::spawn(
            async move { worker(&config, mine, &down).await },
        ));
    }
    let mut outcomes = vec![Outcome::NoAnswer; all.len()];
    let (mut probes, mut failed) = (0, 0);
    for t in tasks {
        if let Ok((results, p, f)) = t.await {
            for (i, o) in results {
                outcomes[i] = o;
            }
            probes += p;
            failed += f;
        }
    }
    // A last probe after everything: the broker must still answer.
    probes += 1;
    if !probe(&config.bootstrap).await {
        failed += 1;
    }
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    WireReport {
        frames: all.len(),
        seed: config.seed,
        seconds: start.elapsed().as_secs_f64(),
        responses: count(Outcome::Response),
        closed: count(Outcome::Closed),
        no_answer: count(Outcome::NoAnswer),
        probes,
        failed_probes: failed,
        outcomes: outcomes.iter().map(|o| o.letter()).collect(),
        api_keys: all.iter().map(|(k, _)| *k).collect(),
    }
}

async fn worker(
    config: &WireConfig,
    frames: Vec<(usize, Bytes)>,
    down: &AtomicBool,
) -> (Vec<(usize, Outcome)>, usize, usize) {
    let mut results = Vec::with_capacity(frames.len());
    let (mut probes, mut failed) = (0, 0);
    let mut conn: Option<TcpStream> = None;
    for (n, (i, frame)) in frames.into_iter().enumerate() {
        if down.load(Ordering::Relaxed) {
            break;
        }
        if n > 0 && n % config.probe_every == 0 {
            probes += 1;
            if !probe(&config.bootstrap).await {
                failed += 1;
                down.store(true, Ordering::Relaxed);
                break;
            }
        }
        let stream = match conn.take() {
            Some(s) => s,
            None => match connect(&config.bootstrap).await {
                Some(s) => s,
                None => {
                    results.push((i, Outcome::Closed));
                    continue;
                }
            },
        };
        let (outcome, stream) = send(stream, &frame, config.timeout).await;
        results.push((i, outcome));
        conn = stream;
    }
    (results, probes, failed)
}

async fn connect(addr: &str) -> Option<TcpStream> {
    let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = s.set_nodelay(true);
    Some(s)
}

/// Sends one length-prefixed frame and waits for a response frame; returns the connection when
/// it is still usable.
async fn send(mut s: TcpStream, frame: &[u8], timeout: Duration) -> (Outcome, Option<TcpStream>) {
    if s.write_all(frame).await.is_err() {
        return (Outcome::Closed, None);
    }
    let read = async {
        let size = s.read_i32().await?;
        let size = usize::try_from(size).map_err(|_| std::io::ErrorKind::InvalidData)?;
        let mut body = vec![0u8; size.min(64 << 20)];
        s.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => (Outcome::Response, Some(s)),
        Ok(Err(_)) => (Outcome::Closed, None),
        Err(_) => (Outcome::NoAnswer, None),
    }
}

/// ApiVersions v0 on a fresh connection, answered within five seconds.
pub async fn probe(addr: &str) -> bool {
    // ApiVersions (18) v0, correlation id 1, client id "strata-fuzz-probe".
    let client = b"strata-fuzz-probe";
    let mut frame = BytesMut::new();
    frame.put_i32((8 + 2 + client.len()) as i32);
    frame.put_i16(18);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(client.len() as i16);
    frame.put_slice(client);
    let Some(s) = connect(addr).await else {
        return false;
    };
    matches!(
        send(s, &frame, Duration::from_secs(5)).await,
        (Outcome::Response, _)
    )
}
