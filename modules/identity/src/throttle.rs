//! Sign-in throttling: failed attempts counted per account and per client in a sliding window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits on failed sign-ins.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failed attempts allowed per account within the window.
    pub per_account: u32,
    /// Failed attempts allowed per client address within the window.
    pub per_client: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            per_account: 5,
            per_client: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// In-memory failure log. Per process: several instances each apply the limits on their own.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Bounds memory under a spray of distinct keys: past this many keys, idle ones are dropped.
const MAX_KEYS: usize = 100_000;

impl Throttle {
    /// A throttle with these limits.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, client: Option<&str>) -> [(String, u32); 2] {
        [
            (format!("account:{email}"), 0),
            (format!("client:{}", client.unwrap_or("unknown")), 1),
        ]
    }

    /// `Some(seconds)` when the account or the client must wait before trying again.
    pub fn check(&self, email: &str, client: Option<&str>) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().ok()?;
        let mut wait: Option<Duration> = None;
        for (key, kind) in Self::keys(email, client) {
            let limit = if kind == 0 {
                self.config.per_account
            } else {
                self.config.per_client
            } as usize;
            if let Some(log) = map.get_mut(&key) {
                while log
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.config.window)
                {
                    log.pop_front();
                }
                if log.len() >= limit {
                    // Wait until enough failures have left the window to allow one more attempt.
                    let oldest_blocking = log[log.len() - limit];
                    let left = self
                        .config
                        .window
                        .saturating_sub(now.duration_since(oldest_blocking));
                    wait = Some(wait.map_or(left, |w| w.max(left)));
                }
            }
        }
        wait.map(|w| w.as_secs().max(1))
    }

    /// Records a failed attempt.
    pub fn fail(&self, email: &str, client: Option<&str>) {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > MAX_KEYS {
            let window = self.config.window;
            map.retain(|_, log| log.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        for (key, _) in Self::keys(email, client) {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// A successful sign-in clears the account's failures (not the client's).
    pub fn succeed(&self, email: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("account:{email}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_account: u32, per_client: u32) -> Throttle {
        Throttle::new(ThrottleConfig {
            per_account,
            per_client,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn an_account_is_throttled_after_its_failures_and_freed_by_success() {
        let t = throttle(3, 100);
        for _ in 0..3 {
            assert_eq!(t.check("a@x.io", Some("1.1.1.1")), None);
            t.fail("a@x.io", Some("1.1.1.1"));
        }
        let wait = t.check("a@x.io", Some("2.2.2.2"));
        assert!(wait.is_some_and(|s| (1..=60).contains(&s)), "{wait:?}");
        assert_eq!(
            t.check("b@x.io", Some("1.1.1.1")),
            None,
            "other accounts are not affected"
        );
        t.succeed("a@x.io");
        assert_eq!(t.check("a@x.io", Some("1.1.1.1")), None);
    }

    #[test]
    fn a_client_is_throttled_across_accounts() {
        let t = throttle(100, 2);
        t.fail("a@x.io", Some("9.9.9.9"));
        t.fail("b@x.io", Some("9.9.9.9"));
        assert!(t.check("c@x.io", Some("9.9.9.9")).is_some());
        assert_eq!(t.check("c@x.io", Some("8.8.8.8")), None);
    }

    #[test]
    fn failures_leave_the_window() {
        let t = Throttle::new(ThrottleConfig {
            per_account: 1,
            per_client: 100,
            window: Duration::from_millis(30),
        });
        t.fail("a@x.io", None);
        assert!(t.check("a@x.io", None).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(t.check("a@x.io", None), None);
    }
}
