//! Replica placement for new partitions, Kafka's rack-aware assignment
//! (`AdminUtils.assignReplicasToBrokers`): brokers in rack-alternating order, a random start
//! index and replica shift, each partition's replicas on distinct racks while racks allow, first
//! replicas (leaders) spread evenly. Pure: the caller passes the brokers and the RNG.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

/// A broker that can take replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    pub id: i32,
    pub rack: Option<String>,
}

/// Why no placement exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementError(pub String);

/// Replica lists for `partitions` new partitions numbered from `first_partition`.
pub fn place(
    brokers: &[PlacementBroker],
    partitions: i32,
    replication_factor: usize,
    first_partition: i32,
    rng: &mut impl Rng,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if replication_factor == 0 {
        return Err(PlacementError(
            "Replication factor must be larger than 0.".into(),
        ));
    }
    if replication_factor > brokers.len() {
        return Err(PlacementError(format!(
            "Replication factor: {replication_factor} larger than available brokers: {}.",
            brokers.len()
        )));
    }
    let rack_aware = brokers.iter().all(|b| b.rack.is_some());
    let ordered = if rack_aware {
        rack_alternated(brokers)
    } else {
        let mut b = brokers.to_vec();
        b.sort_by_key(|b| b.id);
        b
    };
    let n = ordered.len();
    let racks: BTreeSet<&str> = ordered.iter().filter_map(|b| b.rack.as_deref()).collect();
    let start = rng.random_range(0..n);
    let mut shift = rng.random_range(0..n);
    let mut out = Vec::new();
    let first_id = first_partition.max(0) as usize;
    for current in first_id..first_id + partitions.max(0) as usize {
        if current > 0 && current.is_multiple_of(n) {
            shift += 1;
        }
        let first = (current + start) % n;
        let mut replicas = vec![ordered[first].id];
        if rack_aware {
            let mut used_racks: BTreeSet<&str> =
                ordered[first].rack.as_deref().into_iter().collect();
            let mut used: BTreeSet<i32> = [ordered[first].id].into();
            let mut k = 0;
            while replicas.len() < replication_factor {
                let b = &ordered[replica_index(first, shift * racks.len(), k, n)];
                let rack = b.rack.as_deref().unwrap_or_default();
                let rack_ok = !used_racks.contains(rack) || used_racks.len() == racks.len();
                let broker_ok = !used.contains(&b.id) || used.len() == n;
                // A full cycle over the other brokers always finds one; the bound only guards
                // against a broken invariant looping forever.
                if (rack_ok && broker_ok) || (k > 4 * n && !used.contains(&b.id)) {
                    replicas.push(b.id);
                    used_racks.insert(rack);
                    used.insert(b.id);
                }
                k += 1;
            }
        } else {
            for j in 0..replication_factor - 1 {
                replicas.push(ordered[replica_index(first, shift, j, n)].id);
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

fn replica_index(first: usize, second_shift: usize, index: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    let shift = 1 + (second_shift + index) % (n - 1);
    (first + shift) % n
}

/// Brokers ordered alternating by rack: the first of each rack, then the second of each, ...
fn rack_alternated(brokers: &[PlacementBroker]) -> Vec<PlacementBroker> {
    let mut by_rack: BTreeMap<&str, Vec<&PlacementBroker>> = BTreeMap::new();
    for b in brokers {
        by_rack
            .entry(b.rack.as_deref().unwrap_or_default())
            .or_default()
            .push(b);
    }
    for list in by_rack.values_mut() {
        list.sort_by_key(|b| b.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for list in by_rack.values() {
            if let Some(b) = list.get(i) {
                out.push((*b).clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn brokers(n: usize, racks: usize) -> Vec<PlacementBroker> {
        (0..n)
            .map(|i| PlacementBroker {
                id: i as i32 + 1,
                rack: (racks > 0).then(|| format!("rack-{}", i % racks)),
            })
            .collect()
    }

    #[test]
    fn too_few_brokers_is_kafkas_message() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let err = place(&brokers(1, 0), 1, 3, 0, &mut rng).unwrap_err();
        assert_eq!(
            err.0,
            "Replication factor: 3 larger than available brokers: 1."
        );
    }

    #[test]
    fn seeded_placement_is_deterministic() {
        let a = place(
            &brokers(6, 3),
            12,
            3,
            0,
            &mut rand::rngs::StdRng::seed_from_u64(9),
        );
        let b = place(
            &brokers(6, 3),
            12,
            3,
            0,
            &mut rand::rngs::StdRng::seed_from_u64(9),
        );
        assert_eq!(a, b);
    }

    proptest! {
        #[test]
        fn placement_properties(
            n in 1usize..12,
            racks in 0usize..5,
            rf in 1usize..5,
            multiple in 1i32..5,
            seed in any::<u64>(),
        ) {
            let rf = rf.min(n);
            let bs = brokers(n, racks);
            let partitions = multiple * n as i32;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let placed = place(&bs, partitions, rf, 0, &mut rng).unwrap();
            prop_assert_eq!(placed.len(), partitions as usize);
            let rack_of = |id: i32| bs[(id - 1) as usize].rack.clone();
            let rack_count = bs.iter().filter_map(|b| b.rack.clone()).collect::<BTreeSet<_>>().len();
            let mut leaders: BTreeMap<i32, usize> = bs.iter().map(|b| (b.id, 0)).collect();
            for replicas in &placed {
                prop_assert_eq!(replicas.len(), rf);
                let distinct: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(distinct.len(), rf);
                if racks > 0 && rack_count >= rf {
                    let distinct_racks: BTreeSet<_> = replicas.iter().map(|r| rack_of(*r)).collect();
                    prop_assert_eq!(distinct_racks.len(), rf);
                }
                *leaders.entry(replicas[0]).or_default() += 1;
            }
            let max = leaders.values().max().copied().unwrap_or(0);
            let min = leaders.values().min().copied().unwrap_or(0);
            prop_assert!(max - min <= 1, "leaders {leaders:?}");
        }
    }
}
