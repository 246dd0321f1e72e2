//! Registration and heartbeats. A broker registers (getting its epoch), then heartbeats every
//! `broker.heartbeat.interval.ms` with the metadata offset it has applied; the controller
//! unfences it once that offset reaches its registration, and fences it when heartbeats stop
//! for `broker.session.timeout.ms`. A stale epoch (the controller lost or replaced the
//! registration) makes it register again. On shutdown the heartbeats carry `want_shut_down`
//! until the controller has moved this broker's leaderships away (controlled shutdown).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use strata_controller::{ControllerError, Endpoint, RegisterBroker};

use crate::broker::Broker;
use crate::codes as code;

const STALE_BROKER_EPOCH: i16 = 77;
const BROKER_ID_NOT_REGISTERED: i16 = 99;

fn registration(broker: &Broker) -> RegisterBroker {
    RegisterBroker {
        broker_id: broker.config.node_id,
        incarnation_id: broker.incarnation_id,
        rack: broker.config.rack.clone(),
        endpoints: broker
            .config
            .broker_endpoints()
            .into_iter()
            .map(|l| Endpoint {
                security_protocol: broker.config.security_protocol(&l.name),
                name: l.name,
                host: l.host,
                port: l.port,
            })
            .collect(),
    }
}

/// How often a refusal that lasts is logged again.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Whether a refusal last logged at `last` is to be logged now (and then notes the time).
fn log_refusal_now(last: &mut Option<tokio::time::Instant>) -> bool {
    let now = tokio::time::Instant::now();
    let due = last.is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_INTERVAL);
    if due {
        *last = Some(now);
    }
    due
}

/// Registers until it succeeds (or shutdown); returns false on shutdown.
async fn register(broker: &Broker) -> bool {
    let reg = registration(broker);
    let cluster_id = broker.cluster_id();
    let mut logged = false;
    let mut refusal_logged = None;
    loop {
        let result = tokio::select! {
            _ = broker.shutdown.cancelled() => return false,
            r = broker.link.register(reg.clone(), &cluster_id, Duration::from_secs(5)) => r,
        };
        match result {
            Ok(epoch) => {
                broker.epoch.store(epoch, Ordering::Release);
                tracing::info!(broker_epoch = epoch, "registered with the controller");
                return true;
            }
            Err(ControllerError::Kafka {
                code: code::CLUSTER_AUTHORIZATION_FAILED,
                ..
            }) => {
                // This node's identity lacks ClusterAction (super.users): said as long as it lasts.
                if log_refusal_now(&mut refusal_logged) {
                    tracing::warn!(
                        "the controller refused the registration: CLUSTER_AUTHORIZATION_FAILED \
                         (this node's principal on the controller listener needs ClusterAction \
                         on the cluster)"
                    );
                }
            }
            Err(e) => {
                if !logged {
                    tracing::info!(error = %e, "waiting for the controller to accept the registration");
                    logged = true;
                } else {
                    tracing::debug!(error = %e, "registration failed");
                }
            }
        }
        tokio::select! {
            _ = broker.shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Runs the broker's lifecycle until shutdown.
pub async fn run(broker: Arc<Broker>) {
    if !register(&broker).await {
        return;
    }
    let interval = Duration::from_millis(broker.config.cluster.heartbeat_interval_ms.max(10));
    let mut image = broker.watch_image();
    let mut refusal_logged = None;
    loop {
        let shutting_down = broker.shutting_down.load(Ordering::Acquire);
        let offset = image.borrow().offset;
        let epoch = broker.epoch.load(Ordering::Acquire);
        let result = broker
            .link
            .heartbeat(
                broker.config.node_id,
                epoch,
                offset,
                false,
                shutting_down,
                interval.max(Duration::from_millis(1000)),
            )
            .await;
        match result {
            Ok(reply) => {
                broker
                    .last_heartbeat_ms
                    .store(strata_kafka::now_ms(), Ordering::Release);
                let unfenced = !reply.is_fenced;
                if *broker.ready.borrow() != unfenced {
                    tracing::info!(fenced = reply.is_fenced, "broker fencing changed");
                }
                broker.ready.send_replace(unfenced);
                if unfenced && broker.config.cluster.roles.is_some() {
                    broker.serving.send_replace(true);
                }
                if shutting_down && reply.should_shut_down {
                    broker.released.store(true, Ordering::Release);
                    broker.ready.send_replace(false);
                    tracing::info!("controller released this broker for shutdown");
                    return;
                }
            }
            Err(ControllerError::Kafka { code, .. })
                if code == STALE_BROKER_EPOCH || code == BROKER_ID_NOT_REGISTERED =>
            {
                tracing::warn!("the controller does not know this registration; registering again");
                broker.ready.send_replace(false);
                if !register(&broker).await {
                    return;
                }
                continue;
            }
            Err(ControllerError::Kafka {
                code: code::CLUSTER_AUTHORIZATION_FAILED,
                ..
            }) => {
                if log_refusal_now(&mut refusal_logged) {
                    tracing::warn!(
                        "the controller refused this broker's heartbeat: \
                         CLUSTER_AUTHORIZATION_FAILED (its principal on the controller listener \
                         lost ClusterAction on the cluster); it will be fenced"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
        // Heartbeat sooner when the image moves while fenced, so unfencing is quick.
        let fenced = !*broker.ready.borrow();
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = image.changed(), if fenced => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_refusal_is_logged_again_after_the_interval_only() {
        let mut last = None;
        assert!(log_refusal_now(&mut last));
        assert!(!log_refusal_now(&mut last));
        let long_ago = tokio::time::Instant::now()
            .checked_sub(REFUSAL_LOG_INTERVAL + Duration::from_secs(1))
            .expect("an instant in the past");
        last = Some(long_ago);
        assert!(log_refusal_now(&mut last));
        assert!(last.is_some_and(|t| t > long_ago));
    }
}
