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
use crate::partition::IsrRequest;

async fn send(broker: &Broker, req: IsrRequest) {
    let p = &req.partition;
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
            p.isr_answer(Some((state.isr, state.partition_epoch)));
        }
        Err(ControllerError::Kafka { code, message }) => {
            tracing::debug!(topic = %p.topic, partition = p.index, code, %message,
                "ISR change refused; the image will tell the current state");
            p.isr_answer(None);
        }
        Err(e) => {
            tracing::debug!(topic = %p.topic, partition = p.index, error = %e, "ISR change not sent");
            p.isr_answer(None);
        }
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
