//! Password hashing on a few dedicated threads, never on the blocking pool that runs database work.
//!
//! Argon2id is deliberately expensive (19 MiB and tens of milliseconds per hash): unbounded, a burst of
//! sign-ins would run hundreds at once, starve every other request and keep gigabytes of freed buffers.
//! Here at most `threads` hashes run at once, each thread reuses its allocator arena, and a caller who
//! cannot get a thread within `max_wait` is told to come back later instead of queueing without end.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of hashing threads with a bounded wait for one of them.
pub struct HashPool {
    permits: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Job>>,
    max_wait: Duration,
}

/// Why a hash could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPoolError {
    /// Every thread stayed busy for the whole wait: retry after about this many seconds.
    Busy {
        /// Suggested pause before retrying.
        retry_after: u64,
    },
    /// The pool's threads are gone (the process is shutting down).
    Closed,
}

impl HashPool {
    /// Starts `threads` hashing threads (at least one).
    pub fn new(threads: usize, max_wait: Duration) -> Result<Self, String> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    // Hashing is background work: at the lowest priority, sign-in floods take CPU only
                    // when requests that read or write data leave it idle. (Best effort: some systems
                    // refuse it.)
                    if let Err(e) = thread_priority::set_current_thread_priority(
                        thread_priority::ThreadPriority::Min,
                    ) {
                        tracing::debug!(error = ?e, "password hashing threads keep normal priority");
                    }
                    loop {
                        // The lock is held only while waiting for the next job, not while running it.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| format!("cannot start a password hashing thread: {e}"))?;
        }
        Ok(HashPool {
            permits: Arc::new(Semaphore::new(threads)),
            jobs: Mutex::new(tx),
            max_wait,
        })
    }

    /// Runs `work` on a hashing thread once one is free, waiting at most the pool's `max_wait`.
    pub async fn run<T, F>(&self, work: F) -> Result<T, HashPoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit =
            match tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(HashPoolError::Closed),
                Err(_) => {
                    return Err(HashPoolError::Busy {
                        retry_after: self.max_wait.as_secs().max(1),
                    });
                }
            };
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
            // The thread is free again only when the work is done, even if the caller gave up waiting.
            drop(permit);
        });
        self.jobs
            .lock()
            .map_err(|_| HashPoolError::Closed)?
            .send(job)
            .map_err(|_| HashPoolError::Closed)?;
        rx.await.map_err(|_| HashPoolError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_the_pools_threads_run_at_once_and_late_callers_are_told_to_retry() {
        let pool = Arc::new(
            HashPool::new(2, Duration::from_millis(100)).unwrap_or_else(|e| panic!("{e}")),
        );
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let started = Instant::now();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap_or(Err(HashPoolError::Closed)));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2);
        assert!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Err(HashPoolError::Busy { retry_after: 1 })))
                .count()
                == 6
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
