//! The failover engine: a pure state machine over two clusters, `source` and `target`, one of
//! them active (clients write to it, the discovery address points at it) and the other a
//! standby that a mirror keeps in step with it.
//!
//! The engine decides, the driver (the operator's `MirrorFlow` reconciler or `strata dev`) acts:
//!
//! ```text
//! let mut state = load()                      // FailoverState::new(desired) the first time
//! state.observe(&observation, now)            // once per probe round
//! loop {
//!     let action = state.next(&config, now);
//!     if action.is_wait() { break }            // Idle or Wait: probe again later
//!     save(&state)                             // the step and its failover id, before it runs
//!     let outcome = run(&action)               // every action is idempotent
//!     let progressed = state.report(&action, outcome, now);
//!     save(&state)
//!     if !progressed { break }
//! }
//! save(&state)                                 // the round's observations too
//! ```
//!
//! Because the state is saved before an action runs and every action can run twice, a driver
//! that dies at any point is replaced by one that loads the saved state and runs the same step
//! again. Nothing here does I/O or reads a clock: time and observations come in as arguments,
//! which is what lets the property tests replay ten thousand histories with crashes and flaps.
//!
//! One failover (`Operation`) runs these steps, each skipped when it does not apply:
//! 1. `Fence` the old active side (a cluster-wide write fence; its result says whether the
//!    fence is confirmed).
//! 2. `Drain` (planned failovers of a reachable side): wait until the mirror has copied
//!    everything, so nothing is at risk.
//! 3. `StopMirror`, 4. `FinalCheckpoint` (group offsets onto the new side, when the old one is
//!    reachable), 5. `Promote` the new side (lift its fence, grant it a mandate, turn its mirror
//!    targets into normal topics) — only once the old side's fence is confirmed or the
//!    mandate the old side held has run out, so two sides never take writes at once,
//!    6. `PointDiscovery` at it, 7. record the outcome (RPO, RTO).
//!
//! Afterwards the old side *rejoins* as the standby when it is reachable: its divergent tail
//! (records the mirror never copied) is quarantined and truncated, then the mirror runs in
//! reverse. A change of the desired side while an operation runs is queued, never interleaved.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
pub use strata_flow::{ActiveSide as Side, FailbackPolicy, FailoverMode, FailoverSpec, OffsetMode};

/// The side that is not `side`.
pub fn other(side: Side) -> Side {
    match side {
        Side::Source => Side::Target,
        Side::Target => Side::Source,
    }
}

/// The fixed policy the engine works with, taken from the flow's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// `Automatic` also fails over when the active side fails its probes.
    pub mode: FailoverMode,
    /// Consecutive failed probe rounds that make the active side count as down.
    pub failure_threshold: u32,
    /// Length of the write mandate the active side is granted, renewed at half its length;
    /// 0 grants none (the active side never fences itself).
    pub mandate_ms: i64,
    /// Margin added to a mandate's end before it is trusted to have run out on the old side.
    pub clock_skew_ms: i64,
    /// Truncate a rejoining side's divergent tail (after copying it to a quarantine topic).
    pub truncate_tail: bool,
    /// `Automatic` returns to the desired side once it has rejoined.
    pub failback: FailbackPolicy,
}

/// Margin for clock differences between the engine's host and the brokers.
pub const DEFAULT_CLOCK_SKEW_MS: i64 = 2_000;
/// Shortest mandate granted in `Automatic` mode: ten renewals' worth at one probe a second.
pub const MIN_MANDATE_MS: i64 = 10_000;

impl EngineConfig {
    /// The policy of a flow's `failover` section. `Automatic` flows grant the active side a
    /// mandate of three detection windows (at least [`MIN_MANDATE_MS`]): an active side that
    /// loses the engine for that long fences itself, which is what lets an automatic failover
    /// promote the standby without reaching the old side. `Manual` flows grant none: nobody
    /// promotes without a person, so the active side never fences itself.
    pub fn from_spec(spec: &FailoverSpec) -> Self {
        let window = i64::from(spec.detection.probe_interval_seconds.max(1))
            * i64::from(spec.detection.failure_threshold.max(1))
            * 1000;
        let mandate_ms = match spec.mode {
            FailoverMode::Manual => 0,
            FailoverMode::Automatic => (3 * window).max(MIN_MANDATE_MS),
        };
        Self {
            mode: spec.mode,
            failure_threshold: spec.detection.failure_threshold.max(1) as u32,
            mandate_ms,
            clock_skew_ms: DEFAULT_CLOCK_SKEW_MS,
            truncate_tail: spec.failback.truncate_unreplicated_tail,
            failback: spec.failback.policy,
        }
    }
}

/// What one probe round saw. `lag`: records on the active side not yet on the standby (when
/// both answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The side the spec asks to be active.
    pub desired: Side,
    pub source_up: bool,
    pub target_up: bool,
    pub lag: Option<i64>,
}

/// Phase of the flow, as its status shows it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    Mirroring,
    FailingOver,
    FailedOver,
    FailingBack,
    Degraded,
}

/// Why an operation started.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Reason {
    /// A new flow: make the desired side active and the other the standby.
    Initial,
    /// The spec's desired side changed (planned failover or failback).
    DesiredActiveChanged,
    /// The active side failed its probes (`Automatic` mode).
    ProbeFailed,
    /// `failback.policy: Automatic` returns to the desired side after it rejoined.
    AutomaticFailback,
}

/// The steps of one operation, in order.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum Step {
    Fence,
    Drain,
    StopMirror,
    FinalCheckpoint,
    Promote,
    PointDiscovery,
    Record,
}

/// End offsets per topic (index = partition).
pub type Offsets = BTreeMap<String, Vec<i64>>;

/// A failover (or the set-up of a new flow) in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// The failover id: names quarantine topics and fences, unique per flow.
    pub id: String,
    pub reason: Reason,
    /// The side that was active (fenced by this operation).
    pub from: Side,
    /// The side made active.
    pub to: Side,
    /// When it started (for `ProbeFailed`, the first failed probe), Unix ms.
    pub started_ms: i64,
    /// The next step to run.
    pub step: Step,
    /// Whether the mirror ran from `from` when the operation started.
    pub was_mirroring: bool,
    /// Whether `from` confirmed its fence.
    #[serde(default)]
    pub fence_confirmed: bool,
    /// Records on `from` the mirror had not copied: 0 after a drain, else the last lag seen.
    #[serde(default)]
    pub records_at_risk: i64,
    /// The mandate granted to `to` on promotion (chosen once, reused if the step re-runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate_until_ms: Option<i64>,
    /// `to`'s end offsets when it was promoted: where the old side's divergent tail begins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub promoted_at: Offsets,
    /// When discovery pointed at `to`, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointed_ms: Option<i64>,
}

/// The old active side becoming the standby once it is reachable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejoin {
    pub side: Side,
    /// The failover that left it behind.
    pub id: String,
    /// Where its divergent tail begins (the new side's end offsets at promotion); `None` for a
    /// new flow's standby, which has no tail of its own to quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<Offsets>,
    /// Whether its fence step is done (else it is fenced first when it is reachable; a side
    /// that answers but cannot be fenced counts as done).
    #[serde(default)]
    pub fenced: bool,
    /// Whether the tail is dealt with (quarantined and truncated, or found empty).
    #[serde(default)]
    pub quarantined: bool,
}

/// What one failover did and cost.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// The failover id (names quarantine topics and fences).
    pub id: String,
    pub reason: Reason,
    pub from: Side,
    pub to: Side,
    /// When it started (for `ProbeFailed`, the first failed probe), Unix ms.
    pub started_ms: i64,
    /// Milliseconds from detection until discovery pointed at the new side (RTO).
    pub duration_ms: i64,
    /// Records written to the old side that the mirror had not copied (RPO): the last lag
    /// observed until the old side rejoins, then the exact count of its divergent tail.
    pub records_at_risk: i64,
    /// Whether `records_at_risk` is the counted divergent tail rather than an estimate.
    #[serde(default)]
    pub records_at_risk_exact: bool,
    /// Whether the old side confirmed its write fence (else the standby was promoted after
    /// the old side's mandate ran out, or, without mandates, on a person's request).
    pub fence_confirmed: bool,
}

/// The engine's whole state: saved by the driver (in the flow's status) before each action.
/// Two states are equal when what is saved of them is (the last probe round's view is not).
#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverState {
    /// The side clients are pointed at.
    pub active: Side,
    /// The desired side last acted upon; a different desired side starts a planned failover
    /// once no operation runs.
    pub desired_seen: Side,
    /// The side the mirror copies from (to the other side), if it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_from: Option<Side>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin: Option<Rejoin>,
    /// The latest mandate end granted to the active side, Unix ms (saved before it is granted,
    /// so it is never earlier than what the side holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate_until_ms: Option<i64>,
    /// Consecutive probe rounds the active side failed.
    #[serde(default)]
    pub probe_failures: u32,
    /// When the current run of failed probes began, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_ms: Option<i64>,
    /// The last lag measured while both sides answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lag: Option<i64>,
    /// Operations started so far; the next failover id is derived from it.
    #[serde(default)]
    pub serial: u64,
    /// Why the flow cannot proceed on its own (`FailbackBlocked: …`), if it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// The last action that failed and why (cleared by the next success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<FailoverRecord>,
    /// The last probe round's view of both sides (not saved: a new driver probes first).
    #[serde(skip)]
    up: (bool, bool),
    /// The last probe round's desired side.
    #[serde(skip)]
    desired: Option<Side>,
}

impl PartialEq for FailoverState {
    fn eq(&self, other: &Self) -> bool {
        // Every saved field; `up` and `desired` are the last probe round's, not state.
        let Self {
            active,
            desired_seen,
            mirror_from,
            operation,
            rejoin,
            mandate_until_ms,
            probe_failures,
            first_failure_ms,
            last_lag,
            serial,
            blocked,
            last_error,
            last,
            up: _,
            desired: _,
        } = self;
        (
            active,
            desired_seen,
            mirror_from,
            operation,
            rejoin,
            mandate_until_ms,
        ) == (
            &other.active,
            &other.desired_seen,
            &other.mirror_from,
            &other.operation,
            &other.rejoin,
            &other.mandate_until_ms,
        ) && (
            probe_failures,
            first_failure_ms,
            last_lag,
            serial,
            blocked,
            last_error,
            last,
        ) == (
            &other.probe_failures,
            &other.first_failure_ms,
            &other.last_lag,
            &other.serial,
            &other.blocked,
            &other.last_error,
            &other.last,
        )
    }
}

impl Eq for FailoverState {}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do: probe again after the interval.
    Idle,
    /// Waiting for something outside the engine (the reason says what).
    Wait(String),
    /// Extend `side`'s write mandate to `until_ms` (cluster config `strata.write.mandate.expiry.ms`).
    RenewMandate { side: Side, until_ms: i64 },
    /// Set the write fence on `side` (outcome: [`Outcome::Fenced`]).
    Fence { side: Side, id: String },
    /// Measure how many records on `from` the mirror has not copied to `to`
    /// (outcome: [`Outcome::Drained`]).
    CheckDrained { from: Side, to: Side },
    /// Stop the mirror and wait until it no longer writes.
    StopMirror,
    /// Copy consumer-group offsets from `from` to `to` (translated, or as they are in
    /// `Preserve` mode).
    FinalCheckpoint { from: Side, to: Side },
    /// Make `side` writable: its mirror targets become normal topics, its fence is lifted,
    /// and it holds a mandate until `mandate_until_ms` when one is given (outcome:
    /// [`Outcome::Promoted`] with its end offsets).
    Promote {
        side: Side,
        id: String,
        mandate_until_ms: Option<i64>,
    },
    /// Point the discovery address at `side`.
    PointDiscovery { side: Side },
    /// Make `side` a mirror target of the active side: copy each partition's records from
    /// `offsets` on to `<topic>.divergent.<id>`, then truncate there if `truncate`
    /// (outcome: [`Outcome::Quarantined`]).
    Quarantine {
        side: Side,
        id: String,
        offsets: Offsets,
        truncate: bool,
    },
    /// Start the mirror from `from` to `to`.
    StartMirror { from: Side, to: Side },
}

impl Action {
    /// Whether the driver should stop this round (nothing to run now).
    pub fn is_wait(&self) -> bool {
        matches!(self, Action::Idle | Action::Wait(_))
    }
}

/// What an action found, reported back with [`FailoverState::report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The action is done.
    Done,
    /// The fence is in place (`confirmed`) or could not be set (unreachable, or a foreign
    /// cluster that cannot be fenced).
    Fenced { confirmed: bool },
    /// Records not yet copied; 0 means drained.
    Drained { lag: i64 },
    /// The promoted side's end offsets.
    Promoted { end_offsets: Offsets },
    /// Records found past the offsets, whether they were truncated, whether the side cannot
    /// truncate a log at all (a foreign cluster: Kafka has no way to cut a partition's tail),
    /// and the partitions (`topic-partition: count`) that hold them.
    Quarantined {
        divergent: i64,
        truncated: bool,
        cannot_truncate: bool,
        partitions: Vec<String>,
    },
    /// The action failed; it runs again next round.
    Failed(String),
}

impl FailoverState {
    /// A new flow whose desired active side is `desired`: its first operation makes that side
    /// active and fences the other.
    pub fn new(desired: Side, now_ms: i64) -> Self {
        let mut state = Self {
            active: desired,
            desired_seen: desired,
            mirror_from: None,
            operation: None,
            rejoin: None,
            mandate_until_ms: None,
            probe_failures: 0,
            first_failure_ms: None,
            last_lag: None,
            serial: 0,
            blocked: None,
            last_error: None,
            last: None,
            up: (true, true),
            desired: Some(desired),
        };
        state.start(Reason::Initial, other(desired), desired, now_ms);
        state
    }

    /// Takes one probe round's results.
    pub fn observe(&mut self, obs: &Observation, now_ms: i64) {
        self.up = (obs.source_up, obs.target_up);
        self.desired = Some(obs.desired);
        if self.is_up(self.active) {
            self.probe_failures = 0;
            self.first_failure_ms = None;
            if let Some(lag) = obs.lag {
                self.last_lag = Some(lag);
            }
        } else {
            self.probe_failures = self.probe_failures.saturating_add(1);
            self.first_failure_ms.get_or_insert(now_ms);
        }
    }

    /// The phase the status shows.
    pub fn phase(&self) -> Phase {
        if self.blocked.is_some() {
            return Phase::Degraded;
        }
        match &self.operation {
            Some(op) if op.reason != Reason::Initial => match op.to {
                Side::Target => Phase::FailingOver,
                Side::Source => Phase::FailingBack,
            },
            _ => match self.active {
                Side::Source => Phase::Mirroring,
                Side::Target => Phase::FailedOver,
            },
        }
    }

    /// The point the flow is at, as one name: an operation's next step (`Fence` … `Record`),
    /// a rejoin's (`RejoinFence`, `RejoinQuarantine`, `RejoinStartMirror`), else `Mirroring`
    /// or `Idle`. Consecutive saves with the same name differ only in bookkeeping.
    pub fn progress(&self) -> String {
        if let Some(op) = &self.operation {
            return format!("{:?}", op.step);
        }
        match &self.rejoin {
            Some(r) if !r.fenced => "RejoinFence".into(),
            Some(r) if !r.quarantined && r.offsets.is_some() => "RejoinQuarantine".into(),
            Some(_) => "RejoinStartMirror".into(),
            None if self.mirror_from.is_some() => "Mirroring".into(),
            None => "Idle".into(),
        }
    }

    /// Whether the standby is a complete, running mirror of the active side, so that failing
    /// over to it loses at most the mirror's lag.
    pub fn standby_in_sync(&self) -> bool {
        self.operation.is_none() && self.rejoin.is_none() && self.mirror_from == Some(self.active)
    }

    fn is_up(&self, side: Side) -> bool {
        match side {
            Side::Source => self.up.0,
            Side::Target => self.up.1,
        }
    }

    fn start(&mut self, reason: Reason, from: Side, to: Side, now_ms: i64) {
        self.serial += 1;
        let started_ms = match reason {
            Reason::ProbeFailed => self.first_failure_ms.unwrap_or(now_ms),
            _ => now_ms,
        };
        self.operation = Some(Operation {
            id: format!("f{}-{}", self.serial, started_ms / 1000),
            reason,
            from,
            to,
            started_ms,
            step: Step::Fence,
            was_mirroring: self.mirror_from == Some(from),
            fence_confirmed: false,
            records_at_risk: 0,
            mandate_until_ms: None,
            promoted_at: Offsets::new(),
            pointed_ms: None,
        });
        // A rejoin still pending is superseded: the side it concerned is being fenced again or
        // made active, and the new operation decides what rejoins afterwards.
        self.rejoin = None;
        self.blocked = None;
    }

    /// The next action, given the configuration and the time. Changes only the engine's own
    /// bookkeeping (which step is next, the mandate about to be granted): save the state
    /// before running the action.
    pub fn next(&mut self, cfg: &EngineConfig, now_ms: i64) -> Action {
        if self.operation.is_some() {
            return self.next_step(cfg, now_ms);
        }
        let desired = self.desired.unwrap_or(self.desired_seen);
        // A flip back to a side that is still rejoining waits until it mirrors the active side
        // (its tail dealt with, the mirror caught up by the drain): started earlier, it would
        // promote a side without the records written since the last failover.
        let rejoining = self.rejoin.as_ref().is_some_and(|r| r.side == desired);
        if desired != self.desired_seen && !rejoining {
            self.desired_seen = desired;
            if desired != self.active {
                self.start(Reason::DesiredActiveChanged, self.active, desired, now_ms);
                return self.next_step(cfg, now_ms);
            }
        }
        let standby = other(self.active);
        if cfg.mode == FailoverMode::Automatic
            && self.probe_failures >= cfg.failure_threshold
            && self.is_up(standby)
            && self.standby_in_sync()
        {
            self.start(Reason::ProbeFailed, self.active, standby, now_ms);
            return self.next_step(cfg, now_ms);
        }
        if cfg.mandate_ms > 0 && self.is_up(self.active) {
            let due = match self.mandate_until_ms {
                Some(until) => until - now_ms < cfg.mandate_ms / 2,
                None => true,
            };
            if due {
                let until = now_ms + cfg.mandate_ms;
                self.mandate_until_ms = Some(self.mandate_until_ms.map_or(until, |u| u.max(until)));
                return Action::RenewMandate {
                    side: self.active,
                    until_ms: until,
                };
            }
        }
        if let Some(rejoin) = &self.rejoin {
            if !self.is_up(rejoin.side) {
                return Action::Wait(format!(
                    "{} to be reachable to rejoin as the standby",
                    name(rejoin.side)
                ));
            }
            if !rejoin.fenced {
                return Action::Fence {
                    side: rejoin.side,
                    id: rejoin.id.clone(),
                };
            }
            if !rejoin.quarantined {
                if let Some(offsets) = &rejoin.offsets {
                    return Action::Quarantine {
                        side: rejoin.side,
                        id: rejoin.id.clone(),
                        offsets: offsets.clone(),
                        truncate: cfg.truncate_tail,
                    };
                }
            }
            return Action::StartMirror {
                from: self.active,
                to: rejoin.side,
            };
        }
        if cfg.failback == FailbackPolicy::Automatic
            && desired != self.active
            && self.is_up(desired)
            && self.is_up(self.active)
            && self.standby_in_sync()
        {
            self.desired_seen = desired;
            self.start(Reason::AutomaticFailback, self.active, desired, now_ms);
            return self.next_step(cfg, now_ms);
        }
        Action::Idle
    }

    fn next_step(&mut self, cfg: &EngineConfig, now_ms: i64) -> Action {
        let up = self.up;
        let is_up = |side: Side| match side {
            Side::Source => up.0,
            Side::Target => up.1,
        };
        let mirror_from = self.mirror_from;
        let mandate = self.mandate_until_ms;
        let last_lag = self.last_lag;
        let op = self.operation.as_mut().expect("an operation runs");
        loop {
            match op.step {
                Step::Fence => {
                    return Action::Fence {
                        side: op.from,
                        id: op.id.clone(),
                    }
                }
                Step::Drain => {
                    let planned = matches!(
                        op.reason,
                        Reason::DesiredActiveChanged | Reason::AutomaticFailback
                    );
                    if planned && op.was_mirroring && op.fence_confirmed && is_up(op.from) {
                        return Action::CheckDrained {
                            from: op.from,
                            to: op.to,
                        };
                    }
                    if op.reason != Reason::Initial && op.was_mirroring {
                        op.records_at_risk = last_lag.unwrap_or(0);
                    }
                    op.step = Step::StopMirror;
                }
                Step::StopMirror => {
                    if mirror_from.is_some() {
                        return Action::StopMirror;
                    }
                    op.step = Step::FinalCheckpoint;
                }
                Step::FinalCheckpoint => {
                    if op.reason != Reason::Initial && op.was_mirroring && is_up(op.from) {
                        return Action::FinalCheckpoint {
                            from: op.from,
                            to: op.to,
                        };
                    }
                    op.step = Step::Promote;
                }
                Step::Promote => {
                    if !op.fence_confirmed {
                        if let Some(until) = mandate {
                            let safe_at = until + cfg.clock_skew_ms;
                            if now_ms < safe_at {
                                return Action::Wait(format!(
                                    "{} did not confirm its write fence: promotion of {} waits until \
                                     its write mandate has run out ({} ms from now)",
                                    name(op.from),
                                    name(op.to),
                                    safe_at - now_ms
                                ));
                            }
                        }
                    }
                    if cfg.mandate_ms > 0 && op.mandate_until_ms.is_none() {
                        op.mandate_until_ms = Some(now_ms + cfg.mandate_ms);
                    }
                    return Action::Promote {
                        side: op.to,
                        id: op.id.clone(),
                        mandate_until_ms: op.mandate_until_ms,
                    };
                }
                Step::PointDiscovery => return Action::PointDiscovery { side: op.to },
                Step::Record => {
                    let op = self.operation.take().expect("an operation runs");
                    self.finish(op);
                    return self.next(cfg, now_ms);
                }
            }
        }
    }

    fn finish(&mut self, op: Operation) {
        if op.reason != Reason::Initial {
            self.last = Some(FailoverRecord {
                id: op.id.clone(),
                reason: op.reason,
                from: op.from,
                to: op.to,
                started_ms: op.started_ms,
                duration_ms: op.pointed_ms.unwrap_or(op.started_ms) - op.started_ms,
                records_at_risk: op.records_at_risk,
                records_at_risk_exact: false,
                fence_confirmed: op.fence_confirmed,
            });
        }
        self.rejoin = Some(Rejoin {
            side: op.from,
            id: op.id,
            offsets: (op.reason != Reason::Initial).then_some(op.promoted_at),
            fenced: op.fence_confirmed,
            quarantined: false,
        });
        self.probe_failures = 0;
        self.first_failure_ms = None;
        self.last_lag = None;
    }

    /// Takes the outcome of `action` (which [`next`](Self::next) returned). Returns whether
    /// the flow moved on, i.e. whether asking for the next action now makes sense.
    pub fn report(&mut self, action: &Action, outcome: Outcome, now_ms: i64) -> bool {
        if let Outcome::Failed(why) = &outcome {
            if let (Action::Fence { .. }, Some(op)) = (action, self.operation.as_mut()) {
                // An unreachable side cannot be fenced; promotion then waits for its mandate.
                if op.step == Step::Fence {
                    op.fence_confirmed = false;
                    op.step = Step::Drain;
                    self.last_error = Some(format!("fencing failed: {why}"));
                    return true;
                }
            }
            self.last_error = Some(format!("{}: {why}", action_name(action)));
            return false;
        }
        self.last_error = None;
        match (action, outcome) {
            (Action::RenewMandate { .. }, _) => false,
            (Action::Fence { side, id }, outcome) => {
                let confirmed =
                    matches!(outcome, Outcome::Fenced { confirmed: true } | Outcome::Done);
                let Some(op) = self.operation.as_mut().filter(|op| op.step == Step::Fence) else {
                    // A rejoining side that answered but cannot be fenced (a foreign cluster
                    // without an authorizer) is not asked again; the error says so.
                    return match self
                        .rejoin
                        .as_mut()
                        .filter(|r| r.side == *side && &r.id == id)
                    {
                        Some(rejoin) => {
                            rejoin.fenced = true;
                            if !confirmed {
                                self.last_error = Some(format!("{} cannot be fenced", name(*side)));
                            }
                            true
                        }
                        None => false,
                    };
                };
                op.fence_confirmed = confirmed;
                op.step = Step::Drain;
                true
            }
            (Action::CheckDrained { .. }, Outcome::Drained { lag }) => {
                let Some(op) = self.operation.as_mut().filter(|op| op.step == Step::Drain) else {
                    return false;
                };
                self.last_lag = Some(lag);
                if lag <= 0 {
                    op.records_at_risk = 0;
                    op.step = Step::StopMirror;
                    true
                } else {
                    false
                }
            }
            (Action::StopMirror, _) => {
                self.mirror_from = None;
                if let Some(op) = self
                    .operation
                    .as_mut()
                    .filter(|op| op.step == Step::StopMirror)
                {
                    op.step = Step::FinalCheckpoint;
                }
                true
            }
            (Action::FinalCheckpoint { .. }, _) => {
                if let Some(op) = self
                    .operation
                    .as_mut()
                    .filter(|op| op.step == Step::FinalCheckpoint)
                {
                    op.step = Step::Promote;
                }
                true
            }
            (Action::Promote { .. }, outcome) => {
                let Some(op) = self
                    .operation
                    .as_mut()
                    .filter(|op| op.step == Step::Promote)
                else {
                    return false;
                };
                if let Outcome::Promoted { end_offsets } = outcome {
                    op.promoted_at = end_offsets;
                }
                self.mandate_until_ms = op.mandate_until_ms;
                op.step = Step::PointDiscovery;
                true
            }
            (Action::PointDiscovery { side }, _) => {
                let Some(op) = self
                    .operation
                    .as_mut()
                    .filter(|op| op.step == Step::PointDiscovery)
                else {
                    return false;
                };
                self.active = *side;
                op.pointed_ms = Some(now_ms);
                op.step = Step::Record;
                true
            }
            (
                Action::Quarantine { id, truncate, .. },
                Outcome::Quarantined {
                    divergent,
                    truncated,
                    cannot_truncate,
                    partitions,
                },
            ) => {
                let Some(rejoin) = self.rejoin.as_mut().filter(|r| &r.id == id) else {
                    return false;
                };
                // A side that cannot cut its logs keeps the tail in place when truncation is
                // allowed: a Translate mirror appends after it (offsets are translated), and
                // the copy in quarantine names every such record.
                let dealt_with = divergent == 0 || truncated || (cannot_truncate && *truncate);
                if !dealt_with {
                    let what = if cannot_truncate {
                        "a foreign cluster cannot cut a partition's tail: set \
                         failback.truncateUnreplicatedTail to leave them in place and mirror after \
                         them, or delete those topics there so that the mirror creates them again"
                    } else {
                        "set failback.truncateUnreplicatedTail to truncate them, or remove them by hand"
                    };
                    self.blocked = Some(format!(
                        "FailbackBlocked: {} records on {} were never mirrored ({}); they are copied to \
                         the topics <topic>.divergent.{id}; {what}",
                        divergent,
                        name(rejoin.side),
                        partitions.join(", "),
                    ));
                    return false;
                }
                rejoin.quarantined = true;
                self.blocked = None;
                if let Some(last) = self.last.as_mut().filter(|l| &l.id == id) {
                    last.records_at_risk = divergent;
                    last.records_at_risk_exact = true;
                }
                true
            }
            (Action::StartMirror { from, to }, _) => {
                if self.rejoin.as_ref().is_some_and(|r| r.side == *to) {
                    self.rejoin = None;
                    self.mirror_from = Some(*from);
                }
                true
            }
            _ => false,
        }
    }
}

/// A side's name as the status and messages spell it.
pub fn name(side: Side) -> &'static str {
    match side {
        Side::Source => "source",
        Side::Target => "target",
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Idle => "idle",
        Action::Wait(_) => "wait",
        Action::RenewMandate { .. } => "renewing the write mandate",
        Action::Fence { .. } => "fencing",
        Action::CheckDrained { .. } => "checking the mirror's lag",
        Action::StopMirror => "stopping the mirror",
        Action::FinalCheckpoint { .. } => "the final checkpoint",
        Action::Promote { .. } => "promoting",
        Action::PointDiscovery { .. } => "pointing discovery",
        Action::Quarantine { .. } => "quarantining the divergent tail",
        Action::StartMirror { .. } => "starting the mirror",
    }
}
