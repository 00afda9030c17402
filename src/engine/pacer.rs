//! The global packet rate: a token bucket shared by every sender.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    /// At most 10 ms worth of packets at once: bursts stay short.
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Pacer {
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        let burst = (rate / 100.0).max(1.0);
        Pacer {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes up to `want` tokens now; returns how many it got.
    pub fn take(&self, want: usize) -> usize {
        let mut state = self
            .state
            .lock()
            .expect("the pacer lock is never poisoned: nothing panics under it");
        let now = Instant::now();
        let (tokens, last) = &mut *state;
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        let granted = (tokens.floor() as usize).min(want);
        *tokens -= granted as f64;
        granted
    }

    /// How long until the next token.
    pub fn next_in(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate).max(Duration::from_micros(200))
    }

    /// Waits for one token.
    pub async fn one(&self) {
        while self.take(1) == 0 {
            tokio::time::sleep(self.next_in()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_holds_over_a_second_of_paused_time() {
        let pacer = Pacer::new(1000);
        let start = Instant::now();
        let mut sent = 0;
        while Instant::now().duration_since(start) < Duration::from_secs(1) {
            sent += pacer.take(usize::MAX);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The initial burst (10) plus 1000 per second, within one token of rounding.
        assert!((1000..=1011).contains(&sent), "sent {sent}");
    }
}
