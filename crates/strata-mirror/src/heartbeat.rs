//! Heartbeats: every heartbeat interval, write a MirrorMaker 2 [`Heartbeat`] (key: source and
//! target alias; value: the time) to the target's `heartbeats` topic and record how long the
//! target took to acknowledge it. Other flows mirror `heartbeats` topics onward (as
//! `<alias>.heartbeats`), so a heartbeat's age on any cluster shows end-to-end liveness.
//! Only ordinal 0 of a flow writes heartbeats.

use std::sync::Arc;
use std::time::Instant;

use strata_client::ProducerRecord;
use strata_kafka::now_ms;

use crate::context::FlowContext;
use crate::policy::HEARTBEATS_TOPIC;
use crate::records::Heartbeat;

/// Writes heartbeats until shutdown.
pub async fn run(ctx: Arc<FlowContext>) {
    let producer = ctx.target.producer(ctx.config.producer());
    let mut tick = tokio::time::interval(ctx.config.heartbeat_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.shutdown.cancelled() => break,
        }
        let beat = Heartbeat {
            source_alias: ctx.config.source.alias.clone(),
            target_alias: ctx.config.target.alias.clone(),
            timestamp: now_ms(),
        };
        let started = Instant::now();
        let sent = producer
            .send(ProducerRecord {
                topic: HEARTBEATS_TOPIC.to_string(),
                partition: 0,
                key: Some(beat.key()),
                value: Some(beat.value()),
                headers: Vec::new(),
                timestamp: beat.timestamp,
            })
            .await;
        let outcome = match sent {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => ctx.metrics.heartbeat(started.elapsed()),
            Err(e) => tracing::warn!(error = %e, "cannot write heartbeat"),
        }
    }
    producer.close().await;
}
