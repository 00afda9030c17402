//! How long to wait for an answer: round-trip estimates per host (RFC 6298: srtt + 4·rttvar),
//! because silence, what a security group's drop looks like, is the common answer and must
//! not cost a fixed second. A host not yet heard from borrows the estimate of the whole run
//! (nmap does the same with its group timing); before any answer at all, and never beyond,
//! the configured timeout applies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The shortest wait, as nmap's default `--min-rtt-timeout`: replies queued behind a burst
/// of thousands must not be given up for lost.
pub const FLOOR: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Estimate {
    srtt: Duration,
    rttvar: Duration,
}

impl Estimate {
    fn first(rtt: Duration) -> Self {
        Estimate {
            srtt: rtt,
            rttvar: rtt / 2,
        }
    }

    /// RFC 6298 §2.3: rttvar first (it uses the old srtt), alpha 1/8, beta 1/4.
    fn update(&mut self, rtt: Duration) {
        let deviation = self.srtt.abs_diff(rtt);
        self.rttvar = (self.rttvar * 3 + deviation) / 4;
        self.srtt = (self.srtt * 7 + rtt) / 8;
    }

    fn timeout(&self) -> Duration {
        self.srtt + self.rttvar * 4
    }
}

/// Round-trip estimates for one run.
#[derive(Debug)]
pub struct Timeouts {
    ceiling: Duration,
    floor: Duration,
    run: Option<Estimate>,
    hosts: HashMap<IpAddr, Estimate>,
}

impl Timeouts {
    /// `ceiling` is the configured timeout: the wait before any answer, and the longest.
    pub fn new(ceiling: Duration) -> Self {
        Timeouts {
            ceiling,
            floor: FLOOR.min(ceiling),
            run: None,
            hosts: HashMap::new(),
        }
    }

    /// Learns from one answer whose probe is known (Karn: never from an ambiguous retry).
    pub fn sample(&mut self, host: IpAddr, rtt: Duration) {
        let learn = |estimate: &mut Option<Estimate>| match estimate {
            Some(e) => e.update(rtt),
            None => *estimate = Some(Estimate::first(rtt)),
        };
        learn(&mut self.run);
        let mut own = self.hosts.get(&host).copied();
        learn(&mut own);
        if let Some(own) = own {
            self.hosts.insert(host, own);
        }
    }

    /// How long to wait for an answer from `host`.
    pub fn timeout(&self, host: IpAddr) -> Duration {
        self.hosts
            .get(&host)
            .or(self.run.as_ref())
            .map_or(self.ceiling, |e| self.clamp(e.timeout()))
    }

    /// How long attempt `attempt` (from 1) to `host` waits: the timeout, doubled for each
    /// retry (RFC 6298 §5.5), within the ceiling. A host slower than the rest of the run,
    /// and not heard from yet, still has its first answer accepted on the retry's watch.
    pub fn wait(&self, host: IpAddr, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.timeout(host)
            .saturating_mul(1 << doublings)
            .min(self.ceiling)
    }

    /// The wait for a host not heard from yet.
    pub fn unheard(&self) -> Duration {
        self.run.map_or(self.ceiling, |e| self.clamp(e.timeout()))
    }

    fn clamp(&self, timeout: Duration) -> Duration {
        timeout.clamp(self.floor, self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn host(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn before_any_answer_the_ceiling_applies() {
        let t = Timeouts::new(ms(1000));
        assert_eq!(t.timeout(host(1)), ms(1000));
        assert_eq!(t.unheard(), ms(1000));
    }

    #[test]
    fn the_first_sample_gives_three_rtts_as_rfc_6298_says() {
        let mut t = Timeouts::new(ms(5000));
        t.sample(host(1), ms(200));
        // srtt = R, rttvar = R/2: srtt + 4·rttvar = 3R.
        assert_eq!(t.timeout(host(1)), ms(600));
    }

    #[test]
    fn later_samples_follow_the_rfc_6298_gains() {
        let mut t = Timeouts::new(ms(5000));
        t.sample(host(1), ms(200));
        t.sample(host(1), ms(400));
        // rttvar = 3/4·100 + 1/4·|200-400| = 125; srtt = 7/8·200 + 1/8·400 = 225.
        assert_eq!(t.timeout(host(1)), ms(225 + 4 * 125));
    }

    #[test]
    fn the_floor_and_the_ceiling_bound_the_wait() {
        let mut t = Timeouts::new(ms(1000));
        t.sample(host(1), Duration::from_micros(50));
        assert_eq!(t.timeout(host(1)), FLOOR);
        t.sample(host(2), ms(900));
        assert_eq!(t.timeout(host(2)), ms(1000));
        let tiny = Timeouts::new(ms(20));
        assert_eq!(tiny.clamp(ms(1)), ms(20), "a ceiling below the floor wins");
    }

    #[test]
    fn each_retry_waits_twice_as_long_within_the_ceiling() {
        let mut t = Timeouts::new(ms(1000));
        t.sample(host(1), ms(50));
        assert_eq!(t.wait(host(1), 1), ms(150));
        assert_eq!(t.wait(host(1), 2), ms(300));
        assert_eq!(t.wait(host(1), 3), ms(600));
        assert_eq!(t.wait(host(1), 4), ms(1000));
        assert_eq!(t.wait(host(1), u32::MAX), ms(1000));
    }

    #[test]
    fn an_unheard_host_borrows_the_run_estimate_and_a_heard_one_keeps_its_own() {
        let mut t = Timeouts::new(ms(5000));
        t.sample(host(1), ms(200));
        t.sample(host(2), ms(200));
        assert_eq!(t.timeout(host(9)), t.unheard());
        assert!(t.unheard() < ms(5000));
        t.sample(host(3), ms(1000));
        assert_eq!(t.timeout(host(3)), ms(3000));
        assert!(
            t.timeout(host(1)) < ms(1000),
            "host 1 keeps its own estimate"
        );
    }
}
