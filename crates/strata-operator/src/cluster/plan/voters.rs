//! Controller-quorum voters of a plan: which brokers vote (round-robin over the racks, so the
//! quorum spreads over zones) and the warnings when the layout cannot survive the loss of a
//! rack. Pure: no client.

use super::model::{reason, ClusterPlan, PlanWarning, RackPlan};
use crate::names;

/// `count` voters, round-robin over the racks in block order: ordinal 0 of each rack, then
/// ordinal 1 of each rack, and so on. Independent of the spec's rack order.
pub(super) fn choose_voters(racks: &[RackPlan], count: i32) -> Vec<i32> {
    let mut voters = Vec::new();
    let deepest = racks.iter().map(|r| r.brokers).max().unwrap_or(0);
    for ordinal in 0..deepest {
        for rack in racks.iter().filter(|r| ordinal < r.brokers) {
            if voters.len() as i32 == count {
                return voters;
            }
            voters.push(names::broker_id(rack.block, ordinal));
        }
    }
    voters
}

pub(super) fn voter_warnings(plan: &ClusterPlan) -> Vec<PlanWarning> {
    let mut warnings = Vec::new();
    let count = plan.voters.len() as i32;
    let majority = count / 2 + 1;
    let per_rack: Vec<(&str, i32)> = plan
        .racks
        .iter()
        .map(|r| {
            let ids = r.ids();
            let n = plan.voters.iter().filter(|v| ids.contains(v)).count() as i32;
            (r.name.as_str(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let fatal: Vec<&str> = per_rack
        .iter()
        .filter(|(_, n)| count - n < majority)
        .map(|(rack, _)| *rack)
        .collect();
    if per_rack.len() < 3 {
        warnings.push(PlanWarning {
            reason: reason::FEWER_THAN_THREE_VOTER_RACKS,
            message: format!(
                "the {count} controller voter(s) sit in {} rack(s) ({}); losing rack {} loses \
                 the controller quorum; spread brokers over at least 3 racks (zones)",
                per_rack.len(),
                per_rack
                    .iter()
                    .map(|(r, _)| *r)
                    .collect::<Vec<_>>()
                    .join(", "),
                fatal.first().copied().unwrap_or_default()
            ),
        });
    } else if let Some(rack) = fatal.first() {
        warnings.push(PlanWarning {
            reason: reason::RACK_LOSS_BREAKS_QUORUM,
            message: format!(
                "rack {rack} holds too many of the {count} controller voters: losing it loses \
                 the controller quorum; add brokers to the other racks"
            ),
        });
    }
    if count % 2 == 0 {
        warnings.push(PlanWarning {
            reason: reason::EVEN_VOTER_COUNT,
            message: format!(
                "{count} controller voters tolerate no more failures than {}; use an odd number",
                count - 1
            ),
        });
    }
    if count < plan.requested_voters {
        warnings.push(PlanWarning {
            reason: reason::VOTERS_CAPPED,
            message: format!(
                "spec.controllerVoters is {} but the cluster has only {count} broker(s), so \
                 it runs {count} voter(s)",
                plan.requested_voters
            ),
        });
    }
    warnings
}

impl ClusterPlan {
    pub(super) fn voter_count(&self) -> i32 {
        let total: i32 = self.racks.iter().map(|r| r.brokers).sum();
        self.requested_voters.min(total)
    }
}
