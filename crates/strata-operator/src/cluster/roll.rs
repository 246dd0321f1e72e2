//! Rolling restarts, decided purely from what was observed: which broker pods run an outdated
//! pod template, whether every broker is up, and what the cluster itself reports (under-
//! replicated partitions, the active controller). Pure: no client. The StatefulSets use the
//! `OnDelete` strategy, so nothing restarts unless the reconciler deletes the pod this module
//! names.
//!
//! Rules, in order: nothing outdated → up to date; any expected broker missing or not ready →
//! wait; the health check failed or reports under-replicated partitions → wait; otherwise
//! restart exactly one outdated broker — brokers that are not the active controller first, by
//! id, and the active controller last (so quorum leadership moves once, at the end, instead of
//! with every restart). The active controller is the metadata-quorum leader DescribeQuorum
//! reports ([`ClusterSnapshot::active_controller`]); when the quorum cannot be described, the
//! controller DescribeCluster names. The order is decided anew at every step, so a leader that
//! moved meanwhile is still restarted last.
//!
//! Leadership after a restart: a restarted broker comes back as a follower everywhere. Once the
//! cluster is fully replicated again (every pod ready, no under-replicated partition — so the
//! broker has rejoined every ISR), [`leadership_to_restore`] names the partitions whose
//! preferred replica it is and that another broker leads, for a preferred leader election
//! before the next restart.

use std::collections::BTreeSet;

use crate::kafka::ClusterSnapshot;

/// One broker pod as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPod {
    pub name: String,
    pub broker_id: i32,
    pub ready: bool,
    /// The pod runs an older template than its StatefulSet's update revision.
    pub outdated: bool,
}

/// What the reconciler should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollStep {
    /// Every pod runs the current template.
    UpToDate,
    /// A restart is due but not safe yet; the reason goes into the `Progressing` condition.
    Wait { reason: String, message: String },
    /// Delete this pod now; `remaining` counts the outdated pods including this one.
    Restart {
        pod: String,
        broker_id: i32,
        remaining: usize,
    },
}

/// Brokers whose pods must be restarted, in restart order: by id, the active controller last.
pub fn restart_order(pods: &[BrokerPod], active_controller: Option<i32>) -> Vec<&BrokerPod> {
    let mut outdated: Vec<&BrokerPod> = pods.iter().filter(|p| p.outdated).collect();
    outdated.sort_by_key(|p| (Some(p.broker_id) == active_controller, p.broker_id));
    outdated
}

/// Whether any pod needs a restart (the reconciler asks the cluster for health only then).
pub fn restart_pending(pods: &[BrokerPod]) -> bool {
    pods.iter().any(|p| p.outdated)
}

/// Decides the next step. `expected` lists every broker pod the plan wants (name, id);
/// `health` is the cluster's own report, or why it could not be obtained.
pub fn next_step(
    expected: &[(String, i32)],
    pods: &[BrokerPod],
    health: Result<&ClusterSnapshot, String>,
) -> RollStep {
    if !restart_pending(pods) {
        return RollStep::UpToDate;
    }
    for (name, id) in expected {
        match pods.iter().find(|p| &p.name == name) {
            None => {
                return RollStep::Wait {
                    reason: "WaitingForBroker".to_owned(),
                    message: format!("restart paused: broker {id} (pod {name}) does not exist yet"),
                }
            }
            Some(p) if !p.ready => {
                return RollStep::Wait {
                    reason: "WaitingForBroker".to_owned(),
                    message: format!("restart paused: broker {id} (pod {name}) is not ready"),
                }
            }
            Some(_) => {}
        }
    }
    let snapshot = match health {
        Ok(s) => s,
        Err(e) => {
            return RollStep::Wait {
                reason: "HealthCheckFailed".to_owned(),
                message: format!("restart paused: cannot check cluster health: {e}"),
            }
        }
    };
    let urp = snapshot.under_replicated();
    if !urp.is_empty() {
        let shown: Vec<&str> = urp.iter().take(10).map(String::as_str).collect();
        let more = if urp.len() > shown.len() {
            format!(" and {} more", urp.len() - shown.len())
        } else {
            String::new()
        };
        return RollStep::Wait {
            reason: "UnderReplicatedPartitions".to_owned(),
            message: format!(
                "restart paused: {} under-replicated partitions: {}{more}",
                urp.len(),
                shown.join(", ")
            ),
        };
    }
    let order = restart_order(pods, snapshot.active_controller());
    match order.first() {
        Some(p) => RollStep::Restart {
            pod: p.name.clone(),
            broker_id: p.broker_id,
            remaining: order.len(),
        },
        None => RollStep::UpToDate,
    }
}

/// Partitions whose preferred replica (the first) is one of `restarted`, in its ISR, but
/// which another broker leads: the preferred leader election that gives the restarted brokers
/// their leaderships back. Empty while the cluster is under-replicated (the election waits).
pub fn leadership_to_restore(
    snapshot: &ClusterSnapshot,
    restarted: &BTreeSet<i32>,
) -> Vec<(String, i32)> {
    if !snapshot.under_replicated().is_empty() {
        return Vec::new();
    }
    snapshot
        .partitions
        .iter()
        .filter(|p| {
            p.preferred().is_some_and(|first| {
                restarted.contains(&first) && p.isr.contains(&first) && p.leader != Some(first)
            })
        })
        .map(|p| (p.topic.clone(), p.partition))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::PartitionReplicas;

    fn pod(id: i32, ready: bool, outdated: bool) -> BrokerPod {
        BrokerPod {
            name: format!("c-a-{id}"),
            broker_id: id,
            ready,
            outdated,
        }
    }

    fn expected(ids: &[i32]) -> Vec<(String, i32)> {
        ids.iter().map(|id| (format!("c-a-{id}"), *id)).collect()
    }

    fn healthy(controller: i32) -> ClusterSnapshot {
        ClusterSnapshot {
            controller_id: Some(controller),
            quorum_leader: None,
            brokers: [0, 1, 2].into(),
            partitions: vec![PartitionReplicas {
                topic: "t".into(),
                partition: 0,
                leader: Some(0),
                replicas: vec![0, 1, 2],
                isr: vec![0, 1, 2],
            }],
            ..ClusterSnapshot::default()
        }
    }

    #[test]
    fn nothing_outdated_is_up_to_date_without_health() {
        let pods = [pod(0, true, false), pod(1, false, false)];
        assert_eq!(
            next_step(&expected(&[0, 1]), &pods, Err("unreachable".into())),
            RollStep::UpToDate
        );
    }

    #[test]
    fn controller_leader_restarts_last() {
        let mut pods = vec![pod(0, true, true), pod(1, true, true), pod(2, true, true)];
        let exp = expected(&[0, 1, 2]);
        let mut order = Vec::new();
        let health = healthy(0);
        while let RollStep::Restart { broker_id, .. } = next_step(&exp, &pods, Ok(&health)) {
            order.push(broker_id);
            if let Some(p) = pods.iter_mut().find(|p| p.broker_id == broker_id) {
                p.outdated = false;
            }
        }
        assert_eq!(order, [1, 2, 0]);
    }

    /// Runs the roll to the end, marking each restarted pod current, and returns the ids in
    /// restart order. `leader_after` gives the quorum leader once the ids restarted so far
    /// are down and back (a leader may move while others restart).
    fn roll_all(
        ids: &[i32],
        outdated: &[i32],
        mut health: ClusterSnapshot,
        leader_after: impl Fn(&[i32]) -> Option<i32>,
    ) -> Vec<i32> {
        let mut pods: Vec<BrokerPod> = ids
            .iter()
            .map(|id| BrokerPod {
                name: format!("c-{id}"),
                broker_id: *id,
                ready: true,
                outdated: outdated.contains(id),
            })
            .collect();
        let exp: Vec<(String, i32)> = ids.iter().map(|id| (format!("c-{id}"), *id)).collect();
        let mut order = Vec::new();
        while let RollStep::Restart { broker_id, .. } = next_step(&exp, &pods, Ok(&health)) {
            order.push(broker_id);
            assert!(order.len() <= ids.len(), "each pod once: {order:?}");
            if let Some(p) = pods.iter_mut().find(|p| p.broker_id == broker_id) {
                p.outdated = false;
            }
            health.quorum_leader = leader_after(&order);
        }
        order
    }

    #[test]
    fn quorum_leader_restarts_last_over_describe_cluster() {
        // KRaft brokers name a random broker as controller in DescribeCluster; the quorum
        // leader from DescribeQuorum decides.
        let ids = [0, 1, 2, 100, 101, 200];
        let health = ClusterSnapshot {
            quorum_leader: Some(100),
            ..healthy(0)
        };
        assert_eq!(
            roll_all(&ids, &ids, health, |_| Some(100)),
            [0, 1, 2, 101, 200, 100]
        );
    }

    #[test]
    fn without_a_quorum_leader_the_named_controller_is_last() {
        let ids = [0, 1, 2];
        // DescribeQuorum failed or no leader is elected: today's order.
        assert_eq!(roll_all(&ids, &ids, healthy(1), |_| None), [0, 2, 1]);
        // Nothing known at all: by id.
        let unknown = ClusterSnapshot {
            controller_id: None,
            ..healthy(0)
        };
        assert_eq!(roll_all(&ids, &ids, unknown, |_| None), [0, 1, 2]);
    }

    #[test]
    fn only_outdated_pods_restart_and_a_current_leader_changes_nothing() {
        let ids = [0, 1, 2, 3];
        let health = ClusterSnapshot {
            quorum_leader: Some(2),
            ..healthy(0)
        };
        assert_eq!(
            roll_all(&ids, &[0, 2, 3], health.clone(), |_| Some(2)),
            [0, 3, 2]
        );
        // The leader already runs the current template: plain id order.
        assert_eq!(roll_all(&ids, &[1, 3], health, |_| Some(2)), [1, 3]);
    }

    #[test]
    fn a_leader_that_moves_mid_roll_is_still_last() {
        let ids = [0, 1, 2];
        let health = ClusterSnapshot {
            quorum_leader: Some(0),
            ..healthy(0)
        };
        // Broker 1's restart (the first) moves leadership from 0 to 2.
        assert_eq!(roll_all(&ids, &ids, health, |_| Some(2)), [1, 0, 2]);
    }

    #[test]
    fn waits_for_not_ready_or_missing_brokers() {
        let pods = [pod(0, true, true), pod(1, false, false)];
        let step = next_step(&expected(&[0, 1]), &pods, Ok(&healthy(0)));
        assert!(
            matches!(step, RollStep::Wait { ref reason, .. } if reason == "WaitingForBroker"),
            "{step:?}"
        );
        let pods = [pod(0, true, true)];
        let step = next_step(&expected(&[0, 1]), &pods, Ok(&healthy(0)));
        assert!(
            matches!(step, RollStep::Wait { ref message, .. } if message.contains("does not exist")),
            "{step:?}"
        );
    }

    #[test]
    fn leadership_returns_to_restarted_preferred_replicas_once_replicated() {
        let p = |partition: i32, leader: i32, replicas: &[i32], isr: &[i32]| PartitionReplicas {
            topic: "t".into(),
            partition,
            leader: Some(leader),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        };
        let mut snap = ClusterSnapshot {
            partitions: vec![
                p(0, 1, &[0, 1, 2], &[0, 1, 2]), // 0 preferred, 1 leads: restore
                p(1, 1, &[1, 0, 2], &[1, 0, 2]), // 1 preferred and leading
                p(2, 2, &[2, 0, 1], &[2, 0, 1]), // 2 preferred, not restarted
                p(3, 0, &[0, 2, 1], &[0, 2, 1]), // 0 already leads
            ],
            ..ClusterSnapshot::default()
        };
        let restarted = BTreeSet::from([0]);
        assert_eq!(
            leadership_to_restore(&snap, &restarted),
            [("t".to_owned(), 0)]
        );
        assert!(leadership_to_restore(&snap, &BTreeSet::new()).is_empty());
        // While any partition is under-replicated nothing is elected.
        snap.partitions[2].isr = vec![2, 1];
        assert!(leadership_to_restore(&snap, &restarted).is_empty());
        // ... and a partition without a leader counts as under-replicated.
        snap.partitions[2].isr = vec![2, 0, 1];
        snap.partitions[1].leader = None;
        assert!(leadership_to_restore(&snap, &restarted).is_empty());
    }

    #[test]
    fn waits_for_under_replicated_partitions_and_failed_health() {
        let pods = [pod(0, true, true), pod(1, true, false)];
        let mut sick = healthy(1);
        sick.partitions[0].isr = vec![0, 1];
        let step = next_step(&expected(&[0, 1]), &pods, Ok(&sick));
        assert!(
            matches!(step, RollStep::Wait { ref message, .. } if message.contains("t-0")),
            "{step:?}"
        );
        let step = next_step(&expected(&[0, 1]), &pods, Err("connection refused".into()));
        assert!(
            matches!(step, RollStep::Wait { ref reason, .. } if reason == "HealthCheckFailed"),
            "{step:?}"
        );
    }
}
