//! The failover engine against a model of two clusters, over random histories: time passing,
//! sides becoming unreachable and coming back, the desired side flipping, and the driver dying
//! before, during or after any action (it is replaced by one that loads the last saved state,
//! through JSON as a status would keep it). What must hold in every history:
//! - never two writable sides once the flow is set up (a side is writable while it carries no
//!   fence and its mandate, if any, has not run out);
//! - each failover id promotes one side, once it promoted;
//! - probe failures shorter than the threshold never fail over;
//! - once everything is reachable again the flow settles: discovery and the mirror follow the
//!   active side, the standby is fenced, and the active side is the desired one unless an
//!   automatic failover left it elsewhere.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strata_failover::{
    other, Action, EngineConfig, FailoverState, Observation, Offsets, Outcome, Reason, Side,
};
use strata_flow::{FailbackPolicy, FailoverMode};

#[derive(Debug, Clone, Default)]
struct Cluster {
    reachable: bool,
    fenced: bool,
    mandate: Option<i64>,
    /// Records the mirror never copied (a tail written while it was active).
    tail: i64,
    /// A cluster that cannot cut a log's tail (Apache Kafka).
    foreign: bool,
}

#[derive(Debug)]
struct World {
    now: i64,
    clusters: [Cluster; 2],
    discovery: Option<Side>,
    mirror: Option<Side>,
    promotions: BTreeMap<String, Side>,
    set_up: bool,
    /// Check "never two writable sides" (flows with mandates; without them a person may
    /// promote past an unreachable old side).
    strict: bool,
}

fn ix(side: Side) -> usize {
    match side {
        Side::Source => 0,
        Side::Target => 1,
    }
}

impl World {
    fn new() -> Self {
        let up = Cluster {
            reachable: true,
            ..Cluster::default()
        };
        World {
            now: 1_000_000,
            clusters: [up.clone(), up],
            discovery: None,
            mirror: None,
            promotions: BTreeMap::new(),
            set_up: false,
            strict: true,
        }
    }

    fn writable(&self, side: Side) -> bool {
        let c = &self.clusters[ix(side)];
        !c.fenced && c.mandate.is_none_or(|m| self.now < m)
    }

    fn reachable(&self, side: Side) -> bool {
        self.clusters[ix(side)].reachable
    }

    fn run(&mut self, action: &Action) -> Outcome {
        let unreachable = |w: &World, s: Side| !w.reachable(s);
        match action {
            Action::Idle | Action::Wait(_) => Outcome::Done,
            Action::RenewMandate { side, until_ms } => {
                if unreachable(self, *side) {
                    return Outcome::Failed("unreachable".into());
                }
                self.clusters[ix(*side)].mandate = Some(*until_ms);
                Outcome::Done
            }
            Action::Fence { side, .. } => {
                if unreachable(self, *side) {
                    return Outcome::Failed("unreachable".into());
                }
                self.clusters[ix(*side)].fenced = true;
                Outcome::Fenced { confirmed: true }
            }
            Action::CheckDrained { from, to } => {
                if unreachable(self, *from) || unreachable(self, *to) {
                    return Outcome::Failed("unreachable".into());
                }
                Outcome::Drained { lag: 0 }
            }
            Action::StopMirror => {
                self.mirror = None;
                Outcome::Done
            }
            Action::FinalCheckpoint { from, to } => {
                if unreachable(self, *from) || unreachable(self, *to) {
                    return Outcome::Failed("unreachable".into());
                }
                Outcome::Done
            }
            Action::Promote {
                side,
                id,
                mandate_until_ms,
            } => {
                if unreachable(self, *side) {
                    return Outcome::Failed("unreachable".into());
                }
                let before = self.promotions.insert(id.clone(), *side);
                assert!(
                    before.is_none_or(|s| s == *side),
                    "failover {id} promoted both sides"
                );
                let c = &mut self.clusters[ix(*side)];
                c.fenced = false;
                c.mandate = *mandate_until_ms;
                Outcome::Promoted {
                    end_offsets: Offsets::new(),
                }
            }
            Action::PointDiscovery { side } => {
                self.discovery = Some(*side);
                Outcome::Done
            }
            Action::Quarantine { side, truncate, .. } => {
                if unreachable(self, *side) {
                    return Outcome::Failed("unreachable".into());
                }
                let c = &mut self.clusters[ix(*side)];
                let divergent = c.tail;
                let truncated = *truncate && !c.foreign;
                if truncated {
                    c.tail = 0;
                }
                Outcome::Quarantined {
                    divergent,
                    truncated,
                    cannot_truncate: c.foreign,
                    partitions: if divergent > 0 {
                        vec![format!("t-0: {divergent}")]
                    } else {
                        vec![]
                    },
                }
            }
            Action::StartMirror { from, to } => {
                if unreachable(self, *from) || unreachable(self, *to) {
                    return Outcome::Failed("unreachable".into());
                }
                self.mirror = Some(*from);
                Outcome::Done
            }
        }
    }

    fn check_one_writable(&self) {
        if self.set_up && self.strict {
            assert!(
                !(self.writable(Side::Source) && self.writable(Side::Target)),
                "two writable sides at {}: {:?}",
                self.now,
                self.clusters
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Event {
    Tick(i64),
    Reach(Side, bool),
    Flip,
    /// A probe round with the driver's loop.
    Round,
    /// The driver dies after `n` actions of its next round, the last of them run but not reported.
    CrashDuring(u8),
    /// The driver dies between rounds.
    Crash,
    /// Clients write to the active side a tail the mirror has not copied yet.
    Tail(i64),
}

fn event() -> impl Strategy<Value = Event> {
    let side = prop_oneof![Just(Side::Source), Just(Side::Target)];
    prop_oneof![
        4 => (100i64..6_000).prop_map(Event::Tick),
        2 => (side, any::<bool>()).prop_map(|(s, up)| Event::Reach(s, up)),
        1 => Just(Event::Flip),
        8 => Just(Event::Round),
        1 => (1u8..6).prop_map(Event::CrashDuring),
        1 => Just(Event::Crash),
        1 => (1i64..50).prop_map(Event::Tail),
    ]
}

fn config() -> impl Strategy<Value = EngineConfig> {
    (any::<bool>(), 1u32..4, any::<bool>(), any::<bool>()).prop_map(
        |(auto, threshold, truncate, fb_auto)| {
            EngineConfig {
                mode: if auto {
                    FailoverMode::Automatic
                } else {
                    FailoverMode::Manual
                },
                failure_threshold: threshold,
                // Mandates in both modes here, so "never two writable sides" holds in every history;
                // a flow without mandates is the Manual test below.
                mandate_ms: 20_000,
                clock_skew_ms: 2_000,
                truncate_tail: truncate,
                failback: if fb_auto {
                    FailbackPolicy::Automatic
                } else {
                    FailbackPolicy::Manual
                },
            }
        },
    )
}

struct Driver {
    state: FailoverState,
    saved: String,
    desired: Side,
    /// The desired side the engine last saw (flips between two rounds are never seen).
    observed: Side,
    /// Whether an automatic failover ran since the engine last saw a new desired side.
    probe_failed_after_flip: bool,
}

impl Driver {
    fn new(world: &World) -> Self {
        let state = FailoverState::new(Side::Source, world.now);
        let saved = serde_json::to_string(&state).unwrap();
        Driver {
            state,
            saved,
            desired: Side::Source,
            observed: Side::Source,
            probe_failed_after_flip: false,
        }
    }

    fn save(&mut self) {
        self.saved = serde_json::to_string(&self.state).unwrap();
    }

    fn crash(&mut self) {
        self.state = serde_json::from_str(&self.saved).unwrap();
    }

    /// One probe round; `crash_after`: die once that many actions ran (the last unreported).
    fn round(&mut self, world: &mut World, cfg: &EngineConfig, crash_after: Option<u8>) {
        if self.desired != self.observed {
            self.observed = self.desired;
            self.probe_failed_after_flip = false;
        }
        let lag = if world.reachable(Side::Source) && world.reachable(Side::Target) {
            Some(3)
        } else {
            None
        };
        self.state.observe(
            &Observation {
                desired: self.desired,
                source_up: world.reachable(Side::Source),
                target_up: world.reachable(Side::Target),
                lag,
            },
            world.now,
        );
        for n in 1..=30u8 {
            let action = self.state.next(cfg, world.now);
            if let Some(op) = &self.state.operation {
                if op.reason == Reason::ProbeFailed {
                    self.probe_failed_after_flip = true;
                }
            }
            if action.is_wait() {
                break;
            }
            self.save();
            let outcome = world.run(&action);
            if matches!(outcome, Outcome::Fenced { confirmed: true }) {
                // Two fresh clusters both take writes until the standby is fenced the first time.
                world.set_up = true;
            }
            world.check_one_writable();
            if crash_after == Some(n) {
                self.crash();
                return;
            }
            let progressed = self.state.report(&action, outcome, world.now);
            self.save();
            if !progressed {
                break;
            }
        }
        self.save();
    }
}

fn play(cfg: &EngineConfig, events: &[Event]) {
    let mut world = World::new();
    let mut driver = Driver::new(&world);
    for e in events {
        match e {
            Event::Tick(ms) => world.now += ms,
            Event::Reach(side, up) => world.clusters[ix(*side)].reachable = *up,
            Event::Flip => driver.desired = other(driver.desired),
            Event::Round => driver.round(&mut world, cfg, None),
            Event::CrashDuring(n) => driver.round(&mut world, cfg, Some(*n)),
            Event::Crash => driver.crash(),
            Event::Tail(n) => {
                let active = driver.state.active;
                if world.writable(active) {
                    world.clusters[ix(active)].tail += n;
                }
            }
        }
        world.check_one_writable();
    }
    // Everything reachable again: the flow must settle.
    world.clusters[0].reachable = true;
    world.clusters[1].reachable = true;
    for _ in 0..400 {
        world.now += 1_000;
        driver.round(&mut world, cfg, None);
        world.check_one_writable();
        let s = &driver.state;
        if s.operation.is_none()
            && s.rejoin.is_none()
            && s.blocked.is_none()
            && (s.active == driver.desired || driver.probe_failed_after_flip)
            && world.mirror == Some(s.active)
        {
            break;
        }
    }
    let s = &driver.state;
    if let Some(blocked) = &s.blocked {
        assert!(
            !cfg.truncate_tail && blocked.starts_with("FailbackBlocked"),
            "{blocked}"
        );
        assert!(world.clusters[ix(other(s.active))].tail > 0);
        return;
    }
    assert!(
        s.operation.is_none() && s.rejoin.is_none(),
        "did not settle: {s:?}"
    );
    assert_eq!(world.discovery, Some(s.active));
    assert_eq!(
        world.mirror,
        Some(s.active),
        "the mirror copies from the active side"
    );
    assert!(
        world.writable(s.active),
        "the active side takes writes: {world:?}"
    );
    assert!(
        world.clusters[ix(other(s.active))].fenced,
        "the standby is fenced"
    );
    if !driver.probe_failed_after_flip || cfg.failback == FailbackPolicy::Automatic {
        assert_eq!(s.active, driver.desired, "{s:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn histories_with_crashes_and_flaps_keep_one_writable_side_and_settle(
        cfg in config(),
        events in proptest::collection::vec(event(), 1..120),
    ) {
        play(&cfg, &events);
    }

    #[test]
    fn probe_failures_shorter_than_the_threshold_never_fail_over(
        threshold in 2u32..6,
        flaps in proptest::collection::vec((1u32..6, 1u32..4), 1..12),
    ) {
        let cfg = EngineConfig {
            mode: FailoverMode::Automatic,
            failure_threshold: threshold,
            mandate_ms: 600_000,
            clock_skew_ms: 2_000,
            truncate_tail: true,
            failback: FailbackPolicy::Manual,
        };
        let mut world = World::new();
        let mut driver = Driver::new(&world);
        for _ in 0..5 {
            world.now += 1_000;
            driver.round(&mut world, &cfg, None);
        }
        for (down, up) in flaps {
            let down = down.min(threshold - 1);
            world.clusters[0].reachable = false;
            for _ in 0..down {
                world.now += 1_000;
                driver.round(&mut world, &cfg, None);
            }
            world.clusters[0].reachable = true;
            for _ in 0..up {
                world.now += 1_000;
                driver.round(&mut world, &cfg, None);
            }
            prop_assert!(driver.state.operation.is_none() && driver.state.last.is_none(), "{:?}", driver.state);
            prop_assert_eq!(driver.state.active, Side::Source);
        }
    }
}

fn manual(mandate_ms: i64) -> EngineConfig {
    EngineConfig {
        mode: FailoverMode::Manual,
        failure_threshold: 3,
        mandate_ms,
        clock_skew_ms: 2_000,
        truncate_tail: false,
        failback: FailbackPolicy::Manual,
    }
}

/// A new flow, set up: `strict` checks "never two writable sides" (flows with mandates).
fn set_up(cfg: &EngineConfig, strict: bool) -> (World, Driver) {
    let mut world = World {
        strict,
        ..World::new()
    };
    let mut driver = Driver::new(&world);
    settle(&mut driver, &mut world, cfg);
    (world, driver)
}

fn settle(driver: &mut Driver, world: &mut World, cfg: &EngineConfig) {
    for _ in 0..10 {
        world.now += 1_000;
        driver.round(world, cfg, None);
    }
}

#[test]
fn a_planned_failover_drains_and_risks_nothing() {
    let cfg = manual(0);
    let (mut world, mut driver) = set_up(&cfg, true);
    assert_eq!(
        (world.discovery, world.mirror),
        (Some(Side::Source), Some(Side::Source))
    );
    driver.desired = Side::Target;
    settle(&mut driver, &mut world, &cfg);
    let last = driver.state.last.clone().expect("a failover was recorded");
    assert_eq!(
        (last.from, last.to, last.reason),
        (Side::Source, Side::Target, Reason::DesiredActiveChanged)
    );
    assert!(last.fence_confirmed && last.records_at_risk == 0 && last.records_at_risk_exact);
    assert_eq!(
        (world.discovery, world.mirror),
        (Some(Side::Target), Some(Side::Target))
    );
    assert!(world.clusters[0].fenced && !world.clusters[1].fenced);
}

#[test]
fn without_mandates_an_unreachable_old_side_is_promoted_past_unconfirmed() {
    // A person asked for it; the record says the fence was not confirmed.
    let cfg = manual(0);
    let (mut world, mut driver) = set_up(&cfg, false);
    world.clusters[0].reachable = false;
    driver.desired = Side::Target;
    settle(&mut driver, &mut world, &cfg);
    let last = driver.state.last.clone().expect("a failover was recorded");
    assert!(
        !last.fence_confirmed && last.records_at_risk == 3,
        "{last:?}"
    );
    assert!(
        driver.state.rejoin.is_some(),
        "the old side rejoins once reachable"
    );
}

#[test]
fn with_a_mandate_promotion_waits_until_the_old_side_fenced_itself() {
    let cfg = EngineConfig {
        mode: FailoverMode::Automatic,
        ..manual(20_000)
    };
    let (mut world, mut driver) = set_up(&cfg, true);
    let granted = world.clusters[0]
        .mandate
        .expect("the active side holds a mandate");
    world.clusters[0].reachable = false;
    let mut promoted_at = None;
    for _ in 0..60 {
        world.now += 1_000;
        driver.round(&mut world, &cfg, None);
        if promoted_at.is_none() && world.discovery == Some(Side::Target) {
            promoted_at = Some(world.now);
        }
        world.check_one_writable();
    }
    let promoted_at = promoted_at.expect("the standby was promoted");
    assert!(
        promoted_at >= granted + cfg.clock_skew_ms,
        "{promoted_at} < {granted}"
    );
    let last = driver.state.last.clone().unwrap();
    assert_eq!(last.reason, Reason::ProbeFailed);
    assert!(!last.fence_confirmed);
}

#[test]
fn a_divergent_tail_without_truncation_blocks_failback_and_is_counted_with_it() {
    let cfg = manual(0);
    let (mut world, mut driver) = set_up(&cfg, false);
    world.clusters[0].reachable = false;
    world.clusters[0].tail = 7;
    driver.desired = Side::Target;
    settle(&mut driver, &mut world, &cfg);
    world.clusters[0].reachable = true;
    settle(&mut driver, &mut world, &cfg);
    let blocked = driver.state.blocked.clone().expect("failback is blocked");
    assert!(
        blocked.starts_with("FailbackBlocked: 7 records on source"),
        "{blocked}"
    );
    assert_eq!(driver.state.phase(), strata_failover::Phase::Degraded);
    let truncating = EngineConfig {
        truncate_tail: true,
        ..cfg
    };
    settle(&mut driver, &mut world, &truncating);
    assert!(driver.state.blocked.is_none() && driver.state.rejoin.is_none());
    let last = driver.state.last.clone().unwrap();
    assert!(
        last.records_at_risk == 7 && last.records_at_risk_exact,
        "{last:?}"
    );
    assert_eq!(world.mirror, Some(Side::Target));
}

#[test]
fn a_foreign_sides_tail_blocks_failback_without_truncation_and_stays_in_place_with_it() {
    let cfg = manual(0);
    let (mut world, mut driver) = set_up(&cfg, false);
    world.clusters[0].foreign = true;
    world.clusters[0].reachable = false;
    world.clusters[0].tail = 5;
    driver.desired = Side::Target;
    settle(&mut driver, &mut world, &cfg);
    world.clusters[0].reachable = true;
    settle(&mut driver, &mut world, &cfg);
    let blocked = driver.state.blocked.clone().expect("failback is blocked");
    assert!(
        blocked.starts_with("FailbackBlocked: 5 records on source")
            && blocked.contains("a foreign cluster cannot cut a partition's tail"),
        "{blocked}"
    );
    let truncating = EngineConfig {
        truncate_tail: true,
        ..cfg
    };
    settle(&mut driver, &mut world, &truncating);
    assert!(driver.state.blocked.is_none() && driver.state.rejoin.is_none());
    assert_eq!(world.clusters[0].tail, 5, "the tail stays where it is");
    let last = driver.state.last.clone().unwrap();
    assert!(
        last.records_at_risk == 5 && last.records_at_risk_exact,
        "{last:?}"
    );
    assert_eq!(world.mirror, Some(Side::Target));
}

#[test]
fn a_failback_asked_for_during_the_rejoin_waits_for_it() {
    // The primary was cut off and the standby promoted; the primary returns with a tail of its
    // own, and the failback is asked for at once: it must wait until the primary has dealt with
    // its tail and mirrors the standby, then drain, so nothing written on the standby is lost.
    let cfg = EngineConfig {
        truncate_tail: true,
        ..manual(0)
    };
    let (mut world, mut driver) = set_up(&cfg, false);
    world.clusters[0].reachable = false;
    world.clusters[0].tail = 4;
    driver.desired = Side::Target;
    settle(&mut driver, &mut world, &cfg);
    assert_eq!(driver.state.active, Side::Target);
    world.clusters[0].reachable = true;
    driver.desired = Side::Source;
    settle(&mut driver, &mut world, &cfg);
    assert_eq!(
        world.clusters[0].tail, 0,
        "the primary's own tail was quarantined and truncated before it became active again"
    );
    assert_eq!(driver.state.serial, 3, "initial set-up, failover, failback");
    let last = driver
        .state
        .last
        .clone()
        .expect("the failback was recorded");
    assert_eq!(
        (last.from, last.to, last.reason),
        (Side::Target, Side::Source, Reason::DesiredActiveChanged)
    );
    assert!(
        last.records_at_risk == 0 && last.fence_confirmed,
        "{last:?}"
    );
    assert_eq!(
        (world.discovery, world.mirror),
        (Some(Side::Source), Some(Side::Source))
    );
}

#[test]
fn a_flip_during_a_failover_is_queued() {
    let cfg = manual(0);
    let (mut world, mut driver) = set_up(&cfg, true);
    // The target is unreachable, so the failover to it stops at promotion...
    world.clusters[1].reachable = false;
    driver.desired = Side::Target;
    settle(&mut driver, &mut world, &cfg);
    let id = driver
        .state
        .operation
        .as_ref()
        .expect("the failover waits")
        .id
        .clone();
    // ...a flip back meanwhile does not start a second operation...
    driver.desired = Side::Source;
    settle(&mut driver, &mut world, &cfg);
    assert_eq!(driver.state.operation.as_ref().unwrap().id, id);
    // ...and runs once the first one is done.
    world.clusters[1].reachable = true;
    settle(&mut driver, &mut world, &cfg);
    settle(&mut driver, &mut world, &cfg);
    assert_eq!(driver.state.active, Side::Source);
    assert_eq!(driver.state.last.as_ref().unwrap().from, Side::Target);
    assert_eq!(
        world.promotions.len(),
        3,
        "set-up, failover, failback: {:?}",
        world.promotions
    );
}
