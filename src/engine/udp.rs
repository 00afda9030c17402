//! What the UDP matcher needs beyond the shared state machine: a target's ICMP error budget.
//!
//! Linux sends at most 6 ICMP errors at once to one peer, then one per `icmp_ratelimit`
//! (1 s by default): probes to one target are paced to that budget, or closed ports would go
//! silent and read as open|filtered.

use std::time::Duration;

use tokio::time::Instant;

const BURST: u32 = 6;
const INTERVAL: Duration = Duration::from_secs(1);

/// One target host's budget, as a token bucket.
#[derive(Debug, Clone, Copy)]
pub struct IcmpBudget {
    tokens: u32,
    refilled: Instant,
}

impl IcmpBudget {
    pub fn new(now: Instant) -> Self {
        IcmpBudget {
            tokens: BURST,
            refilled: now,
        }
    }

    /// Takes one probe's share, or says when the next share is due.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let earned = (now.duration_since(self.refilled).as_millis() / INTERVAL.as_millis()) as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(BURST);
            self.refilled += INTERVAL * earned;
        }
        if self.tokens == 0 {
            return Err(self.refilled + INTERVAL);
        }
        self.tokens -= 1;
        Ok(())
    }

    /// How long `packets` probes to one host take at this budget.
    pub fn time_for(packets: u64) -> Duration {
        INTERVAL.saturating_mul(
            packets
                .saturating_sub(u64::from(BURST))
                .min(u64::from(u32::MAX)) as u32,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_six_then_one_a_second() {
        let start = Instant::now();
        let mut budget = IcmpBudget::new(start);
        for _ in 0..6 {
            assert_eq!(budget.take(start), Ok(()));
        }
        assert_eq!(budget.take(start), Err(start + INTERVAL));
        let later = start + INTERVAL;
        assert_eq!(budget.take(later), Ok(()));
        assert!(budget.take(later).is_err());
        assert_eq!(IcmpBudget::time_for(8), Duration::from_secs(2));
        assert_eq!(IcmpBudget::time_for(3), Duration::ZERO);
    }
}
