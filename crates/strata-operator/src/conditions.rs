//! Status conditions in the standard Kubernetes shape (`type`, `status`, `reason`, `message`,
//! `lastTransitionTime`, `observedGeneration`). Pure: no client. The one rule that matters:
//! `lastTransitionTime` changes only when a condition's `status` changes, so a reconcile that
//! finds nothing new leaves the timestamps (and therefore the status object) untouched.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition types the operator writes.
pub const READY: &str = "Ready";
/// A rollout, scale or drain is under way.
pub const PROGRESSING: &str = "Progressing";
/// Something needs a user's attention; the reason says what.
pub const DEGRADED: &str = "Degraded";
/// Whether the side a failover left confirmed its write fence (`MirrorFlow`).
pub const FENCED: &str = "Fenced";

/// One condition the reconciler wants to report; turned into a [`Condition`] by [`merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_text(status: bool) -> &'static str {
    if status {
        "True"
    } else {
        "False"
    }
}

/// Merges `desired` into `existing`: conditions of other types are kept, a condition whose
/// status did not change keeps its `lastTransitionTime`. The result is sorted by type so the
/// written status is stable.
pub fn merge(
    existing: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    for d in desired {
        let status = status_text(d.status);
        let previous = existing.iter().find(|c| c.type_ == d.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(now),
        };
        out.push(Condition {
            type_: d.type_.to_owned(),
            status: status.to_owned(),
            reason: d.reason.clone(),
            // The API server requires a message field; keep it short and actionable.
            message: truncate(&d.message, 1024),
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The status (`True`/`False`) of condition `type_`, if present.
pub fn is_true(conditions: &[Condition], type_: &str) -> Option<bool> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status == "True")
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge(
            &[],
            &[DesiredCondition::new(READY, false, "Creating", "starting")],
            Some(1),
            ts(100),
        );
        let second = merge(
            &first,
            &[DesiredCondition::new(
                READY,
                false,
                "BrokersNotReady",
                "1/3",
            )],
            Some(2),
            ts(200),
        );
        assert_eq!(second[0].last_transition_time, Time(ts(100)));
        assert_eq!(second[0].reason, "BrokersNotReady");
        assert_eq!(second[0].observed_generation, Some(2));
        let third = merge(
            &second,
            &[DesiredCondition::new(READY, true, "AllBrokersReady", "3/3")],
            Some(2),
            ts(300),
        );
        assert_eq!(third[0].last_transition_time, Time(ts(300)));
        assert_eq!(is_true(&third, READY), Some(true));
    }

    #[test]
    fn other_types_are_kept_and_sorted() {
        let existing = merge(
            &[],
            &[
                DesiredCondition::new(READY, true, "A", ""),
                DesiredCondition::new(DEGRADED, false, "B", ""),
            ],
            None,
            ts(1),
        );
        let merged = merge(
            &existing,
            &[DesiredCondition::new(PROGRESSING, true, "C", "")],
            None,
            ts(2),
        );
        let types: Vec<_> = merged.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Degraded", "Progressing", "Ready"]);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let text = "é".repeat(1000);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024);
        assert!(cut.ends_with("..."));
    }
}
