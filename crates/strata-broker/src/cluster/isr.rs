//! ISR upkeep of the partitions this broker leads: expansions proposed by the fetch path when
//! a follower catches up, shrinks found here when a follower has not caught up within
//! `replica.lag.time.max.ms`; both go to the controller as AlterPartition with the leader and
//! partition epochs, and the partition takes the ISR the controller answers. Also checkpoints
//! every partition's high watermark.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use strata_controller::ControllerError;
use strata_kafka::now_ms;
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::codes as code;
use crate::partition::IsrRequest;

/// Kafka's error codes after which the controller may well hold the proposal already (its
/// answer was lost, or it refused a re-send of a proposal it had committed because the
/// partition epoch moved on) or the leadership changed: the image will settle it, and until it
/// does the proposed ISR keeps counting for the HW (`Partition::maybe_advance_high_watermark`).
const SETTLED_BY_THE_IMAGE: [i16; 3] = [
    code::FENCED_LEADER_EPOCH,
    code::INVALID_UPDATE_VERSION,
    code::NOT_LEADER_OR_FOLLOWER,
];

/// Sends one ISR proposal and hands the partition the answer. A call that did not reach a
/// decision (a timeout, a lost connection, no controller) is sent again while the proposal
/// is still pending: the controller may have committed it, so it cannot simply be dropped
/// (a follower the HW stopped counting could already be in the ISR and be elected). A
/// refusal ends it, except those the image settles.
async fn send(broker: &Broker, req: IsrRequest) {
    let p = &req.partition;
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = broker
            .link
            .alter_partition(
                broker.config.node_id,
                broker.epoch.load(Ordering::Acquire),
                p.topic_id,
                p.index,
                req.proposal.leader_epoch,
                req.proposal.partition_epoch,
                req.proposal.isr.clone(),
                Duration::from_secs(5),
            )
            .await;
        match result {
            Ok(state) => {
                tracing::info!(topic = %p.topic, partition = p.index, isr = ?state.isr,
                    partition_epoch = state.partition_epoch, "ISR changed");
                p.isr_answer(&req.proposal, Some((state.isr, state.partition_epoch)));
                return;
            }
            Err(ControllerError::Kafka { code, message })
                if SETTLED_BY_THE_IMAGE.contains(&code) =>
            {
                tracing::debug!(topic = %p.topic, partition = p.index, code, %message,
                    "ISR change refused for a stale view; the image will settle it");
                return;
            }
            Err(ControllerError::Kafka { code, message })
                if code != code::NOT_CONTROLLER && code != code::REQUEST_TIMED_OUT =>
            {
                tracing::debug!(topic = %p.topic, partition = p.index, code, %message,
                    "ISR change refused");
                p.isr_answer(&req.proposal, None);
                return;
            }
            Err(e) => {
                tracing::debug!(topic = %p.topic, partition = p.index, error = %e,
                    "ISR change not answered; sending it again");
            }
        }
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        if !p.isr_pending(&req.proposal) {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Runs until shutdown.
pub async fn run(broker: Arc<Broker>, mut requests: mpsc::UnboundedReceiver<IsrRequest>) {
    let lag = broker.config.cluster.replica_lag_time_max_ms;
    let check_every = Duration::from_millis((lag / 2).clamp(100, 5000) as u64);
    let checkpoint_every =
        Duration::from_millis(broker.config.cluster.hw_checkpoint_interval_ms.max(100));
    let mut check = tokio::time::interval(check_every);
    let mut checkpoint = tokio::time::interval(checkpoint_every);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            Some(req) = requests.recv() => {
                let b = broker.clone();
                tokio::spawn(async move { send(&b, req).await });
            }
            _ = check.tick() => {
                let now = now_ms();
                for p in broker.partitions.all() {
                    if !p.is_leader() {
                        continue;
                    }
                    if let Some(proposal) = p.isr_shrink(now, lag) {
                        tracing::info!(topic = %p.topic, partition = p.index, isr = ?proposal.isr,
                            "follower(s) fell behind; shrinking the ISR");
                        let b = broker.clone();
                        tokio::spawn(async move { send(&b, IsrRequest { partition: p, proposal }).await });
                    }
                }
            }
            _ = checkpoint.tick() => {
                let partitions = broker.partitions.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = partitions.checkpoint_high_watermarks() {
                        tracing::warn!(error = %e, "cannot checkpoint high watermarks");
                    }
                }).await;
            }
        }
    }
}
