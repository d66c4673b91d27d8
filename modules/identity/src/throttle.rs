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

/// In-memory attempt log. Per process: several instances each apply the limits on their own.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Bounds memory under a spray of distinct keys.
const MAX_KEYS: usize = 100_000;

/// Longest email kept as a key (longer ones cannot be accounts anyway).
const MAX_EMAIL_KEY: usize = 254;

impl Throttle {
    /// A throttle with these limits.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn account_key(email: &str) -> String {
        let email: String = email.chars().take(MAX_EMAIL_KEY).collect();
        format!("account:{email}")
    }

    fn client_key(client: Option<&str>) -> String {
        format!("client:{}", client.unwrap_or("unknown"))
    }

    /// Admits a sign-in attempt, or says how many seconds the account or client must wait. An admitted
    /// attempt counts as failed until [`Throttle::succeeded`] says otherwise, so parallel guesses cannot
    /// outrun the limit while their passwords are being checked.
    pub fn admit(&self, email: &str, client: Option<&str>) -> Result<Instant, u64> {
        let now = Instant::now();
        let Ok(mut map) = self.attempts.lock() else {
            return Ok(now);
        };
        let window = self.config.window;
        let keys = [
            (Self::account_key(email), self.config.per_account as usize),
            (Self::client_key(client), self.config.per_client as usize),
        ];
        let mut wait: Option<Duration> = None;
        for (key, limit) in &keys {
            if let Some(log) = map.get_mut(key) {
                while log
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    log.pop_front();
                }
                if log.len() >= *limit {
                    // Wait until enough attempts have left the window to allow one more.
                    let oldest_blocking = log[log.len() - limit];
                    let left = window.saturating_sub(now.duration_since(oldest_blocking));
                    wait = Some(wait.map_or(left, |w| w.max(left)));
                }
            }
        }
        if let Some(w) = wait {
            return Err(w.as_secs().max(1));
        }
        if map.len() > MAX_KEYS {
            Self::shrink(&mut map, now, window);
        }
        for (key, _) in keys {
            map.entry(key).or_default().push_back(now);
        }
        Ok(now)
    }

    /// Drops idle keys; if a spray of distinct keys keeps the map full, drops the least recent half.
    fn shrink(map: &mut HashMap<String, VecDeque<Instant>>, now: Instant, window: Duration) {
        map.retain(|_, log| log.back().is_some_and(|t| now.duration_since(*t) < window));
        if map.len() > MAX_KEYS / 2 {
            let mut last: Vec<Instant> =
                map.values().filter_map(|log| log.back().copied()).collect();
            last.sort_unstable();
            let cutoff = last[last.len() / 2];
            map.retain(|_, log| log.back().is_some_and(|t| *t >= cutoff));
        }
    }

    /// The attempt admitted at `at` succeeded: the account's record is cleared and the attempt no longer
    /// counts against the client.
    pub fn succeeded(&self, email: &str, client: Option<&str>, at: Instant) {
        if let Ok(mut map) = self.attempts.lock() {
            map.remove(&Self::account_key(email));
            if let Some(log) = map.get_mut(&Self::client_key(client))
                && let Some(pos) = log.iter().position(|t| *t == at)
            {
                log.remove(pos);
            }
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
            assert!(t.admit("a@x.io", Some("1.1.1.1")).is_ok());
        }
        let wait = t.admit("a@x.io", Some("2.2.2.2"));
        assert!(matches!(wait, Err(s) if (1..=60).contains(&s)), "{wait:?}");
        assert!(
            t.admit("b@x.io", Some("1.1.1.1")).is_ok(),
            "other accounts are not affected"
        );
    }

    #[test]
    fn successes_do_not_count() {
        let t = throttle(2, 2);
        for _ in 0..10 {
            let at = t
                .admit("a@x.io", Some("1.1.1.1"))
                .unwrap_or_else(|_| Instant::now());
            t.succeeded("a@x.io", Some("1.1.1.1"), at);
        }
        assert!(t.admit("a@x.io", Some("1.1.1.1")).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_so_parallel_guesses_cannot_outrun_the_limit() {
        let t = throttle(5, 100);
        let admitted = (0..50)
            .filter(|_| t.admit("a@x.io", Some("1.1.1.1")).is_ok())
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn a_client_is_throttled_across_accounts() {
        let t = throttle(100, 2);
        assert!(t.admit("a@x.io", Some("9.9.9.9")).is_ok());
        assert!(t.admit("b@x.io", Some("9.9.9.9")).is_ok());
        assert!(t.admit("c@x.io", Some("9.9.9.9")).is_err());
        assert!(t.admit("c@x.io", Some("8.8.8.8")).is_ok());
    }

    #[test]
    fn attempts_leave_the_window() {
        let t = Throttle::new(ThrottleConfig {
            per_account: 1,
            per_client: 100,
            window: Duration::from_millis(30),
        });
        assert!(t.admit("a@x.io", None).is_ok());
        assert!(t.admit("a@x.io", None).is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(t.admit("a@x.io", None).is_ok());
    }
}
