//! The agent's long-lived tasks under one cancellation token. None of them returns by
//! itself, so one that ends (a panic) is a fault that stops the agent, for the service manager
//! to restart it, rather than leave it serving stale answers.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    stop: CancellationToken,
}

/// A task that ended by itself: which, and whether it panicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub task: &'static str,
    pub panicked: bool,
}

impl Tasks {
    /// Tasks that end when `stop` is cancelled.
    pub fn new(stop: CancellationToken) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            names: HashMap::new(),
            stop,
        }
    }

    /// Runs `work` until it ends or the token is cancelled, whichever is first.
    pub fn spawn(&mut self, task: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        let handle = self.set.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = work => {}
            }
        });
        self.names.insert(handle.id(), task);
    }

    /// The first task to end; pending for as long as they all run.
    pub async fn ended(&mut self) -> Ended {
        let Some(result) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, panicked) = match result {
            Ok((id, ())) => (id, false),
            Err(e) => (e.id(), e.is_panic()),
        };
        Ended {
            task: self.names.get(&id).copied().unwrap_or("a task"),
            panicked,
        }
    }

    /// Cancels every task and gives them `grace` to finish (a cycle closes its sockets as its
    /// state drops); any still running then is aborted.
    pub async fn stop(mut self, grace: Duration) {
        self.stop.cancel();
        let _ = tokio::time::timeout(grace, async {
            while self.set.join_next().await.is_some() {}
        })
        .await;
        self.set.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_named_and_the_others_go_on_until_stopped() {
        let stop = CancellationToken::new();
        let mut tasks = Tasks::new(stop.clone());
        let cancelled = Arc::new(AtomicBool::new(false));
        let seen = cancelled.clone();
        tasks.spawn("the cycle task", async move {
            struct Flag(Arc<AtomicBool>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _flag = Flag(seen);
            std::future::pending::<()>().await;
        });
        tasks.spawn("the watchdog task", async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            panic!("planted");
        });
        let ended = tokio::time::timeout(Duration::from_secs(10), tasks.ended())
            .await
            .expect("the panic is seen");
        assert_eq!(
            ended,
            Ended {
                task: "the watchdog task",
                panicked: true
            }
        );
        assert!(!cancelled.load(Ordering::SeqCst), "the cycle still runs");
        tasks.stop(Duration::from_millis(500)).await;
        assert!(stop.is_cancelled());
        assert!(cancelled.load(Ordering::SeqCst), "the cycle was cancelled");
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_ends_a_task_at_its_wait_not_at_the_end_of_it() {
        let mut tasks = Tasks::new(CancellationToken::new());
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        tasks.spawn("a fetch", async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        tasks.stop(Duration::from_millis(500)).await;
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(!finished.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_is_a_fault_too() {
        let mut tasks = Tasks::new(CancellationToken::new());
        tasks.spawn("the metrics listener", async {});
        let ended = tokio::time::timeout(Duration::from_secs(1), tasks.ended())
            .await
            .expect("seen at once");
        assert_eq!(
            ended,
            Ended {
                task: "the metrics listener",
                panicked: false
            }
        );
    }
}
