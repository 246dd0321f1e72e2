//! The timers of group membership: the join deadline of a rebalance, each member's session,
//! and the lifetime of a KIP-394 pending member id. Each is a tokio task holding weak references
//! that re-checks the group under its lock when it fires, and does nothing when the group moved
//! on (a newer rebalance epoch, another member incarnation, a Dead group, a shutdown).

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{ms, Inner};
use crate::group::{Group, GroupState};

impl Inner {
    /// The join deadline: the initial delay (extended while members keep arriving, up to the
    /// rebalance timeout) or the rebalance timeout; on expiry the join completes with whoever
    /// joined. Stale when the group's rebalance epoch moved on.
    pub(super) fn spawn_join_timer(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        epoch: u64,
        delay: Duration,
        initial_remaining: Option<Duration>,
    ) {
        let inner = Arc::downgrade(self);
        let group_arc = Arc::downgrade(group_arc);
        let configured_delay = ms(self.config.initial_rebalance_delay_ms);
        tokio::spawn(async move {
            let mut delay = delay;
            let mut remaining = initial_remaining;
            loop {
                tokio::time::sleep(delay).await;
                let (Some(inner), Some(group_arc)) = (inner.upgrade(), group_arc.upgrade()) else {
                    return;
                };
                if inner.is_shutting_down() {
                    return;
                }
                let mut group = group_arc.lock();
                if group.rebalance_epoch != epoch || group.state != GroupState::PreparingRebalance {
                    return;
                }
                if let Some(left) = remaining {
                    if group.new_member_added && !left.is_zero() {
                        group.new_member_added = false;
                        delay = configured_delay.min(left);
                        remaining = Some(left - delay);
                        continue;
                    }
                    group.in_initial_delay = false;
                }
                inner.complete_join(&mut group);
                return;
            }
        });
    }

    /// Session expiry of one member incarnation: removes it once it neither heartbeats nor waits
    /// on a join or sync for `session.timeout.ms`.
    pub(super) fn spawn_session_expiry(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        member_id: String,
        incarnation: u64,
    ) {
        let inner = Arc::downgrade(self);
        let group_weak = Arc::downgrade(group_arc);
        tokio::spawn(session_expiry(inner, group_weak, member_id, incarnation));
    }

    /// A MEMBER_ID_REQUIRED id that is not used within the session timeout is forgotten.
    pub(super) fn spawn_pending_expiry(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        member_id: String,
        session_timeout_ms: i32,
    ) {
        let inner = Arc::downgrade(self);
        let group_weak = Arc::downgrade(group_arc);
        tokio::spawn(async move {
            tokio::time::sleep(ms(session_timeout_ms)).await;
            let (Some(inner), Some(group_arc)) = (inner.upgrade(), group_weak.upgrade()) else {
                return;
            };
            let mut group = group_arc.lock();
            if group.pending_members.remove(&member_id) && !inner.is_shutting_down() {
                inner.try_complete_join(&mut group);
            }
        });
    }
}

/// The body of a member's session timer (see [`Inner::spawn_session_expiry`]).
pub(super) async fn session_expiry(
    inner: Weak<Inner>,
    group_weak: Weak<Mutex<Group>>,
    member_id: String,
    incarnation: u64,
) {
    loop {
        let deadline = {
            let Some(group_arc) = group_weak.upgrade() else {
                return;
            };
            let group = group_arc.lock();
            match group.members.get(&member_id) {
                Some(m) if m.incarnation == incarnation => m
                    .session_deadline()
                    .unwrap_or_else(|| Instant::now() + ms(m.session_timeout_ms)),
                _ => return,
            }
        };
        tokio::time::sleep_until(deadline).await;
        let (Some(inner), Some(group_arc)) = (inner.upgrade(), group_weak.upgrade()) else {
            return;
        };
        if inner.is_shutting_down() {
            return;
        }
        let mut group = group_arc.lock();
        if group.state == GroupState::Dead {
            return;
        }
        let expired = match group.members.get(&member_id) {
            Some(m) if m.incarnation == incarnation => {
                m.session_deadline().is_some_and(|d| d <= Instant::now())
            }
            _ => return,
        };
        if expired {
            tracing::info!(group = %group.id, member = %member_id, "session timeout; removing member");
            inner.remove_member_and_update_group(&group_arc, &mut group, &member_id);
            return;
        }
    }
}
