//! openraft's storage conformance suite over the metadata-log store (strata-log) and the
//! image state machine.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use strata_controller::raft_storage::{LogStore, StateMachine, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(dir.path()).expect("open log store");
        let sm = StateMachine::open(&dir.path().join("__cluster_metadata-0"), "test-cluster")
            .expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_conformance_suite() {
    Suite::test_all(Builder).expect("conformance suite");
}

#[test]
fn entries_survive_reopen_as_kafka_batches() {
    use openraft::storage::RaftLogStorage;
    use openraft::RaftLogReader;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut log = LogStore::open(dir.path()).unwrap();
        let vote = openraft::Vote::new(3, 1);
        log.save_vote(&vote).await.unwrap();
        let entries: Vec<openraft::Entry<TypeConfig>> = (0..5)
            .map(|i| openraft::Entry {
                log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), i),
                payload: openraft::EntryPayload::Blank,
            })
            .collect();
        // Through the public blocking helper: append then wait for the flush callback.
        use openraft::storage::RaftLogStorageExt;
        log.blocking_append(entries).await.unwrap();
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        let read = log.try_get_log_entries(1..4).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(4));
    });
    assert!(dir
        .path()
        .join("__cluster_metadata-0/00000000000000000000.log")
        .exists());
}
