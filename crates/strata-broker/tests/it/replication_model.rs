//! The replica state machine of `partition.rs` under a simulated network: three replicas of one
//! partition, a controller model that elects leaders from the live ISR (clean elections only)
//! and applies the ISR changes leaders propose, and random sequences of appends, follower
//! fetches (with Kafka's divergence check and truncation), crashes and restarts, and time
//! passing (ISR shrinks). After every step: one leader per epoch, the high watermark never moves
//! back under one leader, every record below a high watermark a leader reached is never lost or
//! changed on the current leader, and every replica agrees with those records where it has them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use strata_broker::partition::{IsrProposal, Partition, PartitionSet};
use strata_log::LogConfig;

const REPLICAS: [i32; 3] = [1, 2, 3];
const LAG_MS: i64 = 1_000;

#[derive(Debug, Clone)]
enum Step {
    Append(u8),
    Fetch(usize),
    Crash(usize),
    Restart(usize),
    Tick(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u8..4).prop_map(Step::Append),
        5 => (0usize..3).prop_map(Step::Fetch),
        1 => (0usize..3).prop_map(Step::Crash),
        1 => (0usize..3).prop_map(Step::Restart),
        1 => (0u16..1500).prop_map(Step::Tick),
    ]
}

fn batch(values: &[String]) -> Vec<u8> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(v.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.to_vec()
}

/// (offset, value) of every record in `p`'s log.
fn contents(p: &Partition) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    let end = p.log_end_offset();
    if end == 0 {
        return out;
    }
    let slice = p.log.read(0, usize::MAX / 2, end).expect("read");
    let mut bytes = slice.bytes.clone();
    for set in strata_kafka::records::decode_batches(&mut bytes).expect("decode") {
        for r in set.records {
            let v = String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap();
            out.insert(r.offset, v);
        }
    }
    out
}

struct Model {
    _dirs: Vec<tempfile::TempDir>,
    replicas: Vec<Arc<Partition>>,
    alive: [bool; 3],
    leader: Option<usize>,
    epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
    now: i64,
    next_value: u64,
    /// Every record below a high watermark a leader reached.
    committed: BTreeMap<i64, String>,
    leaders_by_epoch: BTreeMap<i32, usize>,
    last_hw: (i32, i64),
}

impl Model {
    fn new() -> Model {
        let mut dirs = Vec::new();
        let mut replicas = Vec::new();
        for id in REPLICAS {
            let dir = tempfile::tempdir().unwrap();
            let set = PartitionSet::new(dir.path(), id);
            set.open_partitions("t", uuid::Uuid::nil(), 0, 1, &LogConfig::default())
                .unwrap();
            replicas.push(set.get("t", 0).unwrap());
            dirs.push(dir);
        }
        let mut m = Model {
            _dirs: dirs,
            replicas,
            alive: [true; 3],
            leader: None,
            epoch: 0,
            partition_epoch: 0,
            isr: REPLICAS.to_vec(),
            now: 0,
            next_value: 0,
            committed: BTreeMap::new(),
            leaders_by_epoch: BTreeMap::new(),
            last_hw: (-1, 0),
        };
        m.elect(Some(0));
        m
    }

    /// A new leader from the live ISR (clean elections only), or offline.
    fn elect(&mut self, prefer: Option<usize>) {
        let candidates: Vec<usize> = (0..3)
            .filter(|i| self.alive[*i] && self.isr.contains(&REPLICAS[*i]))
            .collect();
        let chosen = prefer
            .filter(|p| candidates.contains(p))
            .or_else(|| candidates.first().copied());
        self.epoch += 1;
        self.partition_epoch += 1;
        self.leader = chosen;
        for (i, p) in self.replicas.iter().enumerate() {
            if !self.alive[i] {
                continue;
            }
            match chosen {
                Some(l) if l == i => {
                    p.make_leader(
                        self.epoch,
                        self.partition_epoch,
                        &REPLICAS,
                        &self.isr,
                        self.now,
                    );
                }
                Some(l) => {
                    p.make_follower(REPLICAS[l], self.epoch);
                }
                None => p.make_offline(self.epoch),
            }
        }
        if let Some(l) = chosen {
            assert!(
                self.leaders_by_epoch.insert(self.epoch, l).is_none(),
                "two leaders in epoch {}",
                self.epoch
            );
        }
    }

    /// The controller's side of an ISR proposal.
    fn apply_isr(&mut self, leader: usize, proposal: IsrProposal) {
        let p = &self.replicas[leader];
        if Some(leader) != self.leader
            || proposal.leader_epoch != self.epoch
            || proposal.partition_epoch != self.partition_epoch
        {
            p.isr_answer(&proposal, None);
            return;
        }
        self.partition_epoch += 1;
        self.isr = proposal.isr.clone();
        p.isr_answer(
            &proposal,
            Some((proposal.isr.clone(), self.partition_epoch)),
        );
    }

    fn run(&mut self, step: &Step) {
        match *step {
            Step::Append(n) => {
                let Some(l) = self.leader else { return };
                let values: Vec<String> = (0..n)
                    .map(|_| {
                        self.next_value += 1;
                        format!("v{}", self.next_value)
                    })
                    .collect();
                let mut b = batch(&values);
                self.replicas[l].append_as_leader(&mut b, self.now).unwrap();
            }
            Step::Fetch(f) => {
                let Some(l) = self.leader else { return };
                if f == l || !self.alive[f] {
                    return;
                }
                let (leader, follower) = (self.replicas[l].clone(), self.replicas[f].clone());
                // Divergence: the follower's last epoch as the leader knows it.
                if let Some(last) = follower.log.latest_epoch() {
                    let (epoch, end) = leader.log.end_offset_for_epoch(last);
                    if epoch != last || end < follower.log_end_offset() {
                        let (_, own_end) = follower.log.end_offset_for_epoch(epoch);
                        let to = own_end.min(end).max(0).min(follower.log_end_offset());
                        follower.truncate_to(to).unwrap();
                        return;
                    }
                }
                let offset = follower.log_end_offset();
                let answer = leader
                    .record_follower_fetch(
                        REPLICAS[f],
                        offset,
                        follower.log_start_offset(),
                        true,
                        self.now,
                    )
                    .expect("leader answers its replicas");
                if offset < leader.log_end_offset() {
                    let slice = leader
                        .log
                        .read(offset, 1 << 20, leader.log_end_offset())
                        .unwrap();
                    follower
                        .as_follower_of(REPLICAS[l], self.epoch, || {
                            follower.append_fetched(&slice.bytes)
                        })
                        .expect("the follower follows this leader at this epoch")
                        .unwrap();
                }
                follower.as_follower_of(REPLICAS[l], self.epoch, || {
                    follower.follower_high_watermark(answer.high_watermark)
                });
                if let Some(p) = answer.expand {
                    self.apply_isr(l, p);
                }
            }
            Step::Crash(i) => {
                if !self.alive[i] || self.alive.iter().filter(|a| **a).count() == 1 {
                    return;
                }
                self.alive[i] = false;
                self.replicas[i].make_offline(self.epoch);
                // Fenced: out of the ISR unless it is the last member.
                if self.isr.len() > 1 {
                    self.isr.retain(|id| *id != REPLICAS[i]);
                }
                if self.leader == Some(i) || self.leader.is_none() {
                    self.elect(None);
                } else if let Some(l) = self.leader {
                    self.partition_epoch += 1;
                    self.replicas[l].make_leader(
                        self.epoch,
                        self.partition_epoch,
                        &REPLICAS,
                        &self.isr,
                        self.now,
                    );
                }
            }
            Step::Restart(i) => {
                if self.alive[i] {
                    return;
                }
                self.alive[i] = true;
                match self.leader {
                    Some(l) => {
                        self.replicas[i].make_follower(REPLICAS[l], self.epoch);
                    }
                    None => self.elect(None),
                }
            }
            Step::Tick(ms) => {
                self.now += i64::from(ms);
                let Some(l) = self.leader else { return };
                if let Some(p) = self.replicas[l].isr_shrink(self.now, LAG_MS) {
                    self.apply_isr(l, p);
                }
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let Some(l) = self.leader else { return };
        let leader = &self.replicas[l];
        let hw = leader.high_watermark();
        if self.last_hw.0 == self.epoch {
            assert!(hw >= self.last_hw.1, "HW moved back under one leader");
        }
        self.last_hw = (self.epoch, hw);
        let on_leader = contents(leader);
        // Committed records are never lost or changed on the leader.
        for (offset, value) in &self.committed {
            assert_eq!(
                on_leader.get(offset),
                Some(value),
                "committed offset {offset} changed"
            );
        }
        for (offset, value) in on_leader.range(..hw) {
            self.committed.insert(*offset, value.clone());
        }
        // Every replica agrees with the committed records it holds.
        for p in &self.replicas {
            let c = contents(p);
            for (offset, value) in &c {
                if let Some(v) = self.committed.get(offset) {
                    if *offset < p.high_watermark() {
                        assert_eq!(v, value, "replica disagrees below its HW at {offset}");
                    }
                }
            }
            let offsets: BTreeSet<i64> = c.keys().copied().collect();
            assert!(offsets
                .iter()
                .zip(offsets.iter().skip(1))
                .all(|(a, b)| a < b));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replicas_never_lose_or_change_committed_records(steps in prop::collection::vec(step(), 1..120)) {
        let mut m = Model::new();
        for s in &steps {
            m.run(s);
        }
    }
}
