//! The engine's Kafka-side actions, over the public Kafka protocol and Strata's failover
//! extensions (`strata_kafka::failover`): probes, lag, fences and mandates, the final
//! checkpoint, promotion and the quarantine of a divergent tail. A fence and a promotion of a
//! Strata side also release its idempotent producers from their sequences and raise its
//! producer-id floor (see [`promotion_producer_id_floor`]). The driver runs the other actions
//! itself (stopping and starting the mirror, pointing discovery).
//!
//! [`FlowSides`] is built from the flow as the mirror runs it source → target; a mirror from
//! the target back to the source is the same flow with its ends swapped
//! ([`FlowSides::direction`]). Failover keeps topic names (`Identity` naming): promoting or
//! quarantining a `Prefixed` flow is refused.
//!
//! A cluster that does not know Strata's topic config `strata.mirror.source` is *foreign*
//! (Apache Kafka; asked once per side with a validate-only CreateTopics, since Kafka stores
//! unknown broker configs such as the fence's without a word): it gets no fence config,
//! mandate or producer reset, and is fenced with a DENY WRITE ACL for every principal on every
//! topic when the flow allows it (`fenceForeignClusterWithAcl`), which needs an authorizer on
//! that cluster and the engine's and the mirror's principal among its super users; otherwise
//! its fence stays unconfirmed and the engine waits for what it can prove instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strata_client::{
    AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType, Client, ClientConfig,
    ConfigOp, Error, FetchPartitionSpec, FetchRequestSpec, FetchedRecord, NewTopic, OffsetSpec,
    ProducerConfig, ProducerRecord,
};
use strata_flow::{NamingMode, OffsetMode};
use strata_kafka::failover::{
    divergent_topic, DIVERGENT_OFFSET_HEADER, MANDATE_EXPIRY_CONFIG, PRODUCER_RESET_CONFIG,
    TRUNCATE_OFFSETS_CONFIG, WRITE_FENCE_CONFIG, WRITE_FENCE_DRAINED_CONFIG,
};
use strata_kafka::preserve::MIRROR_SOURCE_CONFIG;
use strata_mirror::{Mirror, MirrorConfig, ReplicationPolicy, TopicSelection};

use crate::engine::{name, other, Action, Offsets, Outcome, Side};

/// The client id of the engine's connections. The write fence lets it through for the
/// records it copies into quarantine topics, as it lets the mirror through.
pub const CLIENT_ID: &str = "strata-mirror-failover";

/// Kafka's error codes the actions tell apart.
const INVALID_CONFIG: i16 = 40;
const SECURITY_DISABLED: i16 = 54;
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// The name prefix of the topic whose creation [`FlowSides::is_foreign`] has validated (never
/// created; a unique suffix each time, since an existing topic would answer
/// TOPIC_ALREADY_EXISTS before its configs are looked at).
const KIND_PROBE_TOPIC: &str = "__strata_failover_kind_probe";

/// How long a fenced side's end offsets must stand still before its drain counts as done when
/// its brokers cannot report the drain themselves (a foreign cluster): several of a follower's
/// fetch waits (Kafka's `replica.fetch.wait.max.ms` is 500 ms) and far more than a broker takes
/// to apply a committed metadata record (see [`FlowSides::drained`]).
const DRAIN_SETTLE: Duration = Duration::from_secs(2);

/// How long the leaders may take to apply a tail truncation.
const TRUNCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The two clusters of a flow and what the flow mirrors.
#[derive(Debug, Clone)]
pub struct FlowSides {
    /// The flow as it runs from source to target.
    pub config: MirrorConfig,
    /// How long one probe may take.
    pub probe_timeout: Duration,
    /// Fence a foreign cluster with a DENY WRITE ACL.
    pub fence_foreign_with_acl: bool,
    /// Whether the source and the target are foreign, once asked.
    foreign: Arc<Mutex<[Option<bool>; 2]>>,
}

impl FlowSides {
    pub fn new(config: MirrorConfig) -> Self {
        FlowSides {
            fence_foreign_with_acl: false,
            probe_timeout: Duration::from_secs(5),
            config,
            foreign: Arc::default(),
        }
    }

    /// Whether `side` is a foreign (not Strata) cluster: it refuses to validate a topic with
    /// Strata's `strata.mirror.source` config (INVALID_CONFIG) as Apache Kafka refuses any
    /// unknown topic config. One partition, one replica, so a cluster with brokers down still
    /// answers; the engine's principal needs CREATE there (any other refusal is an error, not
    /// an answer). Asked once per side; nothing is created.
    pub async fn is_foreign(&self, side: Side, client: &Client) -> Result<bool, Error> {
        let slot = match side {
            Side::Source => 0,
            Side::Target => 1,
        };
        if let Some(known) = self.foreign.lock().expect("kind cache")[slot] {
            return Ok(known);
        }
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut probe = NewTopic::new(format!("{KIND_PROBE_TOPIC}_{nonce}"));
        probe.partitions = Some(1);
        probe.replication_factor = Some(1);
        probe
            .configs
            .insert(MIRROR_SOURCE_CONFIG.into(), "kind-probe".into());
        let foreign = match client.admin().validate_topic(&probe).await {
            Ok(()) => false,
            Err(e) if e.code() == Some(INVALID_CONFIG) => true,
            Err(e) => return Err(e),
        };
        tracing::info!(
            side = name(side),
            foreign,
            "cluster kind: {}",
            if foreign {
                "foreign (not Strata)"
            } else {
                "Strata"
            }
        );
        self.foreign.lock().expect("kind cache")[slot] = Some(foreign);
        Ok(foreign)
    }

    /// The flow as the mirror runs it from `from` to the other side.
    pub fn direction(&self, from: Side) -> MirrorConfig {
        let mut c = self.config.clone();
        if from == Side::Target {
            std::mem::swap(&mut c.source, &mut c.target);
            std::mem::swap(&mut c.mirror.source_security, &mut c.mirror.target_security);
        }
        c
    }

    fn client_config(&self, side: Side) -> ClientConfig {
        let mut c = match side {
            Side::Source => self.config.source_client(),
            Side::Target => self.config.target_client(),
        };
        c.client_id = CLIENT_ID.to_string();
        c.request_timeout = c.request_timeout.min(Duration::from_secs(10));
        c.connect_timeout = c.connect_timeout.min(Duration::from_secs(5));
        c.retries = c.retries.min(3);
        c
    }

    /// A connection to `side`.
    pub async fn connect(&self, side: Side) -> Result<Client, Error> {
        Client::connect(self.client_config(side)).await
    }

    fn alias(&self, side: Side) -> &str {
        match side {
            Side::Source => &self.config.source.alias,
            Side::Target => &self.config.target.alias,
        }
    }

    /// Whether `side` answers Metadata, DescribeCluster and ListOffsets (of one mirrored
    /// partition, if there is one) within the probe timeout.
    pub async fn probe(&self, side: Side) -> bool {
        let probe = async {
            let client = self.connect(side).await?;
            let meta = client.metadata(None).await?;
            client.describe_cluster().await?;
            let selection = self.selection()?;
            if let Some(t) = meta
                .topics
                .values()
                .find(|t| selection.matches(&t.name) && !t.partitions.is_empty())
            {
                client
                    .list_offsets(&t.name, &[t.partitions[0].partition], OffsetSpec::Latest)
                    .await?;
            }
            Ok::<_, Error>(())
        };
        match tokio::time::timeout(self.probe_timeout, probe).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::info!(side = name(side), error = %e, "probe failed");
                false
            }
            Err(_) => {
                tracing::info!(side = name(side), timeout = ?self.probe_timeout, "probe timed out");
                false
            }
        }
    }

    fn selection(&self) -> Result<TopicSelection, Error> {
        TopicSelection::compile(&self.config.topics).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// The mirrored topics present on `side` with their partition counts: those the flow's
    /// filter selects, minus internal, bookkeeping and quarantine topics.
    pub async fn mirrored_topics(&self, client: &Client) -> Result<BTreeMap<String, i32>, Error> {
        let selection = self.selection()?;
        let meta = client.metadata(None).await?;
        Ok(meta
            .topics
            .values()
            .filter(|t| !t.internal && is_mirrorable(&t.name) && selection.matches(&t.name))
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect())
    }

    /// End offsets of every mirrored topic on `client`'s cluster.
    async fn end_offsets(&self, client: &Client) -> Result<Offsets, Error> {
        let mut out = Offsets::new();
        for (topic, partitions) in self.mirrored_topics(client).await? {
            let parts: Vec<i32> = (0..partitions).collect();
            let ends = client
                .list_offsets(&topic, &parts, OffsetSpec::Latest)
                .await?;
            out.insert(
                topic,
                parts
                    .iter()
                    .map(|p| ends.get(p).map_or(0, |o| o.offset))
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Records on `from` not yet copied to the other side: per partition, `from`'s end minus
    /// the other side's end (`Preserve`, same offsets on both sides) or minus the mirror's
    /// committed progress on `from` (`Translate`).
    pub async fn lag(&self, from: Side) -> Result<i64, Error> {
        self.lag_and_ends(from).await.map(|(lag, _)| lag)
    }

    /// The drain of a planned failover: the records on the fenced side `from` not yet copied,
    /// counted as 0 only once nothing written before the fence can still raise `from`'s ends.
    /// A confirmed fence is committed in the metadata log, but each broker applies it a moment
    /// later, and a write it let through before (an `acks=all` append waiting for its
    /// followers) raises the end once it is replicated: seen at its first look, an empty lag
    /// can precede the last acknowledged record, which the stopped mirror would then leave
    /// behind on the old side. A Strata side says when that is over: each broker answers
    /// `strata.write.fence.drained` with the fence's id once no produce request admitted
    /// before the fence runs and every partition it led then has its high watermark at the log
    /// end it had then ([`FlowSides::undrained_brokers`]). The ends are then read again and must equal the
    /// ones the lag was measured on (a leadership that moved in between serves a trailing high
    /// watermark for a moment). A side that cannot say (a foreign cluster, a Strata broker
    /// without the config) must keep its ends still for [`DRAIN_SETTLE`] instead. Until then
    /// the lag reported is at least 1 and the engine asks again.
    async fn drained(&self, from: Side) -> Result<i64, Error> {
        let (lag, ends) = self.lag_and_ends(from).await?;
        if lag > 0 {
            return Ok(lag);
        }
        let src = self.connect(from).await?;
        let settle = if self.is_foreign(from, &src).await? {
            true
        } else {
            let (undrained, unknown) = self.undrained_brokers(&src).await?;
            if !undrained.is_empty() {
                tracing::info!(from = name(from), brokers = ?undrained,
                    "the fence does not yet hold every write; draining on");
                return Ok(1);
            }
            if !unknown.is_empty() {
                tracing::info!(from = name(from), brokers = ?unknown,
                    "brokers without {WRITE_FENCE_DRAINED_CONFIG}: waiting {DRAIN_SETTLE:?} for the ends to stand still");
            }
            !unknown.is_empty()
        };
        if settle {
            tokio::time::sleep(DRAIN_SETTLE).await;
        }
        let (lag, later) = self.lag_and_ends(from).await?;
        if later != ends {
            tracing::info!(
                from = name(from),
                "the fenced side's end offsets still moved; draining on"
            );
            return Ok(lag.max(1));
        }
        Ok(lag)
    }

    /// The brokers of `client`'s cluster whose `strata.write.fence.drained` does not name the
    /// fence the cluster carries now, and those that do not know the config (answer none);
    /// each asked directly. Every broker counts as not drained while no fence is set.
    async fn undrained_brokers(&self, client: &Client) -> Result<(Vec<i32>, Vec<i32>), Error> {
        let admin = client.admin();
        let fence = admin
            .describe_default_broker_configs()
            .await?
            .into_iter()
            .find(|e| e.name == WRITE_FENCE_CONFIG)
            .and_then(|e| e.value)
            .unwrap_or_default();
        let meta = client.metadata(Some(&[])).await?;
        let (mut undrained, mut unknown) = (Vec::new(), Vec::new());
        for broker in &meta.brokers {
            match admin
                .describe_broker_config(broker.id, WRITE_FENCE_DRAINED_CONFIG)
                .await?
            {
                None => unknown.push(broker.id),
                Some(id) if fence.is_empty() || id != fence => undrained.push(broker.id),
                Some(_) => {}
            }
        }
        Ok((undrained, unknown))
    }

    async fn lag_and_ends(&self, from: Side) -> Result<(i64, Offsets), Error> {
        let src = self.connect(from).await?;
        let ends = self.end_offsets(&src).await?;
        let done: BTreeMap<(String, i32), i64> = match self.config.offsets {
            OffsetMode::Preserve => {
                let dst = self.connect(other(from)).await?;
                let mut done = BTreeMap::new();
                for (topic, theirs) in self.end_offsets(&dst).await? {
                    for (p, end) in theirs.into_iter().enumerate() {
                        done.insert((topic.clone(), p as i32), end);
                    }
                }
                done
            }
            OffsetMode::Translate => {
                src.admin()
                    .fetch_group_offsets(&self.progress_group(from))
                    .await?
            }
        };
        let lag = ends
            .iter()
            .flat_map(|(topic, ends)| {
                let done = &done;
                ends.iter().enumerate().map(move |(p, end)| {
                    let copied = done.get(&(topic.clone(), p as i32)).copied().unwrap_or(0);
                    (end - copied).max(0)
                })
            })
            .sum();
        Ok((lag, ends))
    }

    /// The consumer group in which the mirror from `from` commits its progress on `from`.
    fn progress_group(&self, from: Side) -> String {
        let c = self.direction(from);
        ReplicationPolicy::new(c.naming, &c.source.alias, &c.target.alias).progress_group()
    }

    /// Runs one of the engine's Kafka-side actions. The driver's own actions (mirror,
    /// discovery) and the waits are not for this function and fail.
    pub async fn run(&self, action: &Action) -> Outcome {
        let result = match action {
            Action::RenewMandate { side, until_ms } => self
                .renew_mandate(*side, *until_ms)
                .await
                .map(|_| Outcome::Done),
            // Bounded like a probe: a side cut off by the network makes every connection
            // attempt run into its timeout and retries, and the failover must not wait for
            // that (an unconfirmed fence is what the mandate is for).
            Action::Fence { side, id } => {
                match tokio::time::timeout(self.probe_timeout, self.fence(*side, id)).await {
                    Ok(result) => result,
                    Err(_) => Err(Error::Protocol(format!(
                        "the {} did not answer the write fence within {:?}",
                        name(*side),
                        self.probe_timeout
                    ))),
                }
            }
            Action::CheckDrained { from, .. } => self
                .drained(*from)
                .await
                .map(|lag| Outcome::Drained { lag }),
            Action::FinalCheckpoint { from, .. } => Mirror::checkpoint_once(self.direction(*from))
                .await
                .map(|n| {
                    tracing::info!(from = name(*from), groups = n, "final checkpoint written");
                    Outcome::Done
                })
                .map_err(|e| Error::Protocol(e.to_string())),
            Action::Promote {
                side,
                id,
                mandate_until_ms,
            } => self.promote(*side, id, *mandate_until_ms).await,
            Action::Quarantine {
                side,
                id,
                offsets,
                truncate,
            } => self.quarantine(*side, id, offsets, *truncate).await,
            other => Err(Error::Protocol(format!(
                "{other:?} is the driver's action, not a Kafka one"
            ))),
        };
        result.unwrap_or_else(|e| Outcome::Failed(e.to_string()))
    }

    async fn renew_mandate(&self, side: Side, until_ms: i64) -> Result<(), Error> {
        let client = self.connect(side).await?;
        // A foreign cluster has no mandates: nothing to renew. A cluster that cannot be told
        // (the probe failed) gets the renewal all the same: a Strata cluster must not fence
        // itself for want of an answer, and Kafka keeps the unknown config unread.
        match self.is_foreign(side, &client).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(side = name(side), error = %e, "cluster kind unknown; renewing the mandate");
            }
        }
        let ops = [ConfigOp::Set(
            MANDATE_EXPIRY_CONFIG.into(),
            until_ms.to_string(),
        )];
        client
            .admin()
            .incremental_alter_broker_configs(None, &ops)
            .await
    }

    async fn fence(&self, side: Side, id: &str) -> Result<Outcome, Error> {
        let client = self.connect(side).await?;
        if !self.is_foreign(side, &client).await? {
            // The fenced side's later producer ids start at a floor of now, above every id the
            // other side hands out until its promotion's floor: the mirror carries producer ids
            // across, so the two clusters' ids must not meet.
            let ops = [
                ConfigOp::Set(WRITE_FENCE_CONFIG.into(), id.to_string()),
                ConfigOp::Set(
                    PRODUCER_RESET_CONFIG.into(),
                    promotion_producer_id_floor(strata_kafka::now_ms()).to_string(),
                ),
            ];
            client
                .admin()
                .incremental_alter_broker_configs(None, &ops)
                .await?;
            tracing::info!(side = name(side), id, "write fence set");
            return Ok(Outcome::Fenced { confirmed: true });
        }
        if !self.fence_foreign_with_acl {
            tracing::warn!(
                side = name(side),
                "foreign cluster: not fenced (fenceForeignClusterWithAcl is off)"
            );
            return Ok(Outcome::Fenced { confirmed: false });
        }
        match client.admin().create_acls(&[deny_all_writes()]).await {
            Ok(()) => {
                tracing::info!(
                    side = name(side),
                    id,
                    "foreign cluster fenced with a DENY WRITE ACL"
                );
                Ok(Outcome::Fenced { confirmed: true })
            }
            Err(e) if e.code() == Some(SECURITY_DISABLED) => {
                tracing::warn!(
                    side = name(side),
                    "foreign cluster without an authorizer: not fenced"
                );
                Ok(Outcome::Fenced { confirmed: false })
            }
            Err(e) => Err(e),
        }
    }

    fn require_identity(&self) -> Result<(), Error> {
        match self.config.naming {
            NamingMode::Identity => Ok(()),
            _ => Err(Error::Protocol("failover needs Identity naming: clients must find the same topic names on both sides".into())),
        }
    }

    async fn promote(
        &self,
        side: Side,
        id: &str,
        mandate_until_ms: Option<i64>,
    ) -> Result<Outcome, Error> {
        self.require_identity()?;
        let client = self.connect(side).await?;
        let admin = client.admin();
        let topics = self.mirrored_topics(&client).await?;
        if self.config.offsets == OffsetMode::Preserve {
            for topic in topics.keys() {
                let configs = admin.describe_topic_configs(topic).await?;
                if is_mirror_target(&configs) {
                    admin
                        .incremental_alter_topic_configs(
                            topic,
                            &[ConfigOp::Delete(MIRROR_SOURCE_CONFIG.into())],
                        )
                        .await?;
                }
            }
        }
        if !self.is_foreign(side, &client).await? {
            // One request, so one metadata-log entry: the producer reset is in place on every
            // partition before the lifted fence lets the first producer in.
            let mut ops = vec![ConfigOp::Delete(WRITE_FENCE_CONFIG.into())];
            ops.push(match mandate_until_ms {
                Some(until) => ConfigOp::Set(MANDATE_EXPIRY_CONFIG.into(), until.to_string()),
                None => ConfigOp::Delete(MANDATE_EXPIRY_CONFIG.into()),
            });
            ops.push(ConfigOp::Set(
                PRODUCER_RESET_CONFIG.into(),
                promotion_producer_id_floor(strata_kafka::now_ms()).to_string(),
            ));
            admin.incremental_alter_broker_configs(None, &ops).await?;
        } else if self.fence_foreign_with_acl {
            match admin.delete_acls(&[deny_all_writes()]).await {
                Ok(_) => {}
                Err(e) if e.code() == Some(SECURITY_DISABLED) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(side = name(side), id, topics = topics.len(), "promoted");
        Ok(Outcome::Promoted {
            end_offsets: self.end_offsets(&client).await?,
        })
    }

    /// Makes `side` a mirror target of the other side again: the records it holds past where
    /// the other side took over are copied to `<topic>.divergent.<id>` (each with its offset
    /// in the header [`DIVERGENT_OFFSET_HEADER`]; a copy cut short resumes after the last
    /// record it holds) and, with `truncate`, cut off its log on every replica. A foreign
    /// side cannot cut its logs: its tail stays (`cannot_truncate` in the outcome).
    ///
    /// Where the tail begins: in `Preserve` mode the other side's end offsets when it was
    /// promoted (`offsets`), which is where the two logs part; in `Translate` mode after the
    /// last record the mirror copied before the promotion ([`copied_up_to`]: found from its
    /// committed progress on `side`). A `Translate` rejoin also sets the reverse
    /// mirror's starting point on the new active side to `offsets`, so it copies only records
    /// written there after the promotion.
    async fn quarantine(
        &self,
        side: Side,
        id: &str,
        offsets: &Offsets,
        truncate: bool,
    ) -> Result<Outcome, Error> {
        self.require_identity()?;
        let client = self.connect(side).await?;
        let admin = client.admin();
        let topics = self.mirrored_topics(&client).await?;
        let starts: Offsets = match self.config.offsets {
            OffsetMode::Preserve => offsets.clone(),
            OffsetMode::Translate => {
                let committed = admin
                    .fetch_group_offsets(&self.progress_group(side))
                    .await?;
                topics
                    .iter()
                    .map(|(t, n)| {
                        (
                            t.clone(),
                            (0..*n)
                                .map(|p| committed.get(&(t.clone(), p)).copied().unwrap_or(0))
                                .collect(),
                        )
                    })
                    .collect()
            }
        };
        // In Translate mode the new active side's last record before its promotion says how
        // far the mirror had copied (its committed progress may trail that by one commit
        // interval).
        let active = match self.config.offsets {
            OffsetMode::Translate => Some(self.connect(other(side)).await?),
            OffsetMode::Preserve => None,
        };
        let mut divergent = 0i64;
        let mut partitions = Vec::new();
        let mut cuts: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
        for (topic, count) in &topics {
            if self.config.offsets == OffsetMode::Preserve {
                let configs = admin.describe_topic_configs(topic).await?;
                if !is_mirror_target(&configs) {
                    let alias = self.alias(other(side)).to_string();
                    admin
                        .incremental_alter_topic_configs(
                            topic,
                            &[ConfigOp::Set(MIRROR_SOURCE_CONFIG.into(), alias)],
                        )
                        .await?;
                }
            }
            let parts: Vec<i32> = (0..*count).collect();
            let ends = client
                .list_offsets(topic, &parts, OffsetSpec::Latest)
                .await?;
            for p in parts {
                let end = ends.get(&p).map_or(0, |o| o.offset);
                // A topic the other side did not have at promotion diverges entirely.
                let mut start = starts
                    .get(topic)
                    .and_then(|s| s.get(p as usize))
                    .copied()
                    .unwrap_or(0);
                if end <= start {
                    continue;
                }
                if let Some(active) = &active {
                    let promoted_end = offsets
                        .get(topic)
                        .and_then(|s| s.get(p as usize))
                        .copied()
                        .unwrap_or(0);
                    start =
                        copied_up_to(&client, active, topic, p, start, end, promoted_end).await?;
                    if end <= start {
                        continue;
                    }
                }
                let copied = self.copy_tail(&client, topic, p, start, end, id).await?;
                divergent += copied;
                partitions.push(format!("{topic}-{p}: {copied}"));
                cuts.entry(topic.clone()).or_default().push((p, start));
            }
        }
        let mut truncated = cuts.is_empty();
        // Apache Kafka has no way to cut a partition's tail (DeleteRecords removes a log's
        // head): a foreign side keeps it, and the engine decides whether the flow goes on.
        let cannot_truncate = self.is_foreign(side, &client).await?;
        if cannot_truncate && !truncated {
            tracing::warn!(
                side = name(side),
                id,
                divergent,
                "a foreign cluster cannot truncate: the divergent tail stays in its logs (and \
                 is copied to the quarantine topics)"
            );
        }
        if truncate && !cannot_truncate && !cuts.is_empty() {
            for (topic, cuts) in &cuts {
                let value = cuts
                    .iter()
                    .map(|(p, o)| format!("{p}:{o}"))
                    .collect::<Vec<_>>()
                    .join(",");
                admin
                    .incremental_alter_topic_configs(
                        topic,
                        &[ConfigOp::Set(TRUNCATE_OFFSETS_CONFIG.into(), value)],
                    )
                    .await?;
            }
            // Each replica truncates when it applies the change; the reverse mirror must not
            // start before the leaders have.
            self.wait_truncated(&client, &cuts).await?;
            truncated = true;
        }
        if let Some(active) = &active {
            // The reverse mirror starts where the new active side was at promotion.
            let group = self.progress_group(other(side));
            let have = active.admin().fetch_group_offsets(&group).await?;
            let start: BTreeMap<(String, i32), i64> = offsets
                .iter()
                .flat_map(|(t, ends)| {
                    ends.iter()
                        .enumerate()
                        .map(move |(p, e)| ((t.clone(), p as i32), *e))
                })
                .filter(|(k, _)| !have.contains_key(k))
                .collect();
            if !start.is_empty() {
                active.admin().commit_group_offsets(&group, &start).await?;
            }
        }
        tracing::info!(
            side = name(side),
            id,
            divergent,
            truncated,
            "divergent tail quarantined"
        );
        Ok(Outcome::Quarantined {
            divergent,
            truncated,
            cannot_truncate,
            partitions,
        })
    }

    /// Waits until every cut partition ends at its cut (the leader applied the truncation).
    async fn wait_truncated(
        &self,
        client: &Client,
        cuts: &BTreeMap<String, Vec<(i32, i64)>>,
    ) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + TRUNCATION_TIMEOUT;
        for (topic, cuts) in cuts {
            let parts: Vec<i32> = cuts.iter().map(|(p, _)| *p).collect();
            loop {
                let ends = client
                    .list_offsets(topic, &parts, OffsetSpec::Latest)
                    .await?;
                let pending: Vec<String> = cuts
                    .iter()
                    .filter(|(p, cut)| ends.get(p).is_none_or(|o| o.offset > *cut))
                    .map(|(p, cut)| format!("{topic}-{p} (cut at {cut})"))
                    .collect();
                if pending.is_empty() {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Protocol(format!(
                        "not truncated yet: {}",
                        pending.join(", ")
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Copies records `[start, end)` of `topic`-`partition` to the partition of the same
    /// number of its quarantine topic, resuming after the last record already copied there.
    /// Returns the records of the tail (copied now or before).
    async fn copy_tail(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
        start: i64,
        end: i64,
        id: &str,
    ) -> Result<i64, Error> {
        let quarantine = divergent_topic(topic, id);
        let partitions = client
            .metadata(Some(&[topic.to_string()]))
            .await?
            .topics
            .get(topic)
            .map_or(1, |t| t.partitions.len() as i32);
        let mut new = NewTopic::new(&quarantine);
        new.partitions = Some(partitions);
        match client.admin().create_topic(&new).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(e),
        }
        let resume = self
            .last_copied(client, &quarantine, partition)
            .await?
            .map_or(start, |o| o + 1)
            .max(start);
        let mut counted = self
            .count_records(client, topic, partition, start, resume)
            .await?;
        let producer = client.producer(ProducerConfig::default());
        let mut at = resume;
        while at < end {
            let (records, next) = fetch_range(client, topic, partition, at, end).await?;
            for r in records {
                let mut headers = r.headers;
                headers.retain(|(k, _)| k != DIVERGENT_OFFSET_HEADER);
                headers.push((
                    DIVERGENT_OFFSET_HEADER.to_string(),
                    Some(Bytes::from(r.offset.to_string())),
                ));
                let delivery = producer
                    .send(ProducerRecord {
                        topic: quarantine.clone(),
                        partition,
                        key: r.key,
                        value: r.value,
                        headers,
                        timestamp: r.timestamp,
                    })
                    .await?;
                delivery.await?;
                counted += 1;
            }
            at = next;
        }
        producer.close().await;
        Ok(counted)
    }

    /// The original offset of the last record copied to `quarantine`'s `partition`.
    async fn last_copied(
        &self,
        client: &Client,
        quarantine: &str,
        partition: i32,
    ) -> Result<Option<i64>, Error> {
        let end = client
            .list_offsets(quarantine, &[partition], OffsetSpec::Latest)
            .await?;
        let end = end.get(&partition).map_or(0, |o| o.offset);
        if end == 0 {
            return Ok(None);
        }
        let records = self
            .read(client, quarantine, partition, end - 1, end)
            .await?;
        Ok(records.last().and_then(|(_, headers)| {
            headers
                .iter()
                .find(|(k, _)| k == DIVERGENT_OFFSET_HEADER)
                .and_then(|(_, v)| v.as_ref())
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        }))
    }

    async fn count_records(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<i64, Error> {
        Ok(self.read(client, topic, partition, from, to).await?.len() as i64)
    }

    /// The offsets and headers of the records in `[from, to)`.
    async fn read(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Vec<(String, Option<Bytes>)>)>, Error> {
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let (records, next) = fetch_range(client, topic, partition, at, to).await?;
            out.extend(records.into_iter().map(|r| (r.offset, r.headers)));
            at = next;
        }
        Ok(out)
    }
}

/// One fetch of `topic`-`partition` from `at`: its records in `[at, to)` and where the next
/// fetch starts (never past `to`, always past `at`, so a loop up to `to` ends).
async fn fetch_range(
    client: &Client,
    topic: &str,
    partition: i32,
    at: i64,
    to: i64,
) -> Result<(Vec<FetchedRecord>, i64), Error> {
    let fetched = client
        .fetch(FetchRequestSpec::new([FetchPartitionSpec {
            topic: topic.to_string(),
            partition,
            offset: at,
        }]))
        .await?;
    let Some(part) = fetched.partitions.into_values().next() else {
        return Ok((Vec::new(), to));
    };
    if let Some(e) = part.error {
        return Err(e);
    }
    let records: Vec<FetchedRecord> = part
        .records
        .into_iter()
        .filter(|r| r.offset >= at && r.offset < to)
        .collect();
    let next = records
        .last()
        .map_or(part.next_offset.max(at + 1), |r| r.offset + 1);
    Ok((records, next.min(to)))
}

/// Where a `Translate` mirror had copied `topic`-`partition` of `side` to when the other side
/// (`active`) was promoted at `promoted_end`: the offset after the record of `side` that is
/// the same (timestamp, key, value) as the last one `active` held then, looked for from the
/// mirror's committed progress `from` on; `from` when none is (nothing past it was copied).
/// The mirror copies records in order, so everything before that record was copied too. (A
/// topic that stamps records with `LogAppendTime` on `active` matches nothing: the tail then
/// begins at the committed progress, counting records copied after it as divergent too.)
async fn copied_up_to(
    side: &Client,
    active: &Client,
    topic: &str,
    partition: i32,
    from: i64,
    end: i64,
    promoted_end: i64,
) -> Result<i64, Error> {
    if promoted_end <= 0 {
        return Ok(from);
    }
    let (mut last, _) =
        fetch_range(active, topic, partition, promoted_end - 1, promoted_end).await?;
    let Some(last) = last.pop() else {
        return Ok(from);
    };
    let mut found = None;
    let mut at = from;
    while at < end {
        let (records, next) = fetch_range(side, topic, partition, at, end).await?;
        found = records
            .iter()
            .rev()
            .find(|r| r.timestamp == last.timestamp && r.key == last.key && r.value == last.value)
            .map(|r| r.offset)
            .or(found);
        if next <= at {
            break;
        }
        at = next;
    }
    Ok(found.map_or(from, |o| o + 1))
}

/// Whether a topic can be mirrored at all: not Kafka's or the mirror's bookkeeping, not a
/// quarantine topic.
fn is_mirrorable(topic: &str) -> bool {
    !strata_mirror::policy::is_internal_topic(topic)
        && !strata_mirror::policy::is_heartbeats(topic)
        && !topic.contains(".divergent.")
}

/// Whether a topic's configs mark it as a mirror target (`strata.mirror.source` set).
fn is_mirror_target(configs: &[strata_client::ConfigEntry]) -> bool {
    configs.iter().any(|c| {
        c.name == MIRROR_SOURCE_CONFIG && c.value.as_deref().is_some_and(|v| !v.is_empty())
    })
}

/// Whether a cluster refused a config because it does not know it (not Strata).
/// The producer-id floor of a promotion or a fence at `now_ms`: producers that move between
/// the clusters keep their ids, and the mirror carries them over with their batches, so neither
/// cluster may hand out an id the other one issued. With the wall clock in milliseconds times
/// 1024, a later floor lies above every id either cluster handed out before it — unless a
/// cluster handed out more than 1024 producer ids per millisecond since its last floor (Kafka's
/// own rate is far below). Ids handed out before the engine first fenced or promoted a cluster
/// start at 0 on both sides and are not kept apart.
pub fn promotion_producer_id_floor(now_ms: i64) -> i64 {
    now_ms.max(0).saturating_mul(1024)
}

/// DENY WRITE on every topic for every principal from every host.
fn deny_all_writes() -> AclBinding {
    AclBinding {
        resource_type: AclResourceType::Topic,
        resource_name: "*".into(),
        pattern_type: AclPatternType::Literal,
        principal: "User:*".into(),
        host: "*".into(),
        operation: AclOperation::Write,
        permission: AclPermission::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reverse_direction_takes_each_clusters_own_client_settings() {
        let mut config = MirrorConfig::new("primary", "a:9092", "standby", "b:9092");
        config
            .mirror
            .source_security
            .insert("security.protocol".into(), "SASL_SSL".into());
        let sides = FlowSides::new(config);
        let forward = sides.direction(Side::Source);
        assert_eq!(forward.source.alias, "primary");
        assert_eq!(
            forward.mirror.source_security["security.protocol"],
            "SASL_SSL"
        );
        let reverse = sides.direction(Side::Target);
        assert_eq!(reverse.source.alias, "standby");
        assert!(reverse.mirror.source_security.is_empty());
        assert_eq!(
            reverse.mirror.target_security["security.protocol"],
            "SASL_SSL"
        );
    }
}
