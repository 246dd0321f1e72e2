//! One probe round of the engine, for any driver: probe both sides, feed the engine, and run
//! the actions it asks for until it waits, saving its state before each action and after the
//! round. What differs between drivers (where the state is kept, how the mirror is stopped and
//! started, where the discovery address points) is the [`Driver`] trait; the Kafka-side
//! actions run through [`FlowSides`].

use std::future::Future;

use crate::engine::{Action, EngineConfig, FailoverState, Observation, Outcome, Side};
use crate::kafka::FlowSides;

/// The driver's own part of the actions, and where the engine's state is kept.
pub trait Driver {
    /// Keeps `state` where a replacement driver finds it (a status, a file). An action runs
    /// only after the state naming it was saved.
    fn save(&mut self, state: &FailoverState) -> impl Future<Output = Result<(), String>> + Send;
    /// Stops the mirror and returns once it no longer writes.
    fn stop_mirror(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Starts the mirror from `from` to the other side (as [`FlowSides::direction`] gives it).
    fn start_mirror(&mut self, from: Side) -> impl Future<Output = Result<(), String>> + Send;
    /// Points the discovery address at `side`.
    fn point_discovery(&mut self, side: Side) -> impl Future<Output = Result<(), String>> + Send;
}

/// Most actions one round runs (a failover takes about eight).
const MAX_ACTIONS_PER_ROUND: usize = 32;

/// Probes both sides and measures the lag from the active side when both answer.
pub async fn observe(sides: &FlowSides, state: &FailoverState, desired: Side) -> Observation {
    let (source_up, target_up) = tokio::join!(sides.probe(Side::Source), sides.probe(Side::Target));
    let both = source_up && target_up;
    let lag = match both && state.mirror_from == Some(state.active) {
        true => sides.lag(state.active).await.ok(),
        false => None,
    };
    Observation {
        desired,
        source_up,
        target_up,
        lag,
    }
}

/// One round: observe, then run actions until the engine waits. `now` reads the wall clock in
/// Unix milliseconds. Returns the action the round ended on (Idle or a Wait with its reason).
pub async fn round<D: Driver>(
    state: &mut FailoverState,
    cfg: &EngineConfig,
    sides: &FlowSides,
    desired: Side,
    driver: &mut D,
    now: impl Fn() -> i64,
) -> Result<Action, String> {
    let observation = observe(sides, state, desired).await;
    state.observe(&observation, now());
    let mut last = Action::Idle;
    for _ in 0..MAX_ACTIONS_PER_ROUND {
        let action = state.next(cfg, now());
        if action.is_wait() {
            last = action;
            break;
        }
        driver.save(state).await?;
        tracing::info!(?action, "failover step");
        let outcome = match &action {
            Action::StopMirror => done(driver.stop_mirror().await),
            Action::StartMirror { from, .. } => done(driver.start_mirror(*from).await),
            Action::PointDiscovery { side } => done(driver.point_discovery(*side).await),
            kafka => sides.run(kafka).await,
        };
        if let Outcome::Failed(why) = &outcome {
            tracing::warn!(?action, why, "failover step failed");
        }
        let progressed = state.report(&action, outcome, now());
        driver.save(state).await?;
        last = action;
        if !progressed {
            break;
        }
    }
    driver.save(state).await?;
    Ok(last)
}

fn done(result: Result<(), String>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(e),
    }
}
