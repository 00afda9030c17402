//! The global packet rate: a token bucket shared by every sender. An agent holds one for
//! its whole life, so scheduled cycles and on-demand checks together stay under `rate`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    /// At most 10 ms worth of packets at once: bursts stay short.
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    pub fn new(rate: u32) -> Self {
        let (rate, burst) = Self::shape(rate);
        Pacer {
            state: Mutex::new(Bucket {
                rate,
                burst,
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    fn shape(rate: u32) -> (f64, f64) {
        let rate = f64::from(rate.max(1));
        (rate, (rate / 100.0).max(1.0))
    }

    /// A new rate, from now on (a reloaded config).
    pub fn set_rate(&self, rate: u32) {
        let mut bucket = self.bucket();
        (bucket.rate, bucket.burst) = Self::shape(rate);
        bucket.tokens = bucket.tokens.min(bucket.burst);
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.state
            .lock()
            .expect("the pacer lock is never poisoned: nothing panics under it")
    }

    /// Returns tokens taken but not used.
    pub fn give_back(&self, unused: usize) {
        if unused > 0 {
            let mut bucket = self.bucket();
            bucket.tokens = (bucket.tokens + unused as f64).min(bucket.burst);
        }
    }

    /// Takes up to `want` tokens now; returns how many it got.
    pub fn take(&self, want: usize) -> usize {
        let mut bucket = self.bucket();
        let now = Instant::now();
        let earned = now.duration_since(bucket.last).as_secs_f64() * bucket.rate;
        bucket.tokens = (bucket.tokens + earned).min(bucket.burst);
        bucket.last = now;
        let granted = (bucket.tokens.floor() as usize).min(want);
        bucket.tokens -= granted as f64;
        granted
    }

    /// How long until the next token.
    pub fn next_in(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.bucket().rate).max(Duration::from_micros(200))
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

    #[tokio::test(start_paused = true)]
    async fn two_runs_sharing_one_pacer_share_its_rate() {
        let pacer = std::sync::Arc::new(Pacer::new(1000));
        let start = Instant::now();
        let run = |pacer: std::sync::Arc<Pacer>| async move {
            let mut sent = 0;
            while Instant::now().duration_since(start) < Duration::from_secs(1) {
                pacer.one().await;
                sent += 1;
            }
            sent
        };
        let (a, b) = tokio::join!(run(pacer.clone()), run(pacer.clone()));
        assert!((1000..=1012).contains(&(a + b)), "{a} + {b}");
        assert!(a > 300 && b > 300, "both get a share: {a}, {b}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_applies_at_once_and_unused_tokens_come_back() {
        let pacer = Pacer::new(1000);
        assert_eq!(pacer.take(100), 10, "the burst is 10 ms worth");
        pacer.give_back(4);
        assert_eq!(pacer.take(100), 4);
        pacer.set_rate(100);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(pacer.take(1000), 1, "the burst at 100/s is one packet");
    }
}
