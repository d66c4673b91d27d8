//! Password hashing on a few dedicated threads, never on the blocking pool that runs database work.
//!
//! Argon2id is deliberately expensive (19 MiB and tens of milliseconds per hash): unbounded, a burst of
//! sign-ins would run hundreds at once, starve every other request and keep gigabytes of freed buffers.
//! Here at most `threads` hashes run at once, each thread hashes in one memory buffer of its own that it
//! keeps for its whole life (so memory is `threads` × the Argon2 cost, whatever the load: freeing and
//! reallocating 19 MiB per hash made glibc keep hundreds of megabytes), and a caller who cannot get a
//! thread within `max_wait` is told to come back later instead of queueing without end.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce(&mut Argon2Worker) + Send + 'static>;

/// The most memory a stored hash may ask for (KiB) before it is refused instead of verified: hashes come
/// from our own table, but a thread's buffer must stay bounded whatever is in it.
const MAX_STORED_COST_KIB: u32 = 256 * 1024;

/// Argon2id with a memory buffer reused for every hash of its thread.
pub struct Argon2Worker {
    params: Params,
    blocks: Vec<Block>,
}

impl Argon2Worker {
    fn new(params: Params) -> Self {
        Argon2Worker {
            params,
            blocks: Vec::new(),
        }
    }

    fn memory(&mut self, blocks: usize) -> &mut [Block] {
        if self.blocks.len() < blocks {
            // Once per thread for the configured cost; it only grows (bounded by `MAX_STORED_COST_KIB`) for a
            // stored hash of a higher cost.
            self.blocks = vec![Block::new(); blocks];
        }
        &mut self.blocks[..blocks]
    }

    /// A PHC string (`$argon2id$v=19$m=...`) for `password` with a fresh random salt.
    pub fn hash(&mut self, password: &[u8]) -> Result<String, String> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
        let mut out = [0u8; 32];
        let params = self.params.clone();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        argon2
            .hash_password_into_with_memory(
                password,
                &salt,
                &mut out,
                self.memory(params.block_count()),
            )
            .map_err(|e| format!("hashing failed: {e}"))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
            salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
            hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches a stored PHC string (any Argon2 variant and cost).
    pub fn verify(&mut self, password: &[u8], stored: &str) -> bool {
        let Ok(phc) = PasswordHash::new(stored) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(phc.algorithm.as_str()),
            Params::try_from(&phc),
        ) else {
            return false;
        };
        if params.m_cost() > MAX_STORED_COST_KIB.max(self.params.m_cost()) {
            tracing::warn!(
                m_cost = params.m_cost(),
                "refusing to verify a hash of excessive cost"
            );
            return false;
        }
        let version = phc
            .version
            .map_or(Ok(Version::V0x13), Version::try_from)
            .unwrap_or(Version::V0x13);
        let mut out = vec![0u8; expected.len()];
        let blocks = params.block_count();
        let argon2 = Argon2::new(algorithm, version, params);
        argon2
            .hash_password_into_with_memory(password, salt.as_ref(), &mut out, self.memory(blocks))
            .is_ok()
            && shop_kernel::secret::constant_time_eq(&out, expected.as_bytes())
    }
}

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
    /// Starts `threads` hashing threads (at least one), each hashing with `params`.
    pub fn new(threads: usize, max_wait: Duration, params: Params) -> Result<Self, String> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let params = params.clone();
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
                    let mut worker = Argon2Worker::new(params);
                    loop {
                        // The lock is held only while waiting for the next job, not while running it.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut worker),
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
        F: FnOnce(&mut Argon2Worker) -> T + Send + 'static,
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
        let job: Job = Box::new(move |worker| {
            let out = work(worker);
            // The thread is free again once the work is done (even if the caller gave up waiting), and before
            // the caller hears of it: at the lowest priority this thread may wait long for the CPU again, and
            // a caller's next hash must not find its own finished one still holding the permit.
            drop(permit);
            let _ = tx.send(out);
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

    #[tokio::test]
    async fn no_more_than_the_pools_threads_run_at_once_and_late_callers_are_told_to_retry() {
        let pool = Arc::new(
            HashPool::new(2, Duration::from_millis(100), Params::default())
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move |_| {
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

    #[test]
    fn hashes_verify_with_the_reused_memory_and_match_the_argon2_crate() -> Result<(), String> {
        use argon2::PasswordVerifier;
        let params = Params::new(256, 1, 1, None).map_err(|e| e.to_string())?;
        let mut worker = Argon2Worker::new(params.clone());
        let stored = worker.hash(b"correct horse")?;
        assert!(
            stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{stored}"
        );
        assert!(worker.verify(b"correct horse", &stored));
        assert!(!worker.verify(b"wrong horse", &stored));
        assert!(!worker.verify(b"correct horse", "not a phc string"));
        // Interchangeable with the crate's own hashing: existing hashes keep verifying, and back.
        let crate_argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        assert!(
            crate_argon2
                .verify_password(b"correct horse", stored.as_str())
                .is_ok()
        );
        let other = Argon2Worker::new(Params::default()).hash(b"pw")?;
        assert!(
            worker.verify(b"pw", &other),
            "a hash of another cost still verifies"
        );
        Ok(())
    }
}
