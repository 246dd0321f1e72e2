//! Which topics and groups a flow mirrors and what mirrored topics are called. Pure: no client.
//!
//! [`ReplicationPolicy`] follows MirrorMaker 2's `DefaultReplicationPolicy` (`Prefixed`, remote
//! topic `<sourceAlias>.<topic>`, separator `.`) and `IdentityReplicationPolicy` (`Identity`).
//! A source topic is mirrored when ([`ReplicationPolicy::should_mirror`]):
//! - the topic filter selects it, or it is a heartbeats topic (`heartbeats`, `*.heartbeats`),
//!   which MM2 always mirrors so that end-to-end liveness can be followed across hops;
//! - it is not internal: `__*` (`__consumer_offsets`, `__transaction_state`), `.*`, `*.internal`,
//!   `*-internal` (covers `mm2-offsets.*.internal`, `mm2-offset-syncs.*.internal`,
//!   `*.checkpoints.internal`) and `mm2-*` bookkeeping topics;
//! - it is not a cycle: under `Prefixed` a topic whose alias chain (`b.a.orders` → `b`, `a`)
//!   contains the target's alias came from the target and is never mirrored back.
//!
//! Under `Identity` names carry no alias, so cycles are broken per record instead: every mirrored
//! record carries the [`PROVENANCE_HEADER`] with the comma-separated chain of clusters it left,
//! and a record whose chain already names the target is skipped ([`ReplicationPolicy::skip_record`]).
//! Heartbeats keep a prefix under `Identity` too (as MM2 does), or the two sides' `heartbeats`
//! topics would collide.

use regex::Regex;
use strata_flow::{GroupFilter, NamingMode, TopicFilter};

/// Header naming the clusters a record was mirrored from, oldest first (`east,west`).
pub const PROVENANCE_HEADER: &str = "strata.mirror.origin";
/// The heartbeats topic, as MirrorMaker 2 names it.
pub const HEARTBEATS_TOPIC: &str = "heartbeats";
const SEPARATOR: &str = ".";

/// Naming and cycle prevention of one flow source → target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationPolicy {
    naming: NamingMode,
    source: String,
    target: String,
}

impl ReplicationPolicy {
    pub fn new(naming: NamingMode, source_alias: &str, target_alias: &str) -> ReplicationPolicy {
        ReplicationPolicy {
            naming,
            source: source_alias.to_string(),
            target: target_alias.to_string(),
        }
    }

    pub fn naming(&self) -> NamingMode {
        self.naming
    }

    /// Name on the target of source topic `topic`.
    pub fn remote_topic(&self, topic: &str) -> String {
        match self.naming {
            NamingMode::Identity if !is_heartbeats(topic) => topic.to_string(),
            _ => format!("{}{SEPARATOR}{topic}", self.source),
        }
    }

    /// Whether source topic `topic` is mirrored, given whether the user's filter selects it.
    pub fn should_mirror(&self, topic: &str, selected: bool) -> bool {
        (selected || is_heartbeats(topic)) && !is_internal_topic(topic) && !self.is_cycle(topic)
    }

    /// Whether `topic` (a source topic name) already came from the target.
    pub fn is_cycle(&self, topic: &str) -> bool {
        let mut rest = topic;
        // Identity names carry no aliases except for heartbeats, which keep MM2's prefix.
        if self.naming == NamingMode::Identity && !is_heartbeats(topic) {
            return false;
        }
        while let Some((alias, upstream)) = rest.split_once(SEPARATOR) {
            if alias == self.target {
                return true;
            }
            rest = upstream;
        }
        false
    }

    /// Whether a record with this provenance chain came from the target (and must not go back).
    pub fn from_target(&self, chain: Option<&[u8]>) -> bool {
        chain
            .and_then(|c| std::str::from_utf8(c).ok())
            .is_some_and(|c| c.split(',').any(|a| a == self.target))
    }

    /// The provenance chain to write on a mirrored record, given the one it arrived with, or
    /// `None` when the record must be skipped because it came from the target. Both namings
    /// skip such records; only `Identity` writes the header (under `Prefixed` the topic name
    /// already says where a record came from, and records stay byte-identical, as with MM2).
    pub fn skip_record(&self, chain: Option<&[u8]>) -> Option<String> {
        if self.from_target(chain) {
            return None;
        }
        let previous = chain
            .and_then(|c| std::str::from_utf8(c).ok())
            .unwrap_or("");
        Some(if previous.is_empty() {
            self.source.clone()
        } else {
            format!("{previous},{}", self.source)
        })
    }

    /// Name of the checkpoints topic on the target (MM2: `<source>.checkpoints.internal`).
    pub fn checkpoints_topic(&self) -> String {
        format!("{}.checkpoints.internal", self.source)
    }

    /// Name of the offset-syncs topic on the target: `mm2-offset-syncs.<source>.internal`, as
    /// MM2 names it with `offset-syncs.topic.location=target` (it names the *other* cluster of
    /// the flow). Named after the source, flows from several sources into one target
    /// (hub-and-spoke) keep their syncs apart, though their topics may share names.
    pub fn offset_syncs_topic(&self) -> String {
        format!("mm2-offset-syncs.{}.internal", self.source)
    }

    /// The source consumer group holding this flow's acknowledged progress.
    pub fn progress_group(&self) -> String {
        format!("strata-mirror-{}-{}", self.source, self.target)
    }
}

/// `heartbeats` or `<alias>.heartbeats` (any depth).
pub fn is_heartbeats(topic: &str) -> bool {
    topic == HEARTBEATS_TOPIC || topic.ends_with(".heartbeats")
}

/// Kafka's and MirrorMaker 2's internal topics, never mirrored.
pub fn is_internal_topic(topic: &str) -> bool {
    topic.starts_with("__")
        || topic.starts_with('.')
        || topic.ends_with(".internal")
        || topic.ends_with("-internal")
        || topic.starts_with("mm2-")
}

/// A filter pattern that is not a valid regular expression.
#[derive(Debug, thiserror::Error)]
#[error("{filter} regex {pattern:?} is invalid: {message}")]
pub struct InvalidPattern {
    /// Which list: `topics.include`, `groups.exclude`, ...
    pub filter: &'static str,
    pub pattern: String,
    pub message: String,
}

fn compile_all(patterns: &[String], filter: &'static str) -> Result<Vec<Regex>, InvalidPattern> {
    patterns
        .iter()
        .map(|p| {
            // Whole-name match, as MM2's regex filters use `matches()`.
            Regex::new(&format!("^(?:{p})$")).map_err(|e| InvalidPattern {
                filter,
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// A compiled include/exclude pair.
#[derive(Debug, Clone)]
struct Selection {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Selection {
    fn matches(&self, name: &str) -> bool {
        self.include.iter().any(|r| r.is_match(name))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// Compiled topic filter (`topics.include` / `topics.exclude`).
#[derive(Debug, Clone)]
pub struct TopicSelection(Selection);

impl TopicSelection {
    pub fn compile(filter: &TopicFilter) -> Result<TopicSelection, InvalidPattern> {
        Ok(TopicSelection(Selection {
            include: compile_all(&filter.include, "topics.include")?,
            exclude: compile_all(&filter.exclude, "topics.exclude")?,
        }))
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.0.matches(topic)
    }
}

/// Compiled group filter (`groups.include` / `groups.exclude`).
#[derive(Debug, Clone)]
pub struct GroupSelection(Selection);

impl GroupSelection {
    pub fn compile(filter: &GroupFilter) -> Result<GroupSelection, InvalidPattern> {
        Ok(GroupSelection(Selection {
            include: compile_all(&filter.include, "groups.include")?,
            exclude: compile_all(&filter.exclude, "groups.exclude")?,
        }))
    }

    /// Whether `group` is synced; the mirror's own progress groups never are.
    pub fn matches(&self, group: &str) -> bool {
        !group.starts_with("strata-mirror-") && self.0.matches(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixed(s: &str, t: &str) -> ReplicationPolicy {
        ReplicationPolicy::new(NamingMode::Prefixed, s, t)
    }

    #[test]
    fn prefixed_names_and_cycles() {
        let p = prefixed("a", "b");
        assert_eq!(p.remote_topic("orders"), "a.orders");
        assert!(p.should_mirror("orders", true));
        assert!(!p.should_mirror("orders", false));
        // b.orders on a came from b: never back to b, at any depth.
        assert!(!p.should_mirror("b.orders", true));
        assert!(!p.should_mirror("c.b.orders", true));
        // c.orders came from a third cluster: mirrored as a.c.orders.
        assert!(p.should_mirror("c.orders", true));
        assert_eq!(p.remote_topic("c.orders"), "a.c.orders");
    }

    #[test]
    fn internal_topics_are_never_mirrored_and_heartbeats_always() {
        let p = prefixed("a", "b");
        for t in [
            "__consumer_offsets",
            "__transaction_state",
            "mm2-offsets.a.internal",
            "mm2-offset-syncs.b.internal",
            "a.checkpoints.internal",
            "connect-internal",
            "mm2-status",
        ] {
            assert!(!p.should_mirror(t, true), "{t}");
        }
        assert!(p.should_mirror("heartbeats", false));
        assert!(p.should_mirror("c.heartbeats", false));
        assert!(!p.should_mirror("b.heartbeats", false), "came from b");
        assert_eq!(p.remote_topic("heartbeats"), "a.heartbeats");
    }

    #[test]
    fn identity_keeps_names_and_breaks_loops_by_provenance() {
        let ab = ReplicationPolicy::new(NamingMode::Identity, "a", "b");
        let ba = ReplicationPolicy::new(NamingMode::Identity, "b", "a");
        assert_eq!(ab.remote_topic("orders"), "orders");
        assert!(
            ab.should_mirror("b.orders", true),
            "no alias semantics in names"
        );
        assert_eq!(ab.remote_topic("heartbeats"), "a.heartbeats");
        // A record born on a goes to b with chain "a" and is never taken back to a.
        let chain = ab.skip_record(None).unwrap();
        assert_eq!(chain, "a");
        assert_eq!(ba.skip_record(Some(chain.as_bytes())), None);
        // Through a third cluster c: a → b → c, and c → a is refused.
        let bc = ReplicationPolicy::new(NamingMode::Identity, "b", "c");
        let chain2 = bc.skip_record(Some(chain.as_bytes())).unwrap();
        assert_eq!(chain2, "a,b");
        let ca = ReplicationPolicy::new(NamingMode::Identity, "c", "a");
        assert_eq!(ca.skip_record(Some(chain2.as_bytes())), None);
    }

    #[test]
    fn filters_match_whole_names() {
        let f = TopicSelection::compile(&TopicFilter {
            include: vec!["orders".into(), "pay.*".into()],
            exclude: vec![".*-tmp".into()],
        })
        .unwrap();
        assert!(f.matches("orders"));
        assert!(!f.matches("orders2"));
        assert!(f.matches("payments"));
        assert!(!f.matches("payments-tmp"));
        let g = GroupSelection::compile(&GroupFilter::default()).unwrap();
        assert!(g.matches("billing"));
        assert!(!g.matches("console-consumer-1"));
        assert!(!g.matches("strata-mirror-a-b"));
    }

    #[test]
    fn mm2_topic_names() {
        let p = prefixed("us", "eu");
        assert_eq!(p.checkpoints_topic(), "us.checkpoints.internal");
        // Named after the source: two sources into one target keep their syncs apart.
        assert_eq!(p.offset_syncs_topic(), "mm2-offset-syncs.us.internal");
        assert_ne!(
            p.offset_syncs_topic(),
            prefixed("ap", "eu").offset_syncs_topic()
        );
    }
}
