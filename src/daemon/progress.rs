//! Whether the cycle is alive. A cycle that has sent and heard nothing for the stall limit is
//! stuck: it shows on /metrics, it is logged, and the systemd watchdog is no longer fed, so
//! systemd restarts the agent.

use std::time::Duration;

use tokio::time::Instant;

/// The least a running cycle may go without a packet before it counts as stuck: planning a
/// hundred thousand flows sends nothing for a while.
pub const STALL_FLOOR: Duration = Duration::from_secs(60);

/// What the monitor remembers between its looks at the cycle.
#[derive(Debug)]
pub struct Monitor {
    limit: Duration,
    activity: u64,
    changed: Instant,
}

impl Monitor {
    pub fn new(limit: Duration, now: Instant) -> Self {
        Monitor {
            limit,
            activity: 0,
            changed: now,
        }
    }

    /// One look: `running_since` is when the current cycle began (`None` between cycles),
    /// `activity` a count that grows while probes go out and come back. Returns whether the
    /// cycle is stuck.
    pub fn stalled(&mut self, now: Instant, running_since: Option<Instant>, activity: u64) -> bool {
        if activity != self.activity {
            self.activity = activity;
            self.changed = now;
        }
        running_since.is_some_and(|since| now.duration_since(since.max(self.changed)) >= self.limit)
    }
}

/// Whether a load's step has run past its bound (a source's fetch bound, its export's parse
/// included; none for reading the config and assembling) and `LOAD_SLACK`: then something is stuck that no bound ends, and the agent is no
/// better than stalled.
pub fn load_overran(now: Instant, load: Option<(Instant, Duration)>) -> bool {
    load.is_some_and(|(started, bound)| now.duration_since(started) > bound + LOAD_SLACK)
}

/// What a load may take beyond its fetches: parsing a config, assembling and linking it.
pub const LOAD_SLACK: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_cycle_that_keeps_probing_is_alive_and_a_silent_one_is_stuck_after_the_limit() {
        let start = Instant::now();
        let mut monitor = Monitor::new(LIMIT, start);
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(!monitor.stalled(at(0), Some(at(0)), 0));
        assert!(
            !monitor.stalled(at(30), Some(at(0)), 10),
            "packets went out"
        );
        assert!(
            !monitor.stalled(at(89), Some(at(0)), 10),
            "59 s since the last packet"
        );
        assert!(
            monitor.stalled(at(90), Some(at(0)), 10),
            "60 s without a packet"
        );
        assert!(!monitor.stalled(at(91), Some(at(0)), 11), "it moved again");
    }

    #[tokio::test(start_paused = true)]
    async fn between_cycles_nothing_is_stuck_and_a_new_cycle_gets_its_own_time() {
        let start = Instant::now();
        let mut monitor = Monitor::new(LIMIT, start);
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(!monitor.stalled(at(500), None, 0), "idle between cycles");
        assert!(
            !monitor.stalled(at(501), Some(at(500)), 0),
            "a new cycle starts its clock"
        );
        assert!(monitor.stalled(at(560), Some(at(500)), 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_load_is_stuck_only_past_its_sources_bounds_and_the_slack() {
        let start = Instant::now();
        let bound = Duration::from_secs(300);
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(!load_overran(at(10_000), None), "no load running");
        assert!(!load_overran(at(300), Some((start, bound))));
        assert!(
            !load_overran(at(360), Some((start, bound))),
            "within the slack"
        );
        assert!(load_overran(at(361), Some((start, bound))));
    }
}
