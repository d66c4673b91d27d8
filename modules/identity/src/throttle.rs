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
        // A panic elsewhere must not switch throttling off: the map is still usable.
        let mut map = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = self.config.window;
        let keys = [
            (
                Self::account_key(email),
                self.config.per_account.max(1) as usize,
            ),
            (
                Self::client_key(client),
                self.config.per_client.max(1) as usize,
            ),
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

    /// The attempt admitted at `at` never checked a password (hashing was saturated): it counts for
    /// nothing.
    pub fn withdraw(&self, email: &str, client: Option<&str>, at: Instant) {
        if let Ok(mut map) = self.attempts.lock() {
            for key in [Self::account_key(email), Self::client_key(client)] {
                if let Some(log) = map.get_mut(&key)
                    && let Some(pos) = log.iter().position(|t| *t == at)
                {
                    log.remove(pos);
                }
            }
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

/// Attempts per client address per minute (registration and sign-in alike, successful or not), as a
/// generic cell rate: `limit` at once, then one more every `60 s / limit`. Per process, like [`Throttle`].
#[derive(Debug)]
pub struct RateLimiter {
    /// `None`: disabled (load tests).
    interval: Option<Duration>,
    window: Duration,
    /// Per client: the time at which its allowance is fully back.
    next_free: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `per_minute` attempts per client per minute; 0 disables the limit.
    pub fn new(per_minute: u32) -> Self {
        let window = Duration::from_secs(60);
        RateLimiter {
            interval: (per_minute > 0).then(|| window / per_minute),
            window,
            next_free: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt of `client`, or says how many seconds it must wait.
    pub fn admit(&self, client: Option<&str>) -> Result<(), u64> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let now = Instant::now();
        let mut map = self
            .next_free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = client.unwrap_or("unknown");
        let free_at = map.get(key).copied().unwrap_or(now).max(now) + interval;
        let ahead = free_at.duration_since(now);
        if ahead > self.window {
            let wait = ahead - self.window;
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, t| *t > now);
            if map.len() >= MAX_KEYS {
                // A spray of distinct addresses: forget the ones closest to being free again.
                let mut times: Vec<Instant> = map.values().copied().collect();
                times.sort_unstable();
                let cutoff = times[times.len() / 2];
                map.retain(|_, t| *t > cutoff);
            }
        }
        map.insert(key.to_string(), free_at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_allowance_then_waits_and_others_are_unaffected() {
        let r = RateLimiter::new(3);
        for _ in 0..3 {
            assert!(r.admit(Some("1.1.1.1")).is_ok());
        }
        let wait = r.admit(Some("1.1.1.1"));
        assert!(matches!(wait, Err(s) if (1..=20).contains(&s)), "{wait:?}");
        assert!(r.admit(Some("2.2.2.2")).is_ok());
    }

    #[test]
    fn zero_disables_the_limit() {
        let r = RateLimiter::new(0);
        assert!((0..1000).all(|_| r.admit(Some("1.1.1.1")).is_ok()));
    }

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
    fn withdrawn_attempts_do_not_count() {
        let t = throttle(1, 1);
        let at = t
            .admit("a@x.io", Some("1.1.1.1"))
            .unwrap_or_else(|_| Instant::now());
        t.withdraw("a@x.io", Some("1.1.1.1"), at);
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
