//! The process's background tasks in one registry: each is named, hears when the process stops, and is
//! waited for (within a bound) before the process exits.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tells a background task that the process is stopping.
#[derive(Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Resolves once the process is stopping.
    pub async fn stopped(&mut self) {
        // An error means the registry is gone: that is a stop too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// True once the process is stopping.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// Every background task of the process: reservation expiry, the event relays and their upkeep, saga
/// recovery, the mail sender, the sweeps of old keys.
pub struct BackgroundTasks {
    stop: watch::Sender<bool>,
    running: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Default for BackgroundTasks {
    fn default() -> Self {
        BackgroundTasks::new()
    }
}

impl BackgroundTasks {
    /// An empty registry.
    pub fn new() -> Self {
        BackgroundTasks {
            stop: watch::channel(false).0,
            running: Mutex::new(Vec::new()),
        }
    }

    /// Starts a task that runs until it returns or its [`StopSignal`] fires.
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task(StopSignal(self.stop.subscribe())));
        if let Ok(mut running) = self.running.lock() {
            running.push((name, handle));
        }
    }

    /// Runs `tick` every `every` until the process stops; a tick in progress is finished, not cut off. A
    /// tick that panics is logged, and the next tick runs as planned: one bad row must not stop a relay or
    /// the saga's recovery for the life of the process.
    pub fn every<F, Fut>(&self, name: &'static str, every: Duration, tick: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, move |mut stop| async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.stopped() => return,
                    _ = ticker.tick() => {
                        // Its own task, so that a panic ends the tick and not this loop.
                        if let Err(e) = tokio::spawn(tick()).await
                            && e.is_panic()
                        {
                            tracing::error!(
                                task = name,
                                panic = panic_message(e.into_panic()),
                                "background task panicked; it runs again at its next tick"
                            );
                        }
                    }
                }
            }
        });
    }

    /// The names of the tasks started so far.
    pub fn names(&self) -> Vec<&'static str> {
        self.running
            .lock()
            .map(|r| r.iter().map(|(name, _)| *name).collect())
            .unwrap_or_default()
    }

    /// Signals every task to stop and waits for them, at most `bound` in all; tasks still running then are
    /// aborted and named in the error.
    pub async fn shutdown(&self, bound: Duration) -> Result<(), Vec<&'static str>> {
        let _ = self.stop.send(true);
        let tasks = self
            .running
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + bound;
        let mut stuck = Vec::new();
        for (name, mut handle) in tasks {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                handle.abort();
                stuck.push(name);
            }
        }
        if stuck.is_empty() { Ok(()) } else { Err(stuck) }
    }
}

/// The text a panic was raised with, when it was a string.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn periodic_and_long_running_tasks_stop_when_told() {
        let tasks = BackgroundTasks::new();
        let ticks = Arc::new(AtomicU32::new(0));
        let counter = ticks.clone();
        tasks.every("ticker", Duration::from_millis(5), move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        tasks.spawn("listener", |mut stop| async move { stop.stopped().await });
        assert_eq!(tasks.names(), vec!["ticker", "listener"]);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(ticks.load(Ordering::SeqCst) >= 2);
        assert_eq!(tasks.shutdown(Duration::from_secs(1)).await, Ok(()));
        let after = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after,
            "no tick after shutdown"
        );
    }

    #[tokio::test]
    async fn a_tick_that_panics_is_followed_by_the_next_tick() {
        let tasks = BackgroundTasks::new();
        let ticks = Arc::new(AtomicU32::new(0));
        let counter = ticks.clone();
        tasks.every("flaky", Duration::from_millis(5), move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first tick fails");
                }
            }
        });
        for _ in 0..200 {
            if ticks.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(ticks.load(Ordering::SeqCst) >= 3, "ticks after the panic");
        assert_eq!(tasks.shutdown(Duration::from_secs(1)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_signal_is_aborted_at_the_bound_and_named() {
        let tasks = BackgroundTasks::new();
        tasks.spawn("stubborn", |_stop| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let started = std::time::Instant::now();
        assert_eq!(
            tasks.shutdown(Duration::from_millis(50)).await,
            Err(vec!["stubborn"])
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
