//! The test harness: spawns the real server on port 0 with a fresh database (a SQLite file, or a fresh
//! PostgreSQL database when `SHOP_TEST_POSTGRES_URL` is set) and talks HTTP to it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop::config::Config;
use shop::server::RunningServer;
use shop_kernel::rpc::{OutgoingCredential, RpcClient, RpcConfig};
use shop_kernel::{Caller, RequestContext, Role, Secret, UserCaller};

pub const ADMIN_EMAIL: &str = "admin@shop.test";
pub const ADMIN_PASSWORD: &str = "admin-password-123";
pub const SERVICE_TOKEN: &str = "test-service-token-of-at-least-32-bytes";

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh database for one server, removed when dropped.
pub struct TestDb {
    pub url: String,
    dir: PathBuf,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn new() -> TestDb {
        let dir = std::env::temp_dir().join(format!("shop-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        match std::env::var("SHOP_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(admin_url) => {
                let admin_url = if admin_url.contains('?') {
                    admin_url
                } else {
                    format!("{admin_url}?sslmode=disable")
                };
                let name = format!("shop_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("SHOP_TEST_POSTGRES_URL: cannot connect: {e}"));
                // `SHOP_TEST_POSTGRES_DATABASE_OPTIONS` is appended to `CREATE DATABASE`: CI runs the
                // suites on an ICU en-US database (`TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE
                // 'en-US'`), the collation most installs have, where text does not sort by bytes.
                let options =
                    std::env::var("SHOP_TEST_POSTGRES_DATABASE_OPTIONS").unwrap_or_default();
                diesel::sql_query(format!("CREATE DATABASE {name} {options}"))
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_url);
                TestDb {
                    // Loopback needs no TLS, and libpq without OpenSSL has no exit-time cleanup to race
                    // the servers' threads when a test process ends.
                    url: format!("{base}/{name}?sslmode=disable"),
                    dir,
                    pg: Some((admin_url.clone(), name)),
                }
            }
            None => TestDb {
                url: format!("sqlite://{}/shop.db", dir.display()),
                dir,
                pg: None,
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// PostgreSQL only: drops the database now, cutting off its connections (a database gone away).
    pub fn drop_now(&self) {
        if let Some((admin_url, name)) = &self.pg {
            let mut conn = PgConnection::establish(admin_url).unwrap_or_else(|e| panic!("{e}"));
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("cannot drop {name}: {e}"));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin_url, name)) = self.pg.take()
            && let Ok(mut conn) = PgConnection::establish(&admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// A running server and an HTTP client for it.
pub struct TestApp {
    pub base: String,
    /// The internal listener's base URL, when `SHOP_INTERNAL_ADDR` was set.
    pub internal_base: Option<String>,
    pub http: reqwest::Client,
    pub running_modules: shop::app::Modules,
    handle: actix_web::dev::ServerHandle,
    pub tasks: std::sync::Arc<shop_kernel::tasks::BackgroundTasks>,
    pub data_dir: PathBuf,
    pub db: Option<TestDb>,
    /// The other processes of a split deployment whose gateway this is (kept running as long as it).
    pub services: Vec<TestApp>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

/// The variables every test server gets: cheap password hashing, a known admin and service token.
pub fn base_vars(data_dir: &std::path::Path, db_url: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for (k, v) in [
        ("SHOP_HTTP_ADDR", "127.0.0.1:0"),
        ("SHOP_ADMIN_EMAIL", ADMIN_EMAIL),
        ("SHOP_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("SHOP_SERVICE_TOKEN", SERVICE_TOKEN),
        ("SHOP_ARGON2_MEMORY_KIB", "256"),
        ("SHOP_ARGON2_ITERATIONS", "1"),
        ("SHOP_WORKERS", "2"),
        ("SHOP_DB_POOL_SIZE", "8"),
        // Every test client is 127.0.0.1; the per-client limit has tests of its own.
        ("SHOP_RATE_LIMIT_PER_CLIENT", "0"),
    ] {
        vars.insert(k.to_string(), v.to_string());
    }
    vars.insert("SHOP_DATA_DIR".into(), data_dir.display().to_string());
    vars.insert("SHOP_DATABASE_URL".into(), db_url.to_string());
    vars
}

/// Spawns a monolith (every module local) on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_with(&[]).await
}

/// Spawns a server on a fresh database, with extra or overriding variables.
pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new();
    let data_dir = db.dir.clone();
    let mut vars = base_vars(&data_dir, &db.url);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let mut app = spawn_vars(vars).await;
    app.db = Some(db);
    app
}

/// Spawns a server with exactly these variables.
pub async fn spawn_vars(vars: HashMap<String, String>) -> TestApp {
    let data_dir = PathBuf::from(vars.get("SHOP_DATA_DIR").cloned().unwrap_or_default());
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
    spawn_config(config, data_dir).await
}

/// Spawns a server with this configuration as it is: a test may change a validated configuration into one
/// that validation refuses, to see what the server does without that guard.
pub async fn spawn_config(config: Config, data_dir: PathBuf) -> TestApp {
    // `SHOP_TEST_LOG=1` (with `RUST_LOG`) shows the servers' logs, for debugging a test.
    static LOGS: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("SHOP_TEST_LOG").is_some() {
        LOGS.call_once(|| shop::telemetry::init(shop::config::LogFormat::Text));
    }
    let RunningServer {
        addr,
        internal_addr,
        server,
        modules,
        tasks,
        ..
    } = shop::server::start(config)
        .await
        .unwrap_or_else(|e| panic!("server failed to start: {e}"));
    let handle = server.handle();
    tokio::spawn(server);
    TestApp {
        base: format!("http://{addr}"),
        internal_base: internal_addr.map(|a| format!("http://{a}")),
        http: reqwest::Client::new(),
        running_modules: modules,
        handle,
        tasks,
        data_dir,
        db: None,
        services: Vec::new(),
    }
}

fn borrowed(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The deployment the black-box scenario suites run against, from `SHOP_TEST_TOPOLOGY`:
/// - `monolith` (the default): every module in one process;
/// - `checkout-split`: payments, ordering and notifications each in its own process with its own
///   database, the other modules in the gateway;
/// - `all-split`: every module in its own process with its own database, behind a gateway that serves
///   none.
///
/// The returned app is the gateway; `extra` variables go to every process.
pub async fn spawn_scenario(extra: &[(&str, &str)]) -> TestApp {
    let topology = std::env::var("SHOP_TEST_TOPOLOGY").unwrap_or_default();
    let all: Vec<&'static str> = shop::modules::ALL.iter().map(|m| m.name).collect();
    let apart: Vec<&'static str> = match topology.as_str() {
        "" | "monolith" => return spawn_with(extra).await,
        "checkout-split" => vec!["payments", "ordering", "notifications"]
            .into_iter()
            .filter(|m| all.contains(m))
            .collect(),
        "all-split" => all.clone(),
        other => panic!(
            "SHOP_TEST_TOPOLOGY must be monolith, checkout-split or all-split, not {other:?}"
        ),
    };
    let ports: Vec<(&str, u16)> = apart.iter().map(|m| (*m, free_port())).collect();
    let url_var = |module: &str| format!("SHOP_{}_URL", module.to_uppercase());
    let mut gateway_vars: Vec<(String, String)> = vec![
        (
            "SHOP_MODULES".into(),
            all.iter()
                .filter(|m| !apart.contains(m))
                .copied()
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("SHOP_REMOTE_TIMEOUT_MS".into(), "3000".into()),
    ];
    for (module, port) in &ports {
        gateway_vars.push((url_var(module), format!("http://127.0.0.1:{port}")));
    }
    let with_extra = |vars: &[(String, String)]| -> Vec<(String, String)> {
        let mut all = vars.to_vec();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    };
    let gateway_vars = with_extra(&gateway_vars);
    let mut gateway = spawn_with(&borrowed(&gateway_vars)).await;
    for (module, port) in &ports {
        let mut vars: Vec<(String, String)> = vec![
            ("SHOP_MODULES".into(), module.to_string()),
            ("SHOP_HTTP_ADDR".into(), format!("127.0.0.1:{port}")),
            ("SHOP_REMOTE_TIMEOUT_MS".into(), "3000".into()),
        ];
        for other in all.iter().filter(|m| *m != module) {
            let url = match ports.iter().find(|(m, _)| m == other) {
                Some((_, p)) => format!("http://127.0.0.1:{p}"),
                None => gateway.base.clone(),
            };
            vars.push((url_var(other), url));
        }
        let vars = with_extra(&vars);
        gateway.services.push(spawn_with(&borrowed(&vars)).await);
    }
    gateway
}

/// A response: status, headers and the JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts an RFC 9457 problem with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.body
        );
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert_eq!(self.body["status"].as_u64(), Some(u64::from(status)));
        assert!(
            self.body["type"].is_string() && self.body["title"].is_string(),
            "body: {}",
            self.body
        );
    }

    /// The SKUs of a page of products, in order; the reply must be a 200.
    pub fn skus(&self) -> Vec<String> {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.body["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["sku"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The field names of a validation problem.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.request_with(method, path, token, body, &[]).await
    }

    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET` a text body (metrics).
    pub async fn get_text(&self, path: &str) -> String {
        match self.http.get(format!("{}{path}", self.base)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    /// Signs in and returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let r = self
            .post(
                "/api/v1/auth/token",
                None,
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "sign-in failed: {}", r.body);
        r.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Registers a customer and returns (user id, token).
    pub async fn customer(&self, email: &str) -> (String, String) {
        let r = self
            .post(
                "/api/v1/users",
                None,
                json!({ "email": email, "password": "customer-password-1", "display_name": "Customer" }),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "registration failed: {}",
            r.body
        );
        let id = r.body["id"].as_str().unwrap_or_default().to_string();
        (id, self.token(email, "customer-password-1").await)
    }

    /// Creates a product as admin and returns its JSON.
    pub async fn product(&self, admin: &str, sku: &str, name: &str, price: i64) -> Value {
        let r = self
            .post(
                "/api/v1/products",
                Some(admin),
                json!({ "sku": sku, "name": name, "description": "", "price": { "amount_minor": price, "currency": "EUR" } }),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "product creation failed: {}",
            r.body
        );
        r.body
    }

    /// Credits `amount` (minor units) to `user`'s wallet as `admin`. A 503 (a split's remote hop timed out
    /// on a loaded machine) is retried after its `Retry-After`, as a client would: the Idempotency-Key makes
    /// the repeat credit once.
    pub async fn fund(&self, admin: &str, user: &str, amount: i64) {
        let key = uuid::Uuid::now_v7().to_string();
        for _ in 0..5 {
            let r = self
                .request_with(
                    Method::POST,
                    &format!("/api/v1/wallets/{user}/credits"),
                    Some(admin),
                    Some(json!({ "amount_minor": amount, "reason": "test funds" })),
                    &[("idempotency-key", &key)],
                )
                .await;
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(r.status, StatusCode::CREATED, "credit failed: {}", r.body);
            return;
        }
        panic!("credit still unavailable after five tries");
    }

    /// `PUT /api/v1/inventory/{sku}` with `{on_hand}`.
    pub async fn set_stock(&self, token: &str, sku: &str, on_hand: i64) -> Reply {
        let path = format!("/api/v1/inventory/{sku}");
        self.put(&path, Some(token), json!({ "on_hand": on_hand }))
            .await
    }

    /// `POST /api/v1/inventory/{sku}/adjustments`, with an `Idempotency-Key` when given.
    pub async fn adjust(
        &self,
        token: &str,
        sku: &str,
        delta: i64,
        reason: &str,
        key: Option<&str>,
    ) -> Reply {
        let path = format!("/api/v1/inventory/{sku}/adjustments");
        let body = json!({ "delta": delta, "reason": reason });
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.request_with(Method::POST, &path, Some(token), Some(body), &headers)
            .await
    }

    /// An RPC client for this server presenting `credential`.
    pub fn rpc_with(&self, credential: OutgoingCredential) -> RpcClient {
        let mut config = RpcConfig::new(&self.base, Some(credential));
        config.attempt_timeout = std::time::Duration::from_secs(2);
        config.max_retries = 0;
        RpcClient::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An RPC client for one module of this server.
    pub fn rpc(&self) -> RpcClient {
        let credential = OutgoingCredential::Shared(Secret::new(SERVICE_TOKEN));
        RpcClient::new(RpcConfig::new(&self.base, Some(credential)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A request context for a signed-in user, carrying the token so remote calls can forward it.
    pub async fn ctx_for(&self, email: &str, password: &str) -> RequestContext {
        let token = self.token(email, password).await;
        let verifier = self.running_modules.verifier.clone();
        let user = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        RequestContext {
            request_id: uuid::Uuid::now_v7().to_string(),
            caller: Caller::User(user),
            token: Some(token),
            ..Default::default()
        }
    }
}

/// The caller contexts a contract suite needs.
pub struct Callers {
    pub admin: RequestContext,
    pub customer: RequestContext,
    pub anonymous: RequestContext,
    /// The ordering module, the one that may hold stock.
    pub module: RequestContext,
    /// A module that may not (notifications).
    pub other_module: RequestContext,
    pub system: RequestContext,
}

/// A call made by the ordering module (which may reserve stock).
pub fn ordering() -> RequestContext {
    RequestContext::default().as_module("ordering")
}

impl Callers {
    pub async fn of(app: &TestApp) -> Callers {
        let admin = app.ctx_for(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        app.customer("contract-customer@shop.test").await;
        let customer = app
            .ctx_for("contract-customer@shop.test", "customer-password-1")
            .await;
        assert!(matches!(
            &admin.caller,
            Caller::User(UserCaller {
                role: Role::Admin,
                ..
            })
        ));
        Callers {
            admin,
            customer,
            anonymous: RequestContext::default(),
            module: ordering(),
            other_module: RequestContext::default().as_module("notifications"),
            system: RequestContext::system(),
        }
    }
}

impl TestApp {
    /// Stops the server (in-flight requests finish) and waits for it.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
        let _ = self.tasks.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

/// A TCP port that was free a moment ago, for a service whose URL must be known before it starts.
///
/// The port comes from below Linux's ephemeral range (32768–60999): a port the kernel handed out
/// for `:0` could be handed out again, to the gateway's own listener or to any outgoing connection
/// (a database pool, an HTTP client), before the server that was promised it binds it. Each test
/// process starts at its own offset, so parallel processes rarely probe the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
        let _ = NEXT.compare_exchange(u32::MAX, seed % SPAN, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// The application tables in a database (migration bookkeeping excluded).
pub fn table_names(url: &str) -> Vec<String> {
    let db = shop_kernel::db::Database::connect(url, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = db.get().unwrap_or_else(|e| panic!("{e}"));
    let sql = match db.backend() {
        shop_kernel::db::Backend::Sqlite => {
            // Ordinary tables: an FTS5 index is a virtual table with shadow tables, as PostgreSQL's
            // indexes are no tables either.
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' ORDER BY name"
        }
        shop_kernel::db::Backend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        }
    };
    let rows: Vec<TableName> = diesel::sql_query(sql)
        .load(&mut *conn)
        .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter()
        .map(|r| r.name)
        .filter(|n| !n.starts_with("__diesel") && !n.starts_with("sqlite_"))
        .collect()
}

/// A local SMTP server (aiosmtpd, from PyPI) that prints every message it receives to a file; stopped when
/// dropped.
pub struct SmtpSink {
    child: std::process::Child,
    output: PathBuf,
    pub port: u16,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    /// Whether aiosmtpd can run here. Without it SMTP tests are skipped, unless `SHOP_TEST_REQUIRE_SMTP=1`
    /// (CI) makes its absence a failure.
    pub fn available() -> bool {
        let available = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            assert!(
                std::env::var("SHOP_TEST_REQUIRE_SMTP").as_deref() != Ok("1"),
                "SHOP_TEST_REQUIRE_SMTP=1 but python3 cannot import aiosmtpd (pip install aiosmtpd)"
            );
            eprintln!("skipped: python3 cannot import aiosmtpd (pip install aiosmtpd)");
        }
        available
    }

    /// Starts the sink on `port` and waits until it listens.
    pub async fn start(port: u16) -> SmtpSink {
        let output = std::env::temp_dir().join(format!("shop-smtp-{}.out", uuid::Uuid::now_v7()));
        let file = std::fs::File::create(&output).unwrap_or_else(|e| panic!("{e}"));
        let child = std::process::Command::new("python3")
            .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Debugging", "stdout"])
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start aiosmtpd: {e}"));
        let sink = SmtpSink {
            child,
            output,
            port,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sink;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not listen on port {port}");
    }

    /// Everything received so far.
    pub fn received(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Waits (up to `secs`) until `text` has been received `times` times; returns the count seen.
    pub async fn wait_for(&self, text: &str, times: usize, secs: u64) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let seen = self.received().matches(text).count();
            if seen >= times || std::time::Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Polls `GET path` as `token` until `done` holds for the body (up to `secs`); returns the last body.
pub async fn poll_until(
    app: &TestApp,
    path: &str,
    token: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let body = app.get(path, Some(token)).await.body;
        if done(&body) || std::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Polls `GET {base}/health/ready` until its check `name` (`remote:inventory`) shows `status` (up to
/// `secs`); returns the last HTTP status and body.
pub async fn readiness_showing(
    base: &str,
    name: &str,
    status: &str,
    secs: u64,
) -> (StatusCode, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let http = reqwest::Client::new();
    loop {
        let resp = http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("readiness: {e}"));
        let code = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let shown = body["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == name && c["status"] == status);
        if shown || std::time::Instant::now() > deadline {
            return (code, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The value of the Prometheus sample whose line starts with `series` (`name{labels}`), if any.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A TCP port that accepts connections and never answers: a module that hangs.
pub fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

/// A module served elsewhere that answers every request `delay` after it arrived, with 200 and `body`
/// (JSON): a slow but working remote.
pub fn slow_remote(delay: std::time::Duration, body: Value) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let body = body.to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                // The whole request (head and body), so that closing the connection does not reset it.
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                std::thread::sleep(delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

/// The real binary, with its own data directory and database, killed when dropped.
pub struct Binary {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    pub async fn start(
        vars: &std::collections::HashMap<String, String>,
        extra: &[(&str, &str)],
    ) -> Binary {
        let port = free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop"));
        command
            .envs(vars)
            .env("SHOP_HTTP_ADDR", format!("127.0.0.1:{port}"));
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the binary: {e}"));
        // Owned at once, so that a failure below still kills it.
        let binary = Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..400 {
            if reqwest::get(format!("{}/health/ready", binary.base))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return binary;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the binary did not become ready");
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            // The process died while answering.
            Err(_) => (0, Value::Null),
        }
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let (_, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Exits on its own (the fault switch) within a few seconds, or fails the test.
    pub async fn exits(&mut self) -> Option<i32> {
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the fault switch did not stop the process");
    }
}

/// Runs `sql` (one or more statements) on the database at `url`.
pub fn execute(url: &str, sql: &str) {
    use diesel::connection::SimpleConnection;
    let db = shop_kernel::db::Database::connect(url, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = db.get().unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Counts the rows `sql` (a `SELECT COUNT(*) AS n ...`) finds in the database at `url`.
pub fn count(url: &str, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let db = shop_kernel::db::Database::connect(url, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = db.get().unwrap_or_else(|e| panic!("{e}"));
    diesel::sql_query(sql)
        .get_result::<Count>(&mut *conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}
