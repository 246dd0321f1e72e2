//! Draining brokers that a scale-down removes, decided purely from what the cluster reports.
//! Pure: no client. [`plan_drain`] says what to do with the partitions that still have a
//! replica on a leaving broker: nothing left (the brokers can go), moves to start, or a refusal
//! naming why the drain cannot keep every partition's replication factor. [`throttles`] turns
//! the moves into Kafka's replication-throttle configs, as `kafka-reassign-partitions
//! --throttle` sets them.
//!
//! Placement of a replacement replica, per partition, one slot at a time: a registered broker
//! that stays and holds no replica of the partition yet, preferring a rack the partition does
//! not use yet, then the broker with the fewest replicas (counting the moves planned so far),
//! then the lowest id. The replacement takes the leaving replica's position in the list, so a
//! drained preferred leader is replaced by a preferred leader. Refused, and nothing planned at
//! all: a partition with fewer candidate brokers left than it needs (`NotEnoughBrokers`), or a
//! partition whose replicas are on distinct racks that would have to share one because too few
//! racks remain (`NotEnoughRacks`).

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::{PartitionMove, PartitionReplicas};

/// Condition reason of a drain that cannot keep the replication factor.
pub const NOT_ENOUGH_BROKERS: &str = "NotEnoughBrokers";
/// Condition reason of a drain that cannot keep each partition's replicas on distinct racks.
pub const NOT_ENOUGH_RACKS: &str = "NotEnoughRacks";

/// What the cluster looks like to the drain.
#[derive(Debug, Clone, Copy)]
pub struct DrainInput<'a> {
    /// Brokers the new spec removes.
    pub leaving: &'a BTreeSet<i32>,
    /// Brokers that stay and that the cluster reports as registered: where replicas may go.
    pub targets: &'a BTreeSet<i32>,
    /// Rack of every broker the operator knows (staying, leaving, or down).
    pub racks: &'a BTreeMap<i32, String>,
    /// Every partition's placement as the cluster reports it.
    pub partitions: &'a [PartitionReplicas],
    /// Partitions with a reassignment in progress: left to finish, never planned again.
    pub ongoing: &'a BTreeSet<(String, i32)>,
}

/// Why a drain cannot go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainRefusal {
    pub reason: &'static str,
    pub message: String,
}

/// The next step of a drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainStep {
    /// No replica is on a leaving broker: the brokers can be removed.
    Drained,
    /// Partitions still on leaving brokers (`topic-partition`), and the moves to start now
    /// (empty when every one of them is already moving).
    Moving {
        stranded: Vec<String>,
        start: Vec<PartitionMove>,
    },
    /// The drain cannot keep the replication factor; nothing is to be started.
    Refused(DrainRefusal),
}

/// Decides the next step of draining `input.leaving`.
pub fn plan_drain(input: DrainInput<'_>) -> DrainStep {
    let stranded: Vec<&PartitionReplicas> = input
        .partitions
        .iter()
        .filter(|p| p.replicas.iter().any(|r| input.leaving.contains(r)))
        .collect();
    if stranded.is_empty() {
        return DrainStep::Drained;
    }
    // Replica counts per target broker, as they will be once every planned move is done.
    let mut load: BTreeMap<i32, usize> = input.targets.iter().map(|b| (*b, 0)).collect();
    for p in input.partitions {
        for r in &p.replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let mut start = Vec::new();
    let mut refusals: Vec<(String, &'static str, String)> = Vec::new();
    for p in &stranded {
        if input.ongoing.contains(&(p.topic.clone(), p.partition)) {
            continue;
        }
        match place(p, &input, &mut load) {
            Ok(to) => start.push(PartitionMove {
                topic: p.topic.clone(),
                partition: p.partition,
                from: p.replicas.clone(),
                to,
            }),
            Err((reason, why)) => refusals.push((p.label(), reason, why)),
        }
    }
    if let Some((_, reason, _)) = refusals.first() {
        return DrainStep::Refused(refusal(&input, reason, &refusals));
    }
    DrainStep::Moving {
        stranded: stranded.iter().map(|p| p.label()).collect(),
        start,
    }
}

/// The new replica list of `p`, or why there is none.
fn place(
    p: &PartitionReplicas,
    input: &DrainInput<'_>,
    load: &mut BTreeMap<i32, usize>,
) -> Result<Vec<i32>, (&'static str, String)> {
    let rack_of = |b: &i32| input.racks.get(b).cloned();
    let kept: BTreeSet<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !input.leaving.contains(r))
        .collect();
    let needed = p.replicas.len() - kept.len();
    let candidates = input.targets.iter().filter(|b| !kept.contains(*b)).count();
    if candidates < needed {
        return Err((
            NOT_ENOUGH_BROKERS,
            format!(
                "{} has {} replicas and only {} brokers would remain to hold them",
                p.label(),
                p.replicas.len(),
                kept.len() + candidates
            ),
        ));
    }
    let source_racks: BTreeSet<Option<String>> = p.replicas.iter().map(rack_of).collect();
    let rack_distinct = source_racks.len() == p.replicas.len();
    let mut chosen: Vec<i32> = Vec::with_capacity(p.replicas.len());
    let mut used_racks: BTreeSet<Option<String>> = kept.iter().map(rack_of).collect();
    let mut in_use: BTreeSet<i32> = kept.clone();
    let mut planned: Vec<(i32, usize)> = Vec::new();
    for r in &p.replicas {
        if !input.leaving.contains(r) {
            chosen.push(*r);
            continue;
        }
        let best = input
            .targets
            .iter()
            .filter(|b| !in_use.contains(*b))
            .min_by_key(|b| {
                (
                    used_racks.contains(&rack_of(b)),
                    load.get(*b).copied().unwrap_or(0),
                    **b,
                )
            })
            .copied();
        let Some(best) = best else {
            // Counted above: there are enough candidates for every slot.
            unreachable!("a candidate for every slot of {}", p.label());
        };
        used_racks.insert(rack_of(&best));
        in_use.insert(best);
        chosen.push(best);
        planned.push((best, 1));
    }
    if rack_distinct && used_racks.len() < chosen.len() {
        let left: BTreeSet<String> = input.targets.iter().filter_map(rack_of).collect();
        return Err((
            NOT_ENOUGH_RACKS,
            format!(
                "{} has its {} replicas on distinct racks and only {} racks would remain ({})",
                p.label(),
                p.replicas.len(),
                left.len(),
                left.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for (b, n) in planned {
        *load.entry(b).or_default() += n;
    }
    Ok(chosen)
}

fn refusal(
    input: &DrainInput<'_>,
    reason: &'static str,
    refusals: &[(String, &'static str, String)],
) -> DrainRefusal {
    let leaving = join(input.leaving.iter());
    let shown: Vec<&str> = refusals
        .iter()
        .filter(|(_, r, _)| *r == reason)
        .take(5)
        .map(|(_, _, why)| why.as_str())
        .collect();
    let more = refusals.len().saturating_sub(shown.len());
    let fix = if reason == NOT_ENOUGH_RACKS {
        "keep enough racks, or lower those topics' replication factor first"
    } else {
        "keep enough brokers, or lower those topics' replication factor first"
    };
    DrainRefusal {
        reason,
        message: format!(
            "drain of brokers {leaving} refused: {}{}; {fix}; no broker was removed",
            shown.join("; "),
            if more > 0 {
                format!(" (and {more} more partitions)")
            } else {
                String::new()
            }
        ),
    }
}

fn join<'a>(ids: impl Iterator<Item = &'a i32>) -> String {
    ids.map(i32::to_string).collect::<Vec<_>>().join(", ")
}

/// Kafka's replication throttles for a set of moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttles {
    /// Brokers on either side of a move: their `*.replication.throttled.rate` is set.
    pub brokers: BTreeSet<i32>,
    /// Per topic: `leader.replication.throttled.replicas` (the current replicas of moving
    /// partitions, which serve the new ones) and `follower.replication.throttled.replicas`
    /// (the new replicas), as `partition:broker` lists.
    pub topics: BTreeMap<String, (String, String)>,
}

/// Config keys of the throttles.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// The throttles `kafka-reassign-partitions --throttle` would set for `moves`.
pub fn throttles(moves: &[PartitionMove]) -> Throttles {
    let mut out = Throttles::default();
    let mut per_topic: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for m in moves {
        let entry = per_topic.entry(m.topic.as_str()).or_default();
        for b in &m.from {
            out.brokers.insert(*b);
            entry.0.push(format!("{}:{b}", m.partition));
        }
        for b in m.to.iter().filter(|b| !m.from.contains(b)) {
            out.brokers.insert(*b);
            entry.1.push(format!("{}:{b}", m.partition));
        }
    }
    out.topics = per_topic
        .into_iter()
        .map(|(t, (l, f))| (t.to_owned(), (l.join(","), f.join(","))))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part(topic: &str, partition: i32, replicas: &[i32]) -> PartitionReplicas {
        PartitionReplicas {
            topic: topic.into(),
            partition,
            leader: replicas.first().copied(),
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
        }
    }

    /// Racks a={0,1,2}, b={100,101,102}, c={200,201,202}.
    fn racks() -> BTreeMap<i32, String> {
        let mut m = BTreeMap::new();
        for (rack, block) in [("a", 0), ("b", 100), ("c", 200)] {
            for i in 0..3 {
                m.insert(block + i, rack.to_owned());
            }
        }
        m
    }

    fn run(
        leaving: &[i32],
        targets: &[i32],
        partitions: &[PartitionReplicas],
        ongoing: &[(&str, i32)],
    ) -> DrainStep {
        let leaving: BTreeSet<i32> = leaving.iter().copied().collect();
        let targets: BTreeSet<i32> = targets.iter().copied().collect();
        let ongoing: BTreeSet<(String, i32)> =
            ongoing.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
        plan_drain(DrainInput {
            leaving: &leaving,
            targets: &targets,
            racks: &racks(),
            partitions,
            ongoing: &ongoing,
        })
    }

    fn moves(step: DrainStep) -> Vec<(String, Vec<i32>)> {
        match step {
            DrainStep::Moving { start, .. } => {
                start.into_iter().map(|m| (m.label(), m.to)).collect()
            }
            other => panic!("expected moves, got {other:?}"),
        }
    }

    #[test]
    fn nothing_on_the_leaving_brokers_is_drained() {
        let ps = [part("t", 0, &[0, 100, 200])];
        assert_eq!(run(&[1], &[0, 100, 200], &ps, &[]), DrainStep::Drained);
    }

    #[test]
    fn a_replacement_stays_in_the_leaving_brokers_rack_and_position() {
        // Rack a shrinks from 2 brokers to 1: broker 1 leaves; its replicas go to broker 0,
        // the only rack-a broker left, in the same position of the list.
        let ps = [
            part("t", 0, &[1, 100, 200]),
            part("t", 1, &[100, 1, 200]),
            part("t", 2, &[0, 101, 201]),
        ];
        let got = moves(run(&[1], &[0, 100, 101, 200, 201], &ps, &[]));
        assert_eq!(
            got,
            [
                ("t-0".to_owned(), vec![0, 100, 200]),
                ("t-1".to_owned(), vec![100, 0, 200])
            ]
        );
    }

    #[test]
    fn replacements_balance_by_replica_count() {
        // Broker 2 leaves rack a; 0 already holds more replicas than 1, so 1 gets them first
        // until they are level.
        let ps = [
            part("busy", 0, &[0, 100]),
            part("busy", 1, &[0, 101]),
            part("t", 0, &[2, 100]),
            part("t", 1, &[2, 101]),
            part("t", 2, &[2, 102]),
        ];
        let got = moves(run(&[2], &[0, 1, 100, 101, 102], &ps, &[]));
        let to: Vec<i32> = got.iter().map(|(_, r)| r[0]).collect();
        assert_eq!(to, [1, 1, 0], "1 twice (0 -> 2 replicas), then 0 (3 each)");
    }

    #[test]
    fn a_removed_rack_moves_to_a_rack_the_partition_does_not_use() {
        // Rack c goes entirely (3 racks -> 2), partitions of RF 2 keep distinct racks.
        let ps = [part("t", 0, &[200, 0]), part("t", 1, &[100, 201])];
        let got = moves(run(&[200, 201, 202], &[0, 1, 100, 101], &ps, &[]));
        // t-0 keeps 0 (rack a): a rack-b broker, the emptier one (101). t-1 keeps 100 (rack
        // b): a rack-a broker, the emptier one (1).
        assert_eq!(
            got,
            [
                ("t-0".to_owned(), vec![101, 0]),
                ("t-1".to_owned(), vec![100, 1])
            ]
        );
    }

    #[test]
    fn too_few_racks_for_a_rack_distinct_partition_is_refused() {
        let ps = [part("ok", 0, &[0, 100]), part("wide", 3, &[0, 100, 200])];
        let step = run(&[200, 201, 202], &[0, 1, 100, 101], &ps, &[]);
        let DrainStep::Refused(r) = step else {
            panic!("expected a refusal, got {step:?}");
        };
        assert_eq!(r.reason, NOT_ENOUGH_RACKS);
        assert!(r.message.contains("wide-3"), "{}", r.message);
        assert!(
            r.message.contains("only 2 racks would remain (a, b)"),
            "{}",
            r.message
        );
        assert!(r.message.contains("no broker was removed"), "{}", r.message);
    }

    #[test]
    fn too_few_brokers_is_refused_and_nothing_is_planned() {
        // RF 3 on a 3-broker cluster; removing one leaves 2.
        let ps = [part("a", 0, &[0, 100]), part("orders", 4, &[0, 100, 200])];
        let step = run(&[200], &[0, 100], &ps, &[]);
        assert_eq!(
            step,
            DrainStep::Refused(DrainRefusal {
                reason: NOT_ENOUGH_BROKERS,
                message: "drain of brokers 200 refused: orders-4 has 3 replicas and only 2 \
                          brokers would remain to hold them; keep enough brokers, or lower \
                          those topics' replication factor first; no broker was removed"
                    .to_owned(),
            })
        );
        // Brokers that stay but are not registered do not count.
        let step = run(&[1], &[], &[part("pinned", 0, &[1])], &[]);
        assert!(
            matches!(&step, DrainStep::Refused(r) if r.reason == NOT_ENOUGH_BROKERS),
            "{step:?}"
        );
    }

    #[test]
    fn moving_partitions_are_waited_for_not_planned_again() {
        let ps = [part("t", 0, &[1, 0, 100]), part("t", 1, &[1, 100])];
        let step = run(&[1], &[0, 100], &ps, &[("t", 0)]);
        let DrainStep::Moving { stranded, start } = step else {
            panic!("expected moves");
        };
        assert_eq!(stranded, ["t-0", "t-1"]);
        assert_eq!(start.len(), 1);
        assert_eq!(
            (start[0].label(), start[0].to.clone()),
            ("t-1".into(), vec![0, 100])
        );
    }

    #[test]
    fn throttles_name_current_replicas_as_leaders_and_new_ones_as_followers() {
        let m = |t: &str, p, from: &[i32], to: &[i32]| PartitionMove {
            topic: t.into(),
            partition: p,
            from: from.to_vec(),
            to: to.to_vec(),
        };
        let t = throttles(&[
            m("t", 0, &[1, 100], &[0, 100]),
            m("t", 3, &[100, 1], &[100, 2]),
            m("u", 1, &[1], &[0]),
        ]);
        assert_eq!(t.brokers, [0, 1, 2, 100].into());
        assert_eq!(
            t.topics["t"],
            ("0:1,0:100,3:100,3:1".to_owned(), "0:0,3:2".to_owned())
        );
        assert_eq!(t.topics["u"], ("1:1".to_owned(), "1:0".to_owned()));
    }

    proptest! {
        /// Any cluster, any leaving set: the drain is refused (and plans nothing), or every
        /// partition on a leaving broker gets a list of the same length, without leaving
        /// brokers, without duplicates, on registered staying brokers only, keeping the
        /// replicas that stay in place, and on distinct racks when it was on distinct racks.
        #[test]
        fn drains_keep_replication_factor_and_racks(
            assignment in proptest::collection::vec(
                proptest::sample::subsequence((0..9).collect::<Vec<i32>>(), 1..=3)
                    .prop_shuffle(),
                1..12),
            leaving in proptest::sample::subsequence((0..9).collect::<Vec<i32>>(), 0..=4),
            down in proptest::sample::subsequence((0..9).collect::<Vec<i32>>(), 0..=2),
        ) {
            // Brokers 0..9 in racks a (0,1,2), b (100..), c (200..).
            let id = |i: i32| (i / 3) * 100 + i % 3;
            let ps: Vec<PartitionReplicas> = assignment
                .iter()
                .enumerate()
                .map(|(n, rs)| {
                    let ids: Vec<i32> = rs.iter().map(|i| id(*i)).collect();
                    part("t", n as i32, &ids)
                })
                .collect();
            let leaving: BTreeSet<i32> = leaving.iter().map(|i| id(*i)).collect();
            let targets: BTreeSet<i32> = (0..9)
                .map(id)
                .filter(|b| !leaving.contains(b) && !down.iter().any(|d| id(*d) == *b))
                .collect();
            let racks = racks();
            let ongoing = BTreeSet::new();
            let step = plan_drain(DrainInput {
                leaving: &leaving,
                targets: &targets,
                racks: &racks,
                partitions: &ps,
                ongoing: &ongoing,
            });
            match step {
                DrainStep::Drained => {
                    prop_assert!(ps.iter().all(|p| p.replicas.iter().all(|r| !leaving.contains(r))));
                }
                DrainStep::Refused(r) => {
                    prop_assert!(r.reason == NOT_ENOUGH_BROKERS || r.reason == NOT_ENOUGH_RACKS);
                }
                DrainStep::Moving { start, stranded } => {
                    prop_assert_eq!(start.len(), stranded.len());
                    for m in &start {
                        let p = &ps[m.partition as usize];
                        prop_assert_eq!(&m.from, &p.replicas);
                        prop_assert_eq!(m.to.len(), p.replicas.len());
                        let distinct: BTreeSet<i32> = m.to.iter().copied().collect();
                        prop_assert_eq!(distinct.len(), m.to.len());
                        for (old, new) in p.replicas.iter().zip(&m.to) {
                            if leaving.contains(old) {
                                prop_assert!(targets.contains(new));
                            } else {
                                prop_assert_eq!(old, new);
                            }
                        }
                        let racks_before: BTreeSet<&String> =
                            p.replicas.iter().map(|b| &racks[b]).collect();
                        let racks_after: BTreeSet<&String> =
                            m.to.iter().map(|b| &racks[b]).collect();
                        if racks_before.len() == p.replicas.len() {
                            prop_assert_eq!(racks_after.len(), m.to.len());
                        }
                    }
                }
            }
        }
    }
}
