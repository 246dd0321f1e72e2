//! The groups held in memory and the `__consumer_offsets` partitions owned, behind one mutex so
//! that "is this group's partition owned?" and "which group is this?" are answered together: no
//! group is found in, or created for, a partition that is not loaded. Every group in the cache
//! belongs to a loaded partition. Pure bookkeeping: no I/O, no waiting. Lock order: this cache,
//! then a group.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strata_kafka::now_ms;

use crate::group::Group;
use crate::partition_for;

/// Why a group's requests cannot be served here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unowned {
    /// This broker does not own the group's partition.
    NotCoordinator,
    /// The partition is being loaded.
    LoadInProgress,
}

impl Unowned {
    /// The error most APIs answer (Kafka's `validateGroupStatus`).
    pub fn error(self) -> ResponseError {
        match self {
            Unowned::NotCoordinator => ResponseError::NotCoordinator,
            Unowned::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionState {
    /// Being replayed by the load with this id.
    Loading(u64),
    Loaded,
}

pub(super) struct GroupCache {
    groups: HashMap<String, Arc<Mutex<Group>>>,
    partitions: HashMap<i32, PartitionState>,
    num_partitions: i32,
    next_load: u64,
}

impl GroupCache {
    pub fn new(num_partitions: i32) -> Self {
        Self {
            groups: HashMap::new(),
            partitions: HashMap::new(),
            num_partitions,
            next_load: 0,
        }
    }

    /// Ok when the group's partition is owned and loaded.
    pub fn check(&self, group_id: &str) -> Result<(), Unowned> {
        let partition = partition_for(group_id, self.num_partitions);
        match self.partitions.get(&partition) {
            Some(PartitionState::Loaded) => Ok(()),
            Some(PartitionState::Loading(_)) => Err(Unowned::LoadInProgress),
            None => Err(Unowned::NotCoordinator),
        }
    }

    pub fn get(&self, group_id: &str) -> Result<Option<Arc<Mutex<Group>>>, Unowned> {
        self.check(group_id)?;
        Ok(self.groups.get(group_id).cloned())
    }

    pub fn get_or_create(&mut self, group_id: &str) -> Result<Arc<Mutex<Group>>, Unowned> {
        self.check(group_id)?;
        Ok(self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(group_id.to_owned(), now_ms()))))
            .clone())
    }

    /// Removes a group (deleted); its partition stays owned.
    pub fn remove(&mut self, group_id: &str) {
        self.groups.remove(group_id);
    }

    /// Every group in memory.
    pub fn groups(&self) -> Vec<Arc<Mutex<Group>>> {
        self.groups.values().cloned().collect()
    }

    /// The groups of the partitions owned and loaded.
    pub fn loaded_groups(&self) -> Vec<Arc<Mutex<Group>>> {
        self.groups
            .iter()
            .filter(|(id, _)| self.check(id).is_ok())
            .map(|(_, g)| g.clone())
            .collect()
    }

    /// Starts loading a partition that is not owned: returns the load's id, or `None` when the
    /// partition is already loaded or loading.
    pub fn begin_load(&mut self, partition: i32) -> Option<u64> {
        if self.partitions.contains_key(&partition) {
            return None;
        }
        let load = self.next_load;
        self.next_load += 1;
        self.partitions
            .insert(partition, PartitionState::Loading(load));
        Some(load)
    }

    /// Completes a load with the groups it replayed. False (and nothing inserted) when the
    /// partition was unloaded, or loaded again, since the load began.
    pub fn finish_load(
        &mut self,
        partition: i32,
        load: u64,
        groups: Vec<(String, Arc<Mutex<Group>>)>,
    ) -> bool {
        if self.partitions.get(&partition) != Some(&PartitionState::Loading(load)) {
            return false;
        }
        self.partitions.insert(partition, PartitionState::Loaded);
        self.groups.extend(groups);
        true
    }

    /// A load that failed: the partition is not owned (unless a newer load or unload took over).
    pub fn abort_load(&mut self, partition: i32, load: u64) {
        if self.partitions.get(&partition) == Some(&PartitionState::Loading(load)) {
            self.partitions.remove(&partition);
        }
    }

    /// Disowns a partition and removes its groups from the cache, returning them.
    pub fn unload(&mut self, partition: i32) -> Vec<Arc<Mutex<Group>>> {
        self.partitions.remove(&partition);
        let num_partitions = self.num_partitions;
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|id| partition_for(id, num_partitions) == partition)
            .cloned()
            .collect();
        ids.iter().filter_map(|id| self.groups.remove(id)).collect()
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        self.partitions.get(&partition) == Some(&PartitionState::Loaded)
    }

    pub fn owned_partitions(&self) -> Vec<i32> {
        let mut owned: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, state)| **state == PartitionState::Loaded)
            .map(|(p, _)| *p)
            .collect();
        owned.sort_unstable();
        owned
    }

    pub fn any_loading(&self) -> bool {
        self.partitions
            .values()
            .any(|state| matches!(state, PartitionState::Loading(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_exist_only_in_loaded_partitions() {
        let mut cache = GroupCache::new(4);
        let p = partition_for("g", 4);
        assert_eq!(cache.get("g").err(), Some(Unowned::NotCoordinator));
        assert!(cache.get_or_create("g").is_err());
        let load = cache.begin_load(p).expect("not owned yet");
        assert_eq!(cache.begin_load(p), None, "a second load is not started");
        assert_eq!(cache.get("g").err(), Some(Unowned::LoadInProgress));
        assert!(cache.any_loading());
        assert!(cache.finish_load(p, load, Vec::new()));
        assert!(cache.is_loaded(p));
        assert_eq!(cache.owned_partitions(), [p]);
        assert!(cache.get_or_create("g").is_ok());
        assert_eq!(cache.unload(p).len(), 1);
        assert_eq!(cache.get("g").err(), Some(Unowned::NotCoordinator));
        assert!(cache.owned_partitions().is_empty());
    }

    #[test]
    fn a_load_overtaken_by_an_unload_inserts_nothing() {
        let mut cache = GroupCache::new(4);
        let p = partition_for("g", 4);
        let first = cache.begin_load(p).expect("not owned");
        cache.unload(p);
        let second = cache.begin_load(p).expect("unloaded");
        let group = Arc::new(Mutex::new(Group::new("g".into(), 0)));
        assert!(!cache.finish_load(p, first, vec![("g".into(), group)]));
        cache.abort_load(p, first);
        assert_eq!(cache.get("g").err(), Some(Unowned::LoadInProgress));
        assert!(cache.finish_load(p, second, Vec::new()));
        assert_eq!(cache.get("g").ok().flatten().map(|_| ()), None);
    }
}
