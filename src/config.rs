//! Configuration: `SHOP_*` environment variables, optionally completed by a `.env` file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use shop_kernel::Secret;

/// A bounded context this binary may serve or call: a name from the module table
/// ([`crate::modules::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Module(&'static str);

impl Module {
    /// Identity, whose keys verify every access token: every process must reach it.
    pub const IDENTITY: Module = Module("identity");

    /// Every module of the table, in dependency order.
    pub fn all() -> impl Iterator<Item = Module> {
        crate::modules::ALL.iter().map(|m| Module(m.name))
    }

    /// The module's entry in the table.
    pub fn def(self) -> &'static crate::modules::ModuleDef {
        crate::modules::ALL
            .iter()
            .copied()
            .find(|m| m.name == self.0)
            .unwrap_or(crate::modules::ALL[0])
    }

    /// The module's name (`inventory`).
    pub fn name(self) -> &'static str {
        self.0
    }

    /// Parses a module name.
    pub fn parse(s: &str) -> Option<Module> {
        Module::all().find(|m| m.name() == s)
    }

    /// Whether this binary was built with the module's implementation (cargo feature of the same name).
    pub fn compiled_in(self) -> bool {
        self.def().compiled_in
    }

    /// The variable naming the module's remote base URL (`SHOP_INVENTORY_URL`).
    pub fn url_var(self) -> String {
        format!("SHOP_{}_URL", self.name().to_uppercase())
    }

    /// The variable that may give the module a database of its own (`SHOP_INVENTORY_DATABASE_URL`).
    pub fn database_var(self) -> String {
        format!("SHOP_{}_DATABASE_URL", self.name().to_uppercase())
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration of one process. `Debug` shows no secret: credentials are [`Secret`]s and the
/// passwords in database URLs are masked.
#[derive(Clone)]
pub struct Config {
    /// `SHOP_HTTP_ADDR`: where to listen.
    pub http_addr: String,
    /// `SHOP_INTERNAL_ADDR`: a second listener for `/internal`, `/metrics` and detailed readiness; when set,
    /// the public listener answers 404 there.
    pub internal_addr: Option<String>,
    /// `SHOP_DATABASE_URL`: the database of every local module without its own URL.
    pub database_url: String,
    /// `SHOP_<MODULE>_DATABASE_URL`: a module's own database.
    pub module_database_urls: BTreeMap<Module, String>,
    /// `SHOP_DATA_DIR`: the SQLite file and the generated signing key live here.
    pub data_dir: PathBuf,
    /// `SHOP_MODULES`: modules served by this process.
    pub local_modules: BTreeSet<Module>,
    /// `SHOP_<MODULE>_URL`: base URLs of modules served elsewhere.
    pub remote_urls: BTreeMap<Module, String>,
    /// `SHOP_SERVICE_TOKEN`: the token every service of a single trust zone presents and accepts on
    /// `/internal` routes (at least 32 bytes).
    pub service_token: Option<Secret>,
    /// `SHOP_SERVICE_TOKEN_ACCEPTED`: one more shared token accepted (not presented), for rotation.
    pub service_token_accepted: Option<Secret>,
    /// `SHOP_SERVICE_NAME`: this service's name in per-service mode (default: its local modules joined by
    /// `+`, or `gateway` when it has none).
    pub service_name: String,
    /// `SHOP_SERVICE_SECRET`: this service's own credential (per-service mode, at least 32 bytes).
    pub service_secret: Option<Secret>,
    /// `SHOP_SERVICE_PEERS`: `name=sha256hex,...`, the services whose calls are accepted in per-service mode.
    pub service_peers: Vec<(String, [u8; 32])>,
    /// `SHOP_ADMIN_EMAIL`: an admin ensured at startup (with `SHOP_ADMIN_PASSWORD`).
    pub admin_email: Option<String>,
    /// `SHOP_ADMIN_PASSWORD`.
    pub admin_password: Option<Secret>,
    /// `SHOP_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `SHOP_CURRENCY`: the shop's one currency (default EUR).
    pub currency: String,
    /// `SHOP_JWT_SIGNING_KEY`: base64url Ed25519 seed; generated into the data dir when absent.
    pub jwt_signing_key: Option<Secret>,
    /// `SHOP_JWT_ISSUER` (default `shop`).
    pub jwt_issuer: String,
    /// `SHOP_JWT_AUDIENCE` (default `shop`).
    pub jwt_audience: String,
    /// `SHOP_ACCESS_TOKEN_TTL_SECS` (default 3600).
    pub access_token_ttl: Duration,
    /// `SHOP_ARGON2_MEMORY_KIB`, `SHOP_ARGON2_ITERATIONS`, `SHOP_ARGON2_PARALLELISM` (OWASP defaults).
    pub argon2: (u32, u32, u32),
    /// `SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT` (5), `SHOP_LOGIN_MAX_FAILURES_PER_CLIENT` (20),
    /// `SHOP_LOGIN_WINDOW_SECS` (900).
    pub login_throttle: (u32, u32, Duration),
    /// `SHOP_RATE_LIMIT_PER_CLIENT` (30): registrations and sign-ins per client address per minute; 0
    /// disables it (load tests).
    pub rate_limit_per_client: u32,
    /// `SHOP_PASSWORD_HASH_THREADS` (number of cores): password hashes running at once.
    pub password_hash_threads: usize,
    /// `SHOP_PASSWORD_HASH_WAIT_MS` (1000): longest wait for a hashing thread before answering 503.
    pub password_hash_wait: Duration,
    /// `SHOP_RESERVATION_TTL_SECS` (900): held reservations expire after this.
    pub reservation_ttl: Duration,
    /// `SHOP_ORDER_SAGA_LEASE_MS` (30000): how long the process placing or cancelling an order holds its
    /// saga before the recovery task (of any instance) may take it over.
    pub order_saga_lease: Duration,
    /// `SHOP_ORDER_GIVE_UP_SECS` (300): a placement that could not hold stock or charge the wallet for this
    /// long is compensated (failed `unavailable`) instead of retried.
    pub order_give_up: Duration,
    /// `SHOP_ORDER_RETRY_BASE_MS` (1000): the recovery task's first wait before it tries an unfinished order
    /// again; it doubles with each attempt, up to 64 times this.
    pub order_retry_base: Duration,
    /// `SHOP_ORDER_RECOVERY_INTERVAL_MS` (1000): how often unfinished orders are looked for.
    pub order_recovery_interval: Duration,
    /// `SHOP_FAULT_CRASH_AFTER`: test-only fault switch; the process exits right after this checkout saga
    /// step's call succeeds (`reserve`, `charge`, `commit`, `compensate`, `cancel`).
    pub fault_crash_after: Option<String>,
    /// `SHOP_EVENT_RELAY_INTERVAL_MS` (250): how often each outbox is polled for due events.
    pub event_relay_interval: Duration,
    /// `SHOP_EVENT_CLAIM_LEASE_MS` (30000): how long a relay holds the events it claimed; a relay that dies
    /// leaves them due again after this.
    pub event_claim_lease: Duration,
    /// `SHOP_EVENT_RETRY_BASE_MS` (1000): the wait after an event's first failed delivery, doubling with
    /// each further failure.
    pub event_retry_base: Duration,
    /// `SHOP_EVENT_RETRY_MAX_MS` (600000): the longest wait between two deliveries of a failing event; a
    /// subscriber that is down gets the event at most this long after it is back.
    pub event_retry_max: Duration,
    /// `SHOP_EVENT_RETENTION_HOURS` (168): delivered events and handled inbox entries are kept this long.
    pub event_retention: Duration,
    /// `SHOP_SMTP_URL`: where notifications send mail (`smtp://host:port`, `smtps://host:port`, or
    /// `smtp://host:port?tls=required`); unset, messages are only recorded.
    pub smtp_url: Option<String>,
    /// `SHOP_SMTP_FROM` (`shop <noreply@shop.localhost>`): the sender of notification mail.
    pub smtp_from: String,
    /// `SHOP_DB_POOL_SIZE` (default twice the cores, at least 4): connections per database.
    pub db_pool_size: u32,
    /// `SHOP_REMOTE_TIMEOUT_MS` (default 5000): per attempt of a call to a remote module.
    pub remote_timeout: Duration,
    /// `SHOP_REMOTE_PROBE_INTERVAL_MS` (default 5000): how often each remote module is probed for the
    /// detailed readiness and `shop_remote_module_up`.
    pub remote_probe_interval: Duration,
    /// `SHOP_DB_ACQUIRE_TIMEOUT_MS` (default 3000): longest wait for a pooled database connection before
    /// the request is answered `503 unavailable` with `Retry-After`.
    pub db_acquire_timeout: Duration,
    /// `SHOP_HTTP_HEAD_TIMEOUT_MS` (default 5000): a connection's first request head must arrive within
    /// this, or it is answered 408 and closed.
    pub http_head_timeout: Duration,
    /// `SHOP_HTTP_BODY_TIMEOUT_MS` (default 10000): a request body must arrive within this from its head,
    /// or the request is answered `408 request_timeout`.
    pub http_body_timeout: Duration,
    /// `SHOP_HTTP_HANDLER_TIMEOUT_MS` (default 5000 more than the larger of twice `SHOP_REMOTE_TIMEOUT_MS`
    /// and the body bound: 15000): longest time a request is worked on before it is answered
    /// `503 unavailable` with `Retry-After`. Greater than the body bound, so that a slow body is the
    /// client's 408.
    pub http_handler_timeout: Duration,
    /// `SHOP_SHUTDOWN_DRAIN_MS` (default 5000): after SIGTERM, how long readiness answers 503 `draining`
    /// while requests are still served, so that load balancers stop sending new ones first.
    pub shutdown_drain: Duration,
    /// `SHOP_SHUTDOWN_TIMEOUT_SECS` (default 20): after the drain, in-flight requests and background tasks
    /// get this long to finish before the process exits anyway.
    pub shutdown_timeout: Duration,
    /// `SHOP_TRUST_FORWARDED` (default false): take the client address from the last `X-Forwarded-For`
    /// entry; only behind one proxy that appends it.
    pub trust_forwarded: bool,
    /// `SHOP_WORKERS`: HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// `SHOP_BENCH_BARE_ADDR`: benchmarks only. A listener with the same workers serving `/health/live`
    /// through a bare actix-web app (no middleware), the yardstick of the cheapest endpoint.
    pub bench_bare_addr: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted: BTreeMap<&Module, String> = self
            .module_database_urls
            .iter()
            .map(|(m, url)| (m, shop_kernel::db::redact(url)))
            .collect();
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("internal_addr", &self.internal_addr)
            .field("database_url", &shop_kernel::db::redact(&self.database_url))
            .field("module_database_urls", &redacted)
            .field("data_dir", &self.data_dir)
            .field("local_modules", &self.local_modules)
            .field("remote_urls", &self.remote_urls)
            .field("service_token", &self.service_token)
            .field("service_token_accepted", &self.service_token_accepted)
            .field("service_name", &self.service_name)
            .field("service_secret", &self.service_secret)
            .field("service_peers", &self.service_peers.len())
            .field("admin_email", &self.admin_email)
            .field("admin_password", &self.admin_password)
            .field("jwt_signing_key", &self.jwt_signing_key)
            .finish_non_exhaustive()
    }
}

/// Connections per database when `SHOP_DB_POOL_SIZE` is unset: about two per core keeps the database busy
/// while each connection waits on the network half of the time. More only queue inside the database and in
/// the scheduler: on two cores, 10 connections gave the same product reads per second as 4 but a p99 of
/// 180-500 ms at 16 clients against 3-4 ms (docs/performance.md).
fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(u32::MAX).max(4)
}

/// `name=sha256hex,...` (SHOP_SERVICE_PEERS).
fn parse_peers(list: &str) -> Result<Vec<(String, [u8; 32])>, ConfigError> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            ConfigError(format!(
                "SHOP_SERVICE_PEERS entry {entry:?} must be <service name>=<64 hex digits of SHA-256> \
                 (`shop service-credential` prints one)"
            ))
        };
        let (name, hex) = entry.split_once('=').ok_or_else(bad)?;
        if name.is_empty() || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        out.push((name.to_string(), digest));
    }
    Ok(out)
}

/// A configuration mistake, naming the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn parse<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    var: &str,
    default: T,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{var}={v:?} is not a valid value"))),
    }
}

impl Config {
    /// Reads the process environment, after loading `.env` from the working directory if present
    /// (variables already set win).
    pub fn from_env() -> Result<Config, ConfigError> {
        let _ = dotenvy::dotenv();
        Config::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Builds a configuration from any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get: &dyn Fn(&str) -> Option<String> = &get;
        let data_dir = PathBuf::from(get("SHOP_DATA_DIR").unwrap_or_else(|| "data".into()));
        let database_url = get("SHOP_DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("shop.db").display()));
        let local_modules = match get("SHOP_MODULES") {
            None => Module::all().filter(|m| m.compiled_in()).collect(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let module = Module::parse(name).ok_or_else(|| {
                        let known: Vec<&str> = Module::all().map(Module::name).collect();
                        ConfigError(format!(
                            "SHOP_MODULES names unknown module {name:?} (known: {})",
                            known.join(", ")
                        ))
                    })?;
                    if !module.compiled_in() {
                        return Err(ConfigError(format!(
                            "SHOP_MODULES names {name}, but this binary was built without it \
                             (build with --features {name}, or set {} to call it remotely)",
                            module.url_var()
                        )));
                    }
                    set.insert(module);
                }
                set
            }
        };
        let mut remote_urls = BTreeMap::new();
        let mut module_database_urls = BTreeMap::new();
        for m in Module::all() {
            if let Some(url) = get(&m.url_var()) {
                if !url.starts_with("http://") {
                    // The service client is built without TLS: encrypt between services with a mesh or
                    // sidecar, and point shop at its plain-HTTP side.
                    return Err(ConfigError(format!(
                        "{} must be an http:// URL (this build has no TLS client), got {url:?}",
                        m.url_var()
                    )));
                }
                remote_urls.insert(m, url.trim_end_matches('/').to_string());
            }
            if let Some(url) = get(&m.database_var()) {
                module_database_urls.insert(m, url);
            }
        }
        let log_format = match get("SHOP_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "SHOP_LOG_FORMAT must be text or json, got {other:?}"
                )));
            }
        };
        let currency = get("SHOP_CURRENCY").unwrap_or_else(|| "EUR".into());
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError(format!(
                "SHOP_CURRENCY must be an ISO 4217 code like EUR, got {currency:?}"
            )));
        }
        let credential = |var: &str| -> Result<Option<Secret>, ConfigError> {
            get(var)
                .map(|v| Secret::credential(var, v))
                .transpose()
                .map_err(ConfigError)
        };
        let service_name = get("SHOP_SERVICE_NAME").unwrap_or_else(|| {
            let local: Vec<&str> = Module::all()
                .filter(|m| local_modules.contains(m))
                .map(Module::name)
                .collect();
            if local.is_empty() {
                "gateway".into()
            } else {
                local.join("+")
            }
        });
        let remote_timeout = Duration::from_millis(parse(get, "SHOP_REMOTE_TIMEOUT_MS", 5000u64)?);
        let http_body_timeout =
            Duration::from_millis(parse(get, "SHOP_HTTP_BODY_TIMEOUT_MS", 10_000u64)?);
        let config = Config {
            http_addr: get("SHOP_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into()),
            internal_addr: get("SHOP_INTERNAL_ADDR"),
            bench_bare_addr: get("SHOP_BENCH_BARE_ADDR"),
            database_url,
            module_database_urls,
            data_dir,
            local_modules,
            remote_urls,
            service_token: credential("SHOP_SERVICE_TOKEN")?,
            service_token_accepted: credential("SHOP_SERVICE_TOKEN_ACCEPTED")?,
            service_name,
            service_secret: credential("SHOP_SERVICE_SECRET")?,
            service_peers: parse_peers(&get("SHOP_SERVICE_PEERS").unwrap_or_default())?,
            admin_email: get("SHOP_ADMIN_EMAIL"),
            admin_password: get("SHOP_ADMIN_PASSWORD").map(Secret::new),
            log_format,
            currency,
            jwt_signing_key: get("SHOP_JWT_SIGNING_KEY").map(Secret::new),
            jwt_issuer: get("SHOP_JWT_ISSUER").unwrap_or_else(|| "shop".into()),
            jwt_audience: get("SHOP_JWT_AUDIENCE").unwrap_or_else(|| "shop".into()),
            access_token_ttl: Duration::from_secs(parse(
                get,
                "SHOP_ACCESS_TOKEN_TTL_SECS",
                3600u64,
            )?),
            argon2: (
                parse(get, "SHOP_ARGON2_MEMORY_KIB", 19_456u32)?,
                parse(get, "SHOP_ARGON2_ITERATIONS", 2u32)?,
                parse(get, "SHOP_ARGON2_PARALLELISM", 1u32)?,
            ),
            login_throttle: (
                parse(get, "SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT", 5u32)?,
                parse(get, "SHOP_LOGIN_MAX_FAILURES_PER_CLIENT", 20u32)?,
                Duration::from_secs(parse(get, "SHOP_LOGIN_WINDOW_SECS", 900u64)?),
            ),
            rate_limit_per_client: parse(get, "SHOP_RATE_LIMIT_PER_CLIENT", 30u32)?,
            password_hash_threads: parse(
                get,
                "SHOP_PASSWORD_HASH_THREADS",
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )?,
            password_hash_wait: Duration::from_millis(parse(
                get,
                "SHOP_PASSWORD_HASH_WAIT_MS",
                1000u64,
            )?),
            reservation_ttl: Duration::from_secs(parse(get, "SHOP_RESERVATION_TTL_SECS", 900u64)?),
            order_saga_lease: Duration::from_millis(parse(
                get,
                "SHOP_ORDER_SAGA_LEASE_MS",
                30_000u64,
            )?),
            order_give_up: Duration::from_secs(parse(get, "SHOP_ORDER_GIVE_UP_SECS", 300u64)?),
            order_retry_base: Duration::from_millis(parse(
                get,
                "SHOP_ORDER_RETRY_BASE_MS",
                1000u64,
            )?),
            order_recovery_interval: Duration::from_millis(parse(
                get,
                "SHOP_ORDER_RECOVERY_INTERVAL_MS",
                1000u64,
            )?),
            fault_crash_after: get("SHOP_FAULT_CRASH_AFTER"),
            event_relay_interval: Duration::from_millis(parse(
                get,
                "SHOP_EVENT_RELAY_INTERVAL_MS",
                250u64,
            )?),
            event_claim_lease: Duration::from_millis(parse(
                get,
                "SHOP_EVENT_CLAIM_LEASE_MS",
                30_000u64,
            )?),
            event_retry_base: Duration::from_millis(parse(
                get,
                "SHOP_EVENT_RETRY_BASE_MS",
                1000u64,
            )?),
            event_retry_max: Duration::from_millis(parse(
                get,
                "SHOP_EVENT_RETRY_MAX_MS",
                600_000u64,
            )?),
            event_retention: Duration::from_secs(
                3600 * parse(get, "SHOP_EVENT_RETENTION_HOURS", 168u64)?,
            ),
            smtp_url: get("SHOP_SMTP_URL"),
            smtp_from: get("SHOP_SMTP_FROM")
                .unwrap_or_else(|| "shop <noreply@shop.localhost>".into()),
            db_pool_size: parse(get, "SHOP_DB_POOL_SIZE", default_pool_size())?,
            remote_timeout,
            remote_probe_interval: Duration::from_millis(parse(
                get,
                "SHOP_REMOTE_PROBE_INTERVAL_MS",
                5000u64,
            )?),
            db_acquire_timeout: Duration::from_millis(parse(
                get,
                "SHOP_DB_ACQUIRE_TIMEOUT_MS",
                3000u64,
            )?),
            http_head_timeout: Duration::from_millis(parse(
                get,
                "SHOP_HTTP_HEAD_TIMEOUT_MS",
                5000u64,
            )?),
            http_body_timeout,
            // A request that waits on a remote module must get that module's answer (or its timeout, a
            // clean 503 after the client's own bookkeeping) before the handler bound cuts it off; and a slow
            // body must meet its own bound (408) first.
            http_handler_timeout: match get("SHOP_HTTP_HANDLER_TIMEOUT_MS") {
                Some(_) => Duration::from_millis(parse(get, "SHOP_HTTP_HANDLER_TIMEOUT_MS", 0u64)?),
                None => (remote_timeout * 2).max(http_body_timeout) + Duration::from_secs(5),
            },
            shutdown_drain: Duration::from_millis(parse(get, "SHOP_SHUTDOWN_DRAIN_MS", 5000u64)?),
            shutdown_timeout: Duration::from_secs(parse(get, "SHOP_SHUTDOWN_TIMEOUT_SECS", 20u64)?),
            trust_forwarded: parse(get, "SHOP_TRUST_FORWARDED", false)?,
            workers: match get("SHOP_WORKERS") {
                None => None,
                Some(_) => Some(parse(get, "SHOP_WORKERS", 1usize)?),
            },
        };
        if config.login_throttle.0 == 0 || config.login_throttle.1 == 0 {
            return Err(ConfigError(
                "SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT and SHOP_LOGIN_MAX_FAILURES_PER_CLIENT must be at least 1 \
                 (raise them to loosen throttling; SHOP_RATE_LIMIT_PER_CLIENT=0 turns the attempt limit off)"
                    .into(),
            ));
        }
        if config.db_pool_size == 0 {
            return Err(ConfigError("SHOP_DB_POOL_SIZE must be at least 1".into()));
        }
        if config.order_recovery_interval.is_zero()
            || config.event_relay_interval.is_zero()
            || config.event_claim_lease < Duration::from_millis(100)
            || config.order_saga_lease < Duration::from_millis(100)
        {
            return Err(ConfigError(
                "SHOP_ORDER_RECOVERY_INTERVAL_MS and SHOP_EVENT_RELAY_INTERVAL_MS must be at least 1, \
                 SHOP_EVENT_CLAIM_LEASE_MS and SHOP_ORDER_SAGA_LEASE_MS at least 100"
                    .into(),
            ));
        }
        config.check_bounds()?;
        if config.event_retry_base.is_zero() || config.event_retry_max < config.event_retry_base {
            return Err(ConfigError(
                "SHOP_EVENT_RETRY_BASE_MS must be at least 1, and SHOP_EVENT_RETRY_MAX_MS at least \
                 SHOP_EVENT_RETRY_BASE_MS"
                    .into(),
            ));
        }
        config.check_topology()?;
        Ok(config)
    }

    /// The request, database and shutdown bounds: each at least 1 (a zero would refuse everything or
    /// never stop waiting), and a handler bound above the body bound.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        for (var, value) in [
            ("SHOP_HTTP_HEAD_TIMEOUT_MS", self.http_head_timeout),
            ("SHOP_HTTP_BODY_TIMEOUT_MS", self.http_body_timeout),
            ("SHOP_HTTP_HANDLER_TIMEOUT_MS", self.http_handler_timeout),
            ("SHOP_DB_ACQUIRE_TIMEOUT_MS", self.db_acquire_timeout),
            ("SHOP_SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!("{var} must be at least 1")));
            }
        }
        if self.remote_probe_interval < Duration::from_millis(100) {
            return Err(ConfigError(
                "SHOP_REMOTE_PROBE_INTERVAL_MS must be at least 100".into(),
            ));
        }
        if self.http_handler_timeout <= self.http_body_timeout {
            return Err(ConfigError(format!(
                "SHOP_HTTP_HANDLER_TIMEOUT_MS ({} ms) must be greater than SHOP_HTTP_BODY_TIMEOUT_MS ({} ms): \
                 a body still arriving when the handler bound strikes would be answered 503 instead of the \
                 client's 408",
                self.http_handler_timeout.as_millis(),
                self.http_body_timeout.as_millis()
            )));
        }
        Ok(())
    }

    /// Every module must be local or reachable, and identity (whose keys verify every token) above all.
    fn check_topology(&self) -> Result<(), ConfigError> {
        if self.local_modules.is_empty() && self.remote_urls.is_empty() {
            return Err(ConfigError(
                "this process serves no module: set SHOP_MODULES or a SHOP_<MODULE>_URL".into(),
            ));
        }
        let identity = Module::IDENTITY;
        if !self.local_modules.contains(&identity) && !self.remote_urls.contains_key(&identity) {
            return Err(ConfigError(format!(
                "identity is not served here and has no URL: set {} (its keys verify every access token)",
                identity.url_var()
            )));
        }
        let remote_in_use = self
            .remote_urls
            .keys()
            .any(|m| !self.local_modules.contains(m));
        if remote_in_use && self.outgoing_credential().is_none() {
            return Err(ConfigError(
                "remote modules are configured but neither SHOP_SERVICE_TOKEN nor SHOP_SERVICE_SECRET is set: \
                 services authenticate each other with one of them"
                    .into(),
            ));
        }
        if self.service_token_accepted.is_some() && self.service_token.is_none() {
            return Err(ConfigError(
                "SHOP_SERVICE_TOKEN_ACCEPTED is only for rotating SHOP_SERVICE_TOKEN: set both"
                    .into(),
            ));
        }
        self.check_subscribers()
    }

    /// A module that runs here and publishes events must reach every module that subscribes to them (the
    /// module table says which): else its events could only pile up undelivered in its outbox.
    fn check_subscribers(&self) -> Result<(), ConfigError> {
        for publisher in &self.local_modules {
            for event in publisher.def().events {
                for subscriber in
                    Module::all().filter(|m| m.def().subscribes_to.contains(&event.name))
                {
                    if !self.local_modules.contains(&subscriber)
                        && !self.remote_urls.contains_key(&subscriber)
                    {
                        return Err(ConfigError(format!(
                            "{publisher} runs here and publishes {}, which {subscriber} subscribes to, but \
                             {subscriber} is neither served here nor given a URL: set {} (or add \
                             {subscriber} to SHOP_MODULES)",
                            event.name,
                            subscriber.url_var()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// What this process presents on its calls to remote modules: its own secret in per-service mode,
    /// else the shared token.
    pub fn outgoing_credential(&self) -> Option<shop_kernel::rpc::OutgoingCredential> {
        use shop_kernel::rpc::OutgoingCredential;
        match (&self.service_secret, &self.service_token) {
            (Some(secret), _) => Some(OutgoingCredential::Service {
                name: self.service_name.clone(),
                secret: secret.clone(),
            }),
            (None, Some(token)) => Some(OutgoingCredential::Shared(token.clone())),
            (None, None) => None,
        }
    }

    /// The credentials this process accepts on `/internal`.
    pub fn service_auth(&self) -> shop_kernel::http::ServiceAuth {
        shop_kernel::http::ServiceAuth {
            shared: self
                .service_token
                .iter()
                .chain(&self.service_token_accepted)
                .cloned()
                .collect(),
            peers: self.service_peers.clone(),
        }
    }

    /// The database URL of a local module.
    pub fn database_url_for(&self, module: Module) -> &str {
        self.module_database_urls
            .get(&module)
            .map(String::as_str)
            .unwrap_or(&self.database_url)
    }

    /// Modules called over HTTP (configured with a URL and not served here).
    pub fn remote_modules(&self) -> impl Iterator<Item = (Module, &str)> {
        self.remote_urls
            .iter()
            .filter(|(m, _)| !self.local_modules.contains(m))
            .map(|(m, url)| (*m, url.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_serve_every_compiled_module_on_a_local_sqlite_file() -> Result<(), ConfigError> {
        let c = config(&[])?;
        assert_eq!(c.http_addr, "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://data/shop.db");
        assert_eq!(
            c.local_modules.len(),
            Module::all().filter(|m| m.compiled_in()).count()
        );
        Ok(())
    }

    #[test]
    fn a_module_without_identity_must_name_identitys_url() {
        let err = config(&[("SHOP_MODULES", "inventory")])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("SHOP_IDENTITY_URL"), "{err}");
    }

    #[test]
    fn remote_modules_need_the_service_token() {
        let err = config(&[
            ("SHOP_MODULES", "identity,catalog"),
            ("SHOP_INVENTORY_URL", "http://inv:8080"),
        ])
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        assert!(err.contains("SHOP_SERVICE_TOKEN"), "{err}");
    }

    const TOKEN: &str = "a-service-token-of-32-bytes-or-more";

    #[test]
    fn short_service_credentials_stop_startup_with_the_variable_named() {
        for var in [
            "SHOP_SERVICE_TOKEN",
            "SHOP_SERVICE_SECRET",
            "SHOP_SERVICE_TOKEN_ACCEPTED",
        ] {
            let err = config(&[(var, "too-short")])
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(err.contains(var) && err.contains("32"), "{err}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() -> Result<(), ConfigError> {
        let c = config(&[
            ("SHOP_SERVICE_TOKEN", TOKEN),
            ("SHOP_ADMIN_PASSWORD", "admin-password-1"),
            ("SHOP_DATABASE_URL", "postgres://shop:db-password@db/shop"),
            ("SHOP_JWT_SIGNING_KEY", "signing-key-material"),
        ])?;
        let shown = format!("{c:?}");
        for secret in [
            TOKEN,
            "admin-password-1",
            "db-password",
            "signing-key-material",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        Ok(())
    }

    #[test]
    fn per_service_mode_presents_the_services_name_and_accepts_its_peers() -> Result<(), ConfigError>
    {
        let digest = "ab".repeat(32);
        let c = config(&[
            ("SHOP_MODULES", "identity,catalog,notifications"),
            ("SHOP_SERVICE_SECRET", TOKEN),
            (
                "SHOP_SERVICE_PEERS",
                &format!("inventory={digest}, inventory={digest}"),
            ),
        ])?;
        assert!(matches!(
            c.outgoing_credential(),
            Some(shop_kernel::rpc::OutgoingCredential::Service { name, .. }) if name == "identity+catalog+notifications"
        ));
        assert_eq!(c.service_auth().peers.len(), 2);
        for bad in [
            "inventory=xyz".to_string(),
            format!("inventory=+{}", "a".repeat(63)),
            format!("inventory={}é", "a".repeat(62)),
        ] {
            let err = config(&[("SHOP_SERVICE_PEERS", &bad)])
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(err.contains("SHOP_SERVICE_PEERS"), "{bad}: {err}");
        }
        let err = config(&[("SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT", "0")])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("at least 1"), "{err}");
        Ok(())
    }

    #[test]
    fn request_bounds_default_above_the_remote_budget_and_refuse_what_cannot_work()
    -> Result<(), ConfigError> {
        let c = config(&[])?;
        assert_eq!(c.http_head_timeout, Duration::from_secs(5));
        assert_eq!(c.http_body_timeout, Duration::from_secs(10));
        assert_eq!(c.http_handler_timeout, Duration::from_secs(15));
        assert_eq!(c.db_acquire_timeout, Duration::from_secs(3));
        assert!(
            c.shutdown_drain + c.shutdown_timeout < Duration::from_secs(30),
            "inside Kubernetes' grace period"
        );
        // The handler bound follows the remote budget (twice the per-attempt timeout) and the body bound.
        let c = config(&[("SHOP_REMOTE_TIMEOUT_MS", "8000")])?;
        assert_eq!(c.http_handler_timeout, Duration::from_secs(21));
        let c = config(&[("SHOP_HTTP_BODY_TIMEOUT_MS", "30000")])?;
        assert_eq!(c.http_handler_timeout, Duration::from_secs(35));
        let err = |vars: &[(&str, &str)]| config(vars).err().map(|e| e.0).unwrap_or_default();
        let e = err(&[
            ("SHOP_HTTP_BODY_TIMEOUT_MS", "2000"),
            ("SHOP_HTTP_HANDLER_TIMEOUT_MS", "2000"),
        ]);
        assert!(
            e.contains("SHOP_HTTP_HANDLER_TIMEOUT_MS") && e.contains("SHOP_HTTP_BODY_TIMEOUT_MS"),
            "{e}"
        );
        for var in [
            "SHOP_HTTP_HEAD_TIMEOUT_MS",
            "SHOP_HTTP_BODY_TIMEOUT_MS",
            "SHOP_DB_ACQUIRE_TIMEOUT_MS",
            "SHOP_SHUTDOWN_TIMEOUT_SECS",
        ] {
            let e = err(&[(var, "0")]);
            assert!(e.contains(&format!("{var} must be at least 1")), "{e}");
        }
        assert!(
            err(&[("SHOP_REMOTE_PROBE_INTERVAL_MS", "10")])
                .contains("SHOP_REMOTE_PROBE_INTERVAL_MS")
        );
        assert!(err(&[("SHOP_SHUTDOWN_DRAIN_MS", "soon")]).contains("SHOP_SHUTDOWN_DRAIN_MS"));
        assert_eq!(
            config(&[("SHOP_SHUTDOWN_DRAIN_MS", "0")])?.shutdown_drain,
            Duration::ZERO,
            "no drain is allowed (nothing routes to the process)"
        );
        Ok(())
    }

    #[test]
    fn a_publisher_without_its_subscriber_names_the_subscribers_url() -> Result<(), ConfigError> {
        for (modules, publisher) in [
            (
                "identity",
                "identity runs here and publishes identity.user_registered",
            ),
            (
                "identity,catalog,inventory,payments,ordering",
                "identity runs here and publishes identity.user_registered",
            ),
        ] {
            let err = config(&[("SHOP_MODULES", modules)])
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(
                err.contains(publisher)
                    && err.contains("notifications subscribes")
                    && err.contains("set SHOP_NOTIFICATIONS_URL"),
                "{modules}: {err}"
            );
        }
        let err = config(&[
            ("SHOP_MODULES", "ordering"),
            ("SHOP_IDENTITY_URL", "http://identity"),
            ("SHOP_SERVICE_TOKEN", TOKEN),
        ])
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        assert!(
            err.contains("ordering runs here and publishes ordering.order_confirmed")
                && err.contains("SHOP_NOTIFICATIONS_URL"),
            "{err}"
        );
        // The subscriber served here, or elsewhere with its URL: the publisher starts.
        config(&[("SHOP_MODULES", "identity,notifications")])?;
        config(&[
            ("SHOP_MODULES", "identity"),
            ("SHOP_NOTIFICATIONS_URL", "http://notifications"),
            ("SHOP_SERVICE_TOKEN", TOKEN),
        ])?;
        // A module that publishes nothing needs no subscriber.
        config(&[
            ("SHOP_MODULES", "catalog"),
            ("SHOP_IDENTITY_URL", "http://identity"),
            ("SHOP_SERVICE_TOKEN", TOKEN),
        ])?;
        Ok(())
    }

    #[test]
    fn event_retries_default_to_a_second_doubling_to_ten_minutes() -> Result<(), ConfigError> {
        let c = config(&[])?;
        assert_eq!(
            (c.event_retry_base, c.event_retry_max),
            (Duration::from_secs(1), Duration::from_secs(600))
        );
        for bad in [
            [
                ("SHOP_EVENT_RETRY_BASE_MS", "0"),
                ("SHOP_EVENT_RETRY_MAX_MS", "10"),
            ],
            [
                ("SHOP_EVENT_RETRY_BASE_MS", "100"),
                ("SHOP_EVENT_RETRY_MAX_MS", "10"),
            ],
        ] {
            let err = config(&bad).err().map(|e| e.0).unwrap_or_default();
            assert!(err.contains("SHOP_EVENT_RETRY_BASE_MS"), "{err}");
        }
        Ok(())
    }

    #[test]
    fn remote_urls_must_be_plain_http() {
        let err = config(&[
            ("SHOP_INVENTORY_URL", "https://inv"),
            ("SHOP_SERVICE_TOKEN", TOKEN),
        ])
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        assert!(err.contains("SHOP_INVENTORY_URL"), "{err}");
    }

    #[test]
    fn unknown_modules_and_bad_numbers_are_named() {
        let err = config(&[("SHOP_MODULES", "billing")])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("billing"), "{err}");
        let err = config(&[("SHOP_DB_POOL_SIZE", "many")])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("SHOP_DB_POOL_SIZE"), "{err}");
        let err = config(&[("SHOP_DB_POOL_SIZE", "0")])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            err.contains("SHOP_DB_POOL_SIZE must be at least 1"),
            "{err}"
        );
        let default = config(&[]).map(|c| c.db_pool_size).unwrap_or_default();
        assert!(default >= 4, "two per core, at least 4: {default}");
    }
}
