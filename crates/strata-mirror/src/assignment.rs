//! Which process and which replication task of a flow owns a source partition. Pure.
//!
//! Ownership is a stable hash of `(topic, partition)` (64-bit FNV-1a over `topic`, a 0 byte and
//! the partition number in decimal), so every process of a StatefulSet computes the same split
//! without talking to the others, and a topic appearing or growing never moves a partition that
//! is already owned: process `ordinal` of `replicas` owns a partition when
//! `hash % replicas == ordinal`, and inside the process task `(hash / replicas) % tasks` runs it.

/// The share of a flow this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub ordinal: u32,
    pub replicas: u32,
    pub tasks: u32,
}

/// Why an ordinal cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--ordinal {ordinal} must be below --replicas {replicas} (and replicas at least 1)")]
pub struct AssignmentError {
    pub ordinal: u32,
    pub replicas: u32,
}

impl PartitionAssignment {
    pub fn new(ordinal: u32, replicas: u32, tasks: u32) -> Result<Self, AssignmentError> {
        if replicas == 0 || ordinal >= replicas {
            return Err(AssignmentError { ordinal, replicas });
        }
        Ok(PartitionAssignment {
            ordinal,
            replicas,
            tasks: tasks.max(1),
        })
    }

    /// The whole flow in one process and one task.
    pub fn single() -> Self {
        PartitionAssignment {
            ordinal: 0,
            replicas: 1,
            tasks: 1,
        }
    }

    /// The task of this process that runs `(topic, partition)`, if this process owns it.
    pub fn task_of(&self, topic: &str, partition: i32) -> Option<u32> {
        let h = partition_hash(topic, partition);
        let replicas = u64::from(self.replicas);
        (h % replicas == u64::from(self.ordinal))
            .then(|| ((h / replicas) % u64::from(self.tasks)) as u32)
    }

    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.task_of(topic, partition).is_some()
    }
}

fn partition_hash(topic: &str, partition: i32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let p = partition.to_string();
    for b in topic.bytes().chain([0u8]).chain(p.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_owner_and_the_split_is_fair() {
        let n = 3;
        let all: Vec<PartitionAssignment> = (0..n)
            .map(|i| PartitionAssignment::new(i, n, 2).unwrap())
            .collect();
        let mut counts = vec![0; n as usize];
        for t in ["orders", "payments", "audit"] {
            for p in 0..40 {
                let owners: Vec<usize> = (0..n as usize).filter(|&i| all[i].owns(t, p)).collect();
                assert_eq!(owners.len(), 1, "{t}-{p}");
                counts[owners[0]] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c > 20), "{counts:?}");
    }

    #[test]
    fn the_split_is_stable_and_checked() {
        let a = PartitionAssignment::new(1, 4, 1).unwrap();
        assert_eq!(a.owns("t", 7), a.owns("t", 7));
        assert_eq!(partition_hash("t", 7), partition_hash("t", 7));
        assert!(PartitionAssignment::new(4, 4, 1).is_err());
        assert!(PartitionAssignment::new(0, 0, 1).is_err());
        assert!(PartitionAssignment::single().owns("anything", 3));
    }
}
