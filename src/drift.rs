//! Verdict x observation -> drift, confirmed over K agreeing looks (a cycle, or a recheck
//! within one). Pure: knows neither sockets nor Prometheus.

use std::collections::BTreeMap;
use std::hash::Hash;

use serde::Serialize;

use crate::model::PortState;
use crate::policy::Predicted;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    None,
    /// The rules say closed; packets got through: a security problem.
    Exposed,
    /// The rules say open; packets were dropped (an outage, a host firewall, a network ACL),
    /// or, on a port the instance serves, nothing listens.
    Blocked,
    /// The packets cannot tell (UDP silence), or the rules cannot (unknown, ambiguous).
    Inconclusive,
}

impl Drift {
    pub fn name(self) -> &'static str {
        match self {
            Drift::None => "none",
            Drift::Exposed => "exposed",
            Drift::Blocked => "blocked",
            Drift::Inconclusive => "inconclusive",
        }
    }
}

/// What a prediction and an observation say together. "Closed" (RST, port unreachable) means
/// the packet reached the host: the rules let it through, nothing listens. That is no drift on
/// a port that merely lies in an open range, but where the instance `serves` the flow (its own
/// `ports`) the rules are right and the service is down: blocked, cause `not-listening`.
pub fn classify(predicted: Predicted, observed: PortState, serves: bool) -> Drift {
    // Not probed (no socket could send it): nothing is known, whatever the rules say.
    if observed == PortState::Unknown {
        return Drift::Inconclusive;
    }
    let reached = observed.reachable();
    match predicted {
        Predicted::Open => match reached {
            Some(true) if serves && observed == PortState::Closed => Drift::Blocked,
            Some(true) => Drift::None,
            Some(false) => Drift::Blocked,
            None => Drift::Inconclusive,
        },
        Predicted::Closed => match reached {
            Some(true) => Drift::Exposed,
            _ => Drift::None,
        },
        Predicted::Partial | Predicted::Unknown | Predicted::Ambiguous => Drift::Inconclusive,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streak {
    last: Drift,
    cycles: u32,
    confirmed: Drift,
    /// The update that last saw the flow.
    seen: u64,
}

/// Confirms drift only after `cycles` consecutive cycles agree, so one lost packet never pages
/// anyone; clears it as soon as a cycle sees none. Flows that leave the plan are forgotten.
#[derive(Debug, Clone)]
pub struct Tracker<K> {
    cycles: u32,
    flows: BTreeMap<K, Streak>,
    updates: u64,
}

impl<K: Ord + Clone> Tracker<K> {
    pub fn new(cycles: u32) -> Self {
        Tracker {
            cycles: cycles.max(1),
            flows: BTreeMap::new(),
            updates: 0,
        }
    }

    /// Changes K (on a reload) and keeps every flow's history: a reload must not un-confirm
    /// drift, or alerts would resolve and fire again.
    pub fn set_cycles(&mut self, cycles: u32) {
        self.cycles = cycles.max(1);
    }

    /// Whether recording `drift` for the flow this cycle would confirm drift not confirmed
    /// now: the moment to make sure the rules it is judged by are fresh.
    pub fn would_confirm(&self, key: &K, drift: Drift) -> bool {
        if matches!(drift, Drift::None | Drift::Inconclusive) {
            return false;
        }
        let (last, cycles, confirmed) = self
            .flows
            .get(key)
            .map_or((Drift::None, 0, Drift::None), |s| {
                (s.last, s.cycles, s.confirmed)
            });
        let streak = if last == drift { cycles + 1 } else { 1 };
        confirmed != drift && streak >= self.cycles
    }

    /// Records one cycle's drift for every planned flow; returns, in the order given, each
    /// flow's confirmed drift before this cycle and after it.
    /// The table is updated in place: rebuilding it each cycle held two copies at once.
    pub fn update(&mut self, cycle: impl IntoIterator<Item = (K, Drift)>) -> Vec<(Drift, Drift)> {
        self.updates += 1;
        let seen = self.updates;
        let confirmed = self.record(cycle, seen);
        self.flows.retain(|_, s| s.seen == seen);
        confirmed
    }

    /// `update` for some flows only, probed again within the cycle that last saw them: each
    /// counts as one more agreeing (or disagreeing) cycle, and no other flow is forgotten.
    pub fn recheck(&mut self, flows: impl IntoIterator<Item = (K, Drift)>) -> Vec<(Drift, Drift)> {
        self.record(flows, self.updates)
    }

    fn record(
        &mut self,
        flows: impl IntoIterator<Item = (K, Drift)>,
        seen: u64,
    ) -> Vec<(Drift, Drift)> {
        let mut confirmed = Vec::new();
        for (key, drift) in flows {
            let streak = self.flows.entry(key).or_insert(Streak {
                last: Drift::None,
                cycles: 0,
                confirmed: Drift::None,
                seen,
            });
            streak.seen = seen;
            let was = streak.confirmed;
            streak.cycles = if streak.last == drift {
                streak.cycles + 1
            } else {
                1
            };
            streak.last = drift;
            if drift == Drift::None {
                streak.confirmed = Drift::None;
            } else if streak.cycles >= self.cycles {
                streak.confirmed = drift;
            }
            confirmed.push((was, streak.confirmed));
        }
        confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prediction_meets_every_observation() {
        use Drift::*;
        use PortState::*;
        let table = [
            (Predicted::Open, Open, None),
            (Predicted::Open, Closed, None),
            (Predicted::Open, Filtered, Blocked),
            (Predicted::Open, OpenFiltered, Inconclusive),
            (Predicted::Closed, Open, Exposed),
            (Predicted::Closed, Closed, Exposed),
            (Predicted::Closed, Filtered, None),
            (Predicted::Closed, OpenFiltered, None),
            // Not probed: never drift, and never "checked and clean" either.
            (Predicted::Open, Unknown, Inconclusive),
            (Predicted::Closed, Unknown, Inconclusive),
            (Predicted::Unknown, Open, Inconclusive),
            (Predicted::Ambiguous, Filtered, Inconclusive),
        ];
        for (predicted, observed, drift) in table {
            assert_eq!(
                classify(predicted, observed, false),
                drift,
                "{predicted:?} x {observed:?}"
            );
        }
    }

    #[test]
    fn nothing_listening_is_drift_only_where_the_instance_serves_the_flow() {
        use PortState::*;
        assert_eq!(classify(Predicted::Open, Closed, true), Drift::Blocked);
        assert_eq!(classify(Predicted::Open, Closed, false), Drift::None);
        // Served or not, the rest reads as on any other flow.
        for (predicted, observed, drift) in [
            (Predicted::Open, Open, Drift::None),
            (Predicted::Open, Filtered, Drift::Blocked),
            (Predicted::Open, OpenFiltered, Drift::Inconclusive),
            (Predicted::Closed, Closed, Drift::Exposed),
            (Predicted::Closed, Filtered, Drift::None),
        ] {
            assert_eq!(classify(predicted, observed, true), drift, "{observed:?}");
        }
    }

    #[test]
    fn drift_is_confirmed_after_k_agreeing_cycles_and_cleared_at_once() {
        let mut tracker = Tracker::new(2);
        let mut one = |drift| tracker.update([("a", drift)])[0];
        use Drift::{Blocked, Exposed, None};
        assert_eq!(one(Exposed), (None, None), "one cycle is not enough");
        assert_eq!(one(Exposed), (None, Exposed), "two agreeing cycles confirm");
        assert_eq!(one(Exposed), (Exposed, Exposed));
        assert_eq!(
            one(None),
            (Exposed, None),
            "cleared by the first clean cycle"
        );
        assert_eq!(one(Blocked), (None, None));
        assert_eq!(one(Exposed), (None, None), "a change of kind starts over");
        one(Exposed);
        tracker.set_cycles(2);
        assert_eq!(
            tracker.update([("a", Exposed)])[0],
            (Exposed, Exposed),
            "history survives a change of K"
        );
        tracker.update([("b", Blocked)]);
        assert_eq!(
            tracker.update([("a", Exposed)])[0],
            (None, None),
            "flows that leave the plan are forgotten"
        );
    }

    #[test]
    fn a_recheck_counts_as_a_cycle_for_its_flows_and_forgets_no_other() {
        use Drift::{Blocked, Exposed, None};
        let mut tracker = Tracker::new(3);
        tracker.update([("a", Exposed), ("b", Blocked), ("c", None)]);
        assert_eq!(tracker.recheck([("a", Exposed)]), [(None, None)]);
        assert_eq!(
            tracker.recheck([("a", Exposed)]),
            [(None, Exposed)],
            "three agreeing looks confirm, two of them rechecks"
        );
        // A recheck that sees the drift gone starts the streak over, as a clean cycle does.
        assert_eq!(tracker.recheck([("b", None)]), [(None, None)]);
        // b and c were not rechecked, and are still known: the next cycle continues them.
        assert!(
            !tracker.would_confirm(&"a", Exposed),
            "a is confirmed already"
        );
        assert_eq!(
            tracker.update([("a", Exposed), ("b", Blocked), ("c", Exposed)]),
            [(Exposed, Exposed), (None, None), (None, None)]
        );
    }

    #[test]
    fn confirmed_drift_comes_back_in_the_order_given() {
        let mut tracker = Tracker::new(1);
        let got = tracker.update([
            ("z", Drift::Blocked),
            ("a", Drift::None),
            ("m", Drift::Exposed),
        ]);
        assert_eq!(
            got,
            [
                (Drift::None, Drift::Blocked),
                (Drift::None, Drift::None),
                (Drift::None, Drift::Exposed)
            ]
        );
    }

    #[test]
    fn would_confirm_names_the_cycle_that_confirms_and_only_it() {
        let mut tracker = Tracker::new(2);
        assert!(!tracker.would_confirm(&"a", Drift::Exposed), "first sight");
        tracker.update([("a", Drift::Exposed)]);
        assert!(
            tracker.would_confirm(&"a", Drift::Exposed),
            "second in a row"
        );
        assert!(
            !tracker.would_confirm(&"a", Drift::Blocked),
            "another kind starts over"
        );
        assert!(
            !tracker.would_confirm(&"a", Drift::Inconclusive),
            "never confirmed"
        );
        tracker.update([("a", Drift::Exposed)]);
        assert!(
            !tracker.would_confirm(&"a", Drift::Exposed),
            "already confirmed"
        );
        let mut at_once = Tracker::new(1);
        assert!(
            at_once.would_confirm(&"b", Drift::Blocked),
            "K = 1 confirms at first sight"
        );
        at_once.update([("b", Drift::Blocked)]);
    }
}
