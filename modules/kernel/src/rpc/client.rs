//! The HTTP client under every remote module: per-attempt timeout, total deadline, retries of idempotent
//! calls with jittered backoff (honouring `Retry-After`), and a circuit breaker.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    CLIENT_ADDR_HEADER, DEADLINE_HEADER, ORIGIN_HEADER, REQUEST_ID_HEADER, Retry,
    SERVICE_NAME_HEADER, SERVICE_TOKEN_HEADER,
};
use crate::context::{Origin, RequestContext};
use crate::problem::{ApiError, Problem, codes};
use crate::secret::Secret;

/// What a service presents on its `/internal` calls.
#[derive(Debug, Clone)]
pub enum OutgoingCredential {
    /// The one token every service of a single trust zone shares (`SHOP_SERVICE_TOKEN`).
    Shared(Secret),
    /// This service's own name and secret (`SHOP_SERVICE_NAME`, `SHOP_SERVICE_SECRET`): the receiver checks
    /// the secret against the digest it holds for that name, and lets it speak only for the modules the
    /// name lists.
    Service {
        /// The service's name: the modules it hosts joined by `+` (`ordering+notifications`).
        name: String,
        /// Its secret.
        secret: Secret,
    },
}

/// How to reach a remote module.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Base URL of the service, e.g. `http://inventory:8080`.
    pub base_url: String,
    /// The credential sent on `/internal` calls.
    pub credential: Option<OutgoingCredential>,
    /// Longest wait for one attempt.
    pub attempt_timeout: Duration,
    /// Longest wait for a call, retries included (the caller's deadline can shorten it).
    pub total_timeout: Duration,
    /// Retries after the first attempt, for calls that may be retried.
    pub max_retries: u32,
    /// Consecutive transport failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails calls fast before letting one through.
    pub breaker_cooldown: Duration,
}

impl RpcConfig {
    /// Defaults suited to calls between services in one data centre.
    pub fn new(base_url: impl Into<String>, credential: Option<OutgoingCredential>) -> Self {
        RpcConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            credential,
            attempt_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_retries: 2,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
        }
    }
}

#[derive(Default)]
struct Breaker {
    consecutive_failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

impl Breaker {
    /// True when the call must fail fast.
    fn is_open(&self, cooldown: Duration) -> bool {
        let Ok(mut guard) = self.open_until.lock() else {
            return false;
        };
        match *guard {
            None => false,
            Some(until) if Instant::now() < until => true,
            // Half-open: this call is the probe. The circuit re-arms at once, so everyone else keeps
            // failing fast until the probe succeeds (closing it) or another cooldown passes (a probe that
            // never reports back, e.g. cancelled, cannot wedge it).
            Some(_) => {
                *guard = Some(Instant::now() + cooldown);
                false
            }
        }
    }

    fn record(&self, ok: bool, threshold: u32, cooldown: Duration) {
        if ok {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            if let Ok(mut guard) = self.open_until.lock() {
                *guard = None;
            }
            return;
        }
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= threshold {
            if let Ok(mut guard) = self.open_until.lock() {
                *guard = Some(Instant::now() + cooldown);
            }
            self.consecutive_failures
                .store(threshold - 1, Ordering::Relaxed);
        }
    }
}

/// Calls `/internal` operations of one remote module.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    config: Arc<RpcConfig>,
    breaker: Arc<Breaker>,
}

enum Attempt<T, E> {
    Done(Result<T, E>),
    /// Worth another try: why, the pause the server asked for, whether the request never left, and the
    /// server's own problem (what the caller gets if no retry follows: e.g. `busy` with its `Retry-After`).
    Retry(String, Option<Duration>, bool, Option<Box<Problem>>),
}

impl RpcClient {
    /// A client for the module at `config.base_url`.
    pub fn new(config: RpcConfig) -> Result<RpcClient, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.attempt_timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RpcClient {
            http,
            config: Arc::new(config),
            breaker: Arc::new(Breaker::default()),
        })
    }

    /// The remote service's base URL.
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Calls `POST /internal/<module>/<operation>` with `args` as the JSON body.
    pub async fn call<A, R, E>(
        &self,
        module: &str,
        ctx: &RequestContext,
        operation: &str,
        retry: Retry,
        args: &A,
    ) -> Result<R, E>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
        E: ApiError,
    {
        let url = format!("{}/internal/{module}/{operation}", self.config.base_url);
        let body = serde_json::to_vec(args)
            .map_err(|e| E::unavailable(format!("cannot encode arguments: {e}")))?;
        let started = Instant::now();
        let budget = match ctx.remaining() {
            Some(left) => left.min(self.config.total_timeout),
            None => self.config.total_timeout,
        };
        let mut attempt = 0u32;
        loop {
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(E::unavailable(format!("{module} did not answer in time")));
            }
            if self.breaker.is_open(self.config.breaker_cooldown) {
                return Err(E::unavailable(format!(
                    "{module} is unavailable (circuit open after repeated failures)"
                )));
            }
            let timeout = left.min(self.config.attempt_timeout);
            let mut req = self
                .http
                .post(&url)
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(REQUEST_ID_HEADER, &ctx.request_id)
                // What is left of this attempt, less the time the answer needs to come back: the callee
                // spends only that (its own calls too), and answers what it got done (a pending order,
                // say) before this side stops listening. A retry brings its own budget.
                .header(
                    DEADLINE_HEADER,
                    callee_budget(timeout).as_millis().to_string(),
                )
                .body(body.clone());
            req = self.authenticated(req);
            if let Some(token) = &ctx.token {
                req = req.bearer_auth(token);
            }
            // The system's authority stays in its process: elsewhere a system call is an outside client's.
            if let Origin::Module(name) = &ctx.origin {
                req = req.header(ORIGIN_HEADER, format!("module:{name}"));
            }
            if let Some(addr) = &ctx.client_addr {
                req = req.header(CLIENT_ADDR_HEADER, addr);
            }
            if let Some(tp) = &ctx.traceparent {
                req = req.header("traceparent", tp);
            }
            let outcome = self.attempt::<R, E>(module, operation, req).await;
            match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry(reason, pause, never_sent, problem) => {
                    let give_up = |reason: String| match problem.clone() {
                        Some(problem) => E::from_problem(*problem),
                        None => E::unavailable(reason),
                    };
                    let may_retry = match retry {
                        Retry::Read | Retry::Idempotent => true,
                        // A request that never reached the server cannot have been applied.
                        Retry::Once => never_sent,
                    };
                    if !may_retry || attempt >= self.config.max_retries {
                        return Err(give_up(reason));
                    }
                    let backoff = pause.unwrap_or_else(|| jittered_backoff(attempt));
                    // Saturating: `Retry-After` is the remote's to choose, up to u64::MAX seconds.
                    if started.elapsed().saturating_add(backoff) >= budget {
                        return Err(give_up(reason));
                    }
                    tracing::debug!(module, operation, attempt, error = %reason, "retrying remote call");
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt<R, E>(
        &self,
        module: &str,
        operation: &str,
        req: reqwest::RequestBuilder,
    ) -> Attempt<R, E>
    where
        R: DeserializeOwned,
        E: ApiError,
    {
        let (threshold, cooldown) = (self.config.breaker_threshold, self.config.breaker_cooldown);
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                self.breaker.record(false, threshold, cooldown);
                let reason = format!(
                    "{module}.{operation} at {} failed: {}",
                    self.config.base_url,
                    transport_reason(&e)
                );
                return Attempt::Retry(reason, None, e.is_connect(), None);
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                self.breaker.record(false, threshold, cooldown);
                return Attempt::Retry(
                    format!(
                        "{module}.{operation} at {} failed: {}",
                        self.config.base_url,
                        transport_reason(&e)
                    ),
                    None,
                    false,
                    None,
                );
            }
        };
        if status.is_success() {
            self.breaker.record(true, threshold, cooldown);
            return Attempt::Done(serde_json::from_slice(&bytes).map_err(|e| {
                E::unavailable(format!(
                    "{module}.{operation} sent an unreadable answer: {e}"
                ))
            }));
        }
        match serde_json::from_slice::<Problem>(&bytes) {
            // The services are deployed or built wrong: the user did nothing wrong, retrying will not help,
            // and the operator must hear of it.
            Ok(problem) if codes::is_deployment_fault(&problem.code) => {
                self.breaker.record(false, threshold, cooldown);
                tracing::error!(
                    module,
                    operation,
                    base_url = %self.config.base_url,
                    code = %problem.code,
                    detail = %problem.detail_or_empty(),
                    "deployment fault: the remote service refused the call itself (check the service \
                     credentials, the module URL and that both sides run compatible versions)"
                );
                Attempt::Done(Err(E::unavailable(format!(
                    "{module}.{operation} was refused by the remote service ({})",
                    problem.code
                ))))
            }
            // 503 from the remote means one of *its* dependencies is down: retryable, as is a 429.
            Ok(problem) if matches!(problem.status, 503 | 429) => {
                self.breaker.record(true, threshold, cooldown);
                if problem.status == 429 {
                    return Attempt::Done(Err(E::from_problem(problem)));
                }
                Attempt::Retry(
                    problem.detail_or_empty(),
                    retry_after,
                    false,
                    Some(Box::new(problem)),
                )
            }
            Ok(problem) => {
                // A business error means the service works; a 5xx means it does not.
                self.breaker
                    .record(problem.status < 500, threshold, cooldown);
                Attempt::Done(Err(E::from_problem(problem)))
            }
            // Not a problem document: a proxy or a server that is not shop answered.
            Err(_) => {
                self.breaker.record(false, threshold, cooldown);
                Attempt::Retry(
                    format!(
                        "{module}.{operation} answered HTTP {status} without a problem document"
                    ),
                    retry_after,
                    false,
                    None,
                )
            }
        }
    }

    fn authenticated(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.credential {
            None => req,
            Some(OutgoingCredential::Shared(token)) => {
                req.header(SERVICE_TOKEN_HEADER, token.expose())
            }
            Some(OutgoingCredential::Service { name, secret }) => req
                .header(SERVICE_NAME_HEADER, name)
                .header(SERVICE_TOKEN_HEADER, secret.expose()),
        }
    }

    /// Readiness of a remote module: `GET /internal/<module>` with this client's credential, so a wrong
    /// URL, a rejected credential or a process that does not serve the module all count as down.
    pub async fn probe(&self, module: &str) -> Result<(), String> {
        let url = format!("{}/internal/{module}", self.config.base_url);
        let resp = self
            .authenticated(self.http.get(&url))
            .timeout(self.config.attempt_timeout)
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {}", transport_reason(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let code = resp
            .json::<Problem>()
            .await
            .map(|p| p.code)
            .unwrap_or_else(|_| "no problem document".into());
        Err(format!("GET {url} answered HTTP {status} ({code})"))
    }

    /// `GET <base>/<path>` decoded as JSON, with the same timeouts (for JWKS and health checks).
    pub async fn get_json<R: DeserializeOwned>(&self, path: &str) -> Result<R, String> {
        // Not through the breaker: health checks must see the real state.
        let url = format!("{}{path}", self.config.base_url);
        let resp = self
            .http
            .get(&url)
            .timeout(self.config.attempt_timeout)
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {}", transport_reason(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url} answered HTTP {}", resp.status()));
        }
        resp.json::<R>()
            .await
            .map_err(|e| format!("GET {url} sent an unreadable answer: {e}"))
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    }
}

/// 50 ms, 100 ms, 200 ms... each with up to 50% random jitter so that retries from many callers spread out.
fn jittered_backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(6));
    let jitter = RandomState::new().build_hasher().finish() % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

/// The share of an attempt's time the callee may spend: all of it but a margin for the answer's way back
/// (a fifth of it, at most 250 ms: an answer crosses a data centre in well under a millisecond, but a
/// loaded process takes a while to write it).
pub fn callee_budget(attempt: Duration) -> Duration {
    attempt.saturating_sub((attempt / 5).min(Duration::from_millis(250)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callee_answers_before_the_caller_stops_listening() {
        assert_eq!(
            callee_budget(Duration::from_secs(5)),
            Duration::from_millis(4750)
        );
        assert_eq!(
            callee_budget(Duration::from_millis(500)),
            Duration::from_millis(400)
        );
        assert_eq!(callee_budget(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn backoff_grows_and_stays_within_its_jitter() {
        for attempt in 0..4 {
            let base = 50u64 << attempt;
            let d = jittered_backoff(attempt).as_millis() as u64;
            assert!(d >= base && d <= base + base / 2, "attempt {attempt}: {d}");
        }
    }

    /// An error type for calls in these tests: the problem as received.
    #[derive(Debug, thiserror::Error)]
    #[error("{0:?}")]
    struct Refused(Problem);

    impl From<crate::AccessDenied> for Refused {
        fn from(_: crate::AccessDenied) -> Self {
            Refused(Problem::forbidden(""))
        }
    }

    impl ApiError for Refused {
        fn to_problem(&self) -> Problem {
            self.0.clone()
        }
        fn from_problem(problem: Problem) -> Self {
            Refused(problem)
        }
        fn unavailable(detail: String) -> Self {
            Refused(Problem::unavailable(detail))
        }
    }

    #[tokio::test]
    async fn a_huge_retry_after_ends_the_call_instead_of_panicking() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let body =
                r#"{"type":"/problems/unavailable","title":"t","status":503,"code":"unavailable"}"#;
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                // A second passes first: the time already spent plus u64::MAX seconds overflows.
                std::thread::sleep(Duration::from_millis(1100));
                let _ = write!(
                    stream,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
                     retry-after: 18446744073709551615\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let client = RpcClient::new(RpcConfig::new(format!("http://{addr}"), None))
            .unwrap_or_else(|e| panic!("{e}"));
        let ctx = RequestContext::default();
        let answer: Result<serde_json::Value, Refused> = client
            .call(
                "inventory",
                &ctx,
                "get_stock",
                Retry::Read,
                &serde_json::json!({}),
            )
            .await;
        match answer {
            Err(Refused(problem)) => assert_eq!(problem.status, 503, "{problem:?}"),
            Ok(v) => panic!("a 503 answered {v}"),
        }
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_half_opens_for_one_probe() {
        let cool = Duration::from_millis(30);
        let b = Breaker::default();
        for _ in 0..2 {
            b.record(false, 3, cool);
        }
        assert!(!b.is_open(cool));
        b.record(false, 3, cool);
        assert!(b.is_open(cool));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!b.is_open(cool), "the probe goes through");
        assert!(b.is_open(cool), "but only the probe");
        b.record(false, 3, cool);
        assert!(b.is_open(cool), "a failed probe re-opens the circuit");
        std::thread::sleep(Duration::from_millis(40));
        assert!(!b.is_open(cool));
        b.record(true, 3, cool);
        assert!(
            !b.is_open(cool) && !b.is_open(cool),
            "a successful probe closes it"
        );
    }
}
