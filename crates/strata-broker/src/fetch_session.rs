//! Incremental fetch sessions (KIP-227): the broker remembers, per session, which partitions a
//! client fetches and what it last told the client about each, so that an incremental request
//! names only what changed and an incremental response carries only partitions with news.
//! Pure bookkeeping: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::partition::TopicPartition;

/// What the session knows about one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPartition {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    /// High watermark and log start offset last sent to the client (-1: never sent).
    pub last_high_watermark: i64,
    pub last_log_start_offset: i64,
}

#[derive(Debug)]
struct FetchSession {
    epoch: i32,
    partitions: BTreeMap<TopicPartition, SessionPartition>,
    last_used: Instant,
}

/// Outcome of resolving a fetch request against the session cache.
#[derive(Debug)]
pub enum SessionResolution {
    /// Sessionless full fetch, or a full fetch that opened the session with this id (0: none).
    Full { session_id: i32 },
    /// Incremental fetch of this session: the partitions to serve.
    Incremental {
        session_id: i32,
        partitions: BTreeMap<TopicPartition, SessionPartition>,
    },
    /// The request cannot be served: FETCH_SESSION_ID_NOT_FOUND or INVALID_FETCH_SESSION_EPOCH.
    Error(i16),
}

pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// Bounded cache of fetch sessions.
pub struct FetchSessionCache {
    max_sessions: usize,
    sessions: Mutex<HashMap<i32, FetchSession>>,
}

impl FetchSessionCache {
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves `session_id`/`epoch` of a request. `updates` are the partitions the request
    /// names (with their positions), `forgotten` those it removes from the session.
    pub fn resolve(
        &self,
        session_id: i32,
        epoch: i32,
        updates: Vec<(TopicPartition, SessionPartition)>,
        forgotten: Vec<TopicPartition>,
    ) -> SessionResolution {
        let mut sessions = self.sessions.lock();
        if epoch == -1 {
            // Final epoch: close any session and serve a sessionless full fetch.
            if session_id != 0 {
                sessions.remove(&session_id);
            }
            return SessionResolution::Full { session_id: 0 };
        }
        if epoch == 0 {
            if session_id != 0 {
                sessions.remove(&session_id);
            }
            if sessions.len() >= self.max_sessions {
                if let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(id, _)| *id)
                {
                    sessions.remove(&oldest);
                }
            }
            let mut id;
            loop {
                id = rand::random::<i32>() & i32::MAX;
                if id != 0 && !sessions.contains_key(&id) {
                    break;
                }
            }
            sessions.insert(
                id,
                FetchSession {
                    epoch: 1,
                    partitions: updates.into_iter().collect(),
                    last_used: Instant::now(),
                },
            );
            return SessionResolution::Full { session_id: id };
        }
        let Some(session) = sessions.get_mut(&session_id) else {
            return SessionResolution::Error(FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.epoch != epoch {
            return SessionResolution::Error(INVALID_FETCH_SESSION_EPOCH);
        }
        session.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used = Instant::now();
        for tp in forgotten {
            session.partitions.remove(&tp);
        }
        for (tp, mut update) in updates {
            if let Some(old) = session.partitions.get(&tp) {
                update.last_high_watermark = old.last_high_watermark;
                update.last_log_start_offset = old.last_log_start_offset;
            }
            session.partitions.insert(tp, update);
        }
        SessionResolution::Incremental {
            session_id,
            partitions: session.partitions.clone(),
        }
    }

    /// Records what a response told the client, so the next incremental response can skip
    /// partitions without news.
    pub fn record_sent(&self, session_id: i32, sent: &[(TopicPartition, i64, i64)]) {
        if session_id == 0 {
            return;
        }
        let mut sessions = self.sessions.lock();
        if let Some(session) = sessions.get_mut(&session_id) {
            for (tp, hw, start) in sent {
                if let Some(p) = session.partitions.get_mut(tp) {
                    p.last_high_watermark = *hw;
                    p.last_log_start_offset = *start;
                }
            }
        }
    }

    /// Drops sessions unused for longer than `idle`.
    pub fn evict_idle(&self, idle: Duration) {
        let now = Instant::now();
        self.sessions
            .lock()
            .retain(|_, s| now.duration_since(s.last_used) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    fn sp(offset: i64) -> SessionPartition {
        SessionPartition {
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            last_high_watermark: -1,
            last_log_start_offset: -1,
        }
    }

    #[test]
    fn full_then_incremental_then_close() {
        let cache = FetchSessionCache::new(10);
        let SessionResolution::Full { session_id } =
            cache.resolve(0, 0, vec![(tp(0), sp(0)), (tp(1), sp(0))], vec![])
        else {
            panic!("expected a new session")
        };
        assert_ne!(session_id, 0);
        cache.record_sent(session_id, &[(tp(0), 5, 0)]);
        match cache.resolve(session_id, 1, vec![(tp(0), sp(5))], vec![tp(1)]) {
            SessionResolution::Incremental { partitions, .. } => {
                assert_eq!(partitions.len(), 1);
                assert_eq!(partitions[&tp(0)].fetch_offset, 5);
                assert_eq!(partitions[&tp(0)].last_high_watermark, 5);
            }
            other => panic!("{other:?}"),
        }
        // A replayed epoch is refused; the next one is accepted.
        assert!(matches!(
            cache.resolve(session_id, 1, vec![], vec![]),
            SessionResolution::Error(INVALID_FETCH_SESSION_EPOCH)
        ));
        assert!(matches!(
            cache.resolve(session_id, 2, vec![], vec![]),
            SessionResolution::Incremental { .. }
        ));
        assert!(matches!(
            cache.resolve(session_id, -1, vec![], vec![]),
            SessionResolution::Full { session_id: 0 }
        ));
        assert!(matches!(
            cache.resolve(session_id, 3, vec![], vec![]),
            SessionResolution::Error(FETCH_SESSION_ID_NOT_FOUND)
        ));
    }

    #[test]
    fn cache_is_bounded() {
        let cache = FetchSessionCache::new(2);
        for _ in 0..5 {
            cache.resolve(0, 0, vec![], vec![]);
        }
        assert_eq!(cache.sessions.lock().len(), 2);
    }
}
