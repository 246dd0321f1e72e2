//! Brings this broker's partitions in line with the metadata image, on every image change:
//! opens the logs of partitions it is a replica of, becomes leader or follower at the image's
//! leader epoch (followers are handed to the fetcher of their leader), loads the consumer
//! groups of the offsets partitions it leads and unloads the others, applies changed topic
//! configs and dynamic broker defaults of topic configs (`log.retention.ms`, ...), applies a partition's tail truncation (`strata.mirror.truncate.offsets`) and
//! producer reset (`strata.producer.reset`) before it takes the role of their leader epoch,
//! follows the failover write fence (`crate::write_fence`: fencing at once, lifting only once
//! the partitions are in line, so a producer reset promoted with the lift is in place before
//! the first write), and deletes the logs of partitions it no longer hosts — only once
//! its own registration is in the image, so a stale image never deletes data.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use strata_controller::MetadataImage;
use strata_kafka::now_ms;

use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::cluster::fetcher::Fetchers;
use crate::partition::TopicPartition;
use crate::topic_config;

/// Runs until shutdown.
pub async fn run(broker: Arc<Broker>, fetchers: Arc<Fetchers>) {
    let mut rx = broker.watch_image();
    loop {
        let image = rx.borrow_and_update().clone();
        let offset = image.offset;
        let b = broker.clone();
        let f = fetchers.clone();
        let result = tokio::task::spawn_blocking(move || apply(&b, &f, &image)).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "applying the metadata image failed");
        }
        broker.reconciled.send_replace(offset);
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Applies one image. Blocking (opens and deletes logs).
pub fn apply(broker: &Broker, fetchers: &Fetchers, image: &MetadataImage) {
    let me = broker.config.node_id;
    let now = now_ms();
    // Fence first, lift last: see the module doc.
    broker.write_fence.tighten(&image.cluster_configs);
    let mut assigned: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut follow: Vec<(i32, TopicPartition)> = Vec::new();
    for topic in image.topics.values() {
        // The topic's overrides over the dynamic broker defaults: a change of either
        // reconfigures its partitions.
        let overrides = broker.effective_overrides(image, topic);
        let log_config = topic_config::log_config(&overrides, &broker.config);
        let configs_changed = {
            let mut applied = broker.applied_configs.lock();
            let changed = applied.get(&topic.name) != Some(&overrides);
            applied.insert(topic.name.clone(), overrides);
            changed
        };
        if configs_changed {
            broker.partitions.reconfigure(&topic.name, &log_config);
        }
        for (index, p) in &topic.partitions {
            if !p.replicas.contains(&me) {
                continue;
            }
            let tp = TopicPartition {
                topic: topic.name.clone(),
                partition: *index,
            };
            assigned.insert(tp.clone());
            if broker.partitions.get(&topic.name, *index).is_none() {
                if let Err(e) = broker.partitions.open_partitions(
                    &topic.name,
                    topic.id,
                    *index,
                    *index + 1,
                    &log_config,
                ) {
                    tracing::error!(topic = %topic.name, partition = index, error = %e,
                        "cannot open the partition's log");
                    continue;
                }
            }
            let Some(part) = broker.partitions.get(&topic.name, *index) else {
                continue;
            };
            // Before the role: a leader must not serve the truncated tail at the new epoch.
            if let Some(t) = p.truncation {
                match part.apply_truncation(t) {
                    Ok(true) => tracing::info!(topic = %topic.name, partition = index,
                        offset = t.offset, leader_epoch = t.leader_epoch, "tail truncated"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(topic = %topic.name, partition = index,
                        error = %e, "tail truncation failed"),
                }
            }
            // Before the role too: a leader must not judge new batches by forgotten state.
            if let Some(epoch) = p.producer_reset_epoch {
                if part.apply_producer_reset(epoch) {
                    tracing::info!(topic = %topic.name, partition = index, leader_epoch = epoch,
                        "idempotent-producer state reset");
                }
            }
            if p.leader == me {
                if part.make_leader(p.leader_epoch, p.partition_epoch, &p.replicas, &p.isr, now) {
                    tracing::info!(topic = %topic.name, partition = index,
                        leader_epoch = p.leader_epoch, isr = ?p.isr, "leading");
                }
                fetchers.remove(&tp);
            } else if p.leader >= 0 {
                if part.make_follower(p.leader, p.leader_epoch) {
                    tracing::debug!(topic = %topic.name, partition = index, leader = p.leader,
                        leader_epoch = p.leader_epoch, "following");
                }
                follow.push((p.leader, tp.clone()));
            } else {
                part.make_offline(p.leader_epoch);
                fetchers.remove(&tp);
            }
            if topic.name == OFFSETS_TOPIC {
                let loaded = broker.groups.is_loaded(*index);
                if p.leader == me && !loaded {
                    if let Err(e) = broker.groups.load_partition(*index) {
                        tracing::warn!(partition = index, error = %e, "cannot load consumer groups");
                    }
                } else if p.leader != me && loaded {
                    broker.groups.unload_partition(*index);
                }
            }
        }
    }
    for (leader, tp) in follow {
        fetchers.assign(leader, tp);
    }
    broker.write_fence.follow(&image.cluster_configs);
    // Partitions no longer assigned here: stop serving at once; delete once this broker's
    // registration is in the image (the image is then current for it).
    let registered = image
        .brokers
        .get(&me)
        .is_some_and(|b| b.epoch == broker.epoch.load(Ordering::Acquire))
        && !broker.legacy_metadata_pending();
    for p in broker.partitions.all() {
        let tp = TopicPartition {
            topic: p.topic.clone(),
            partition: p.index,
        };
        if assigned.contains(&tp) {
            continue;
        }
        fetchers.remove(&tp);
        p.make_offline(p.leader_epoch());
        if p.topic == OFFSETS_TOPIC && broker.groups.is_loaded(p.index) {
            broker.groups.unload_partition(p.index);
        }
        if registered {
            tracing::info!(topic = %p.topic, partition = p.index, "deleting a partition this broker no longer hosts");
            if let Err(e) = broker.partitions.remove_partition(&p.topic, p.index) {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot delete the partition");
            }
            if !image.topics.contains_key(&p.topic) {
                broker.groups.remove_topic_offsets(&p.topic);
                broker.applied_configs.lock().remove(&p.topic);
            }
        }
    }
    if registered {
        for (topic, partition) in broker.partitions.unopened_dirs() {
            let hosted = image
                .partition(&topic, partition)
                .is_some_and(|p| p.replicas.contains(&me));
            if !hosted {
                tracing::info!(%topic, partition, "deleting a stray partition directory");
                let _ = broker.partitions.remove_partition(&topic, partition);
            }
        }
    }
    broker.partitions.appended.notify_waiters();
}
