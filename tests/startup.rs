//! Starting up and stopping: several instances on one database, where the client address comes from, the
//! topologies that refuse to start, the upkeep every process does when it starts, and the order of a shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn instances_starting_together_share_one_database_and_one_generated_key() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-start-{}", uuid::Uuid::now_v7().simple()));
    // Same database, same data dir, no configured key: migrations must run once and the key be generated once.
    let vars = || base_vars(&dir, &db.url);
    let (a, b, c) = tokio::join!(spawn_vars(vars()), spawn_vars(vars()), spawn_vars(vars()));
    let token = a.admin_token().await;
    a.set_stock(&token, "SHARED", 3).await;
    for app in [&b, &c] {
        assert_eq!(
            app.get("/api/v1/inventory/SHARED", None).await.body["on_hand"],
            3
        );
        assert_eq!(
            app.get("/api/v1/users/me", Some(&token)).await.body["role"],
            "admin"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn fail_from(app: &TestApp, email: &str, forwarded_for: &str) -> Reply {
    app.request_with(
        Method::POST,
        "/api/v1/auth/token",
        None,
        Some(json!({ "email": email, "password": "wrong-password!" })),
        &[("x-forwarded-for", forwarded_for)],
    )
    .await
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_unless_trusted() {
    let app = spawn_with(&[("SHOP_LOGIN_MAX_FAILURES_PER_CLIENT", "2")]).await;
    fail_from(&app, "a@example.com", "203.0.113.1")
        .await
        .assert_problem(401, "invalid_credentials");
    fail_from(&app, "b@example.com", "203.0.113.2")
        .await
        .assert_problem(401, "invalid_credentials");
    // A client cannot escape throttling by inventing addresses.
    fail_from(&app, "c@example.com", "203.0.113.3")
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_throttled_on_its_own() {
    let app = spawn_with(&[
        ("SHOP_LOGIN_MAX_FAILURES_PER_CLIENT", "2"),
        ("SHOP_TRUST_FORWARDED", "true"),
    ])
    .await;
    fail_from(&app, "a@example.com", "203.0.113.1")
        .await
        .assert_problem(401, "invalid_credentials");
    fail_from(&app, "b@example.com", "203.0.113.1")
        .await
        .assert_problem(401, "invalid_credentials");
    fail_from(&app, "c@example.com", "203.0.113.1")
        .await
        .assert_problem(429, "rate_limited");
    fail_from(&app, "c@example.com", "198.51.100.2")
        .await
        .assert_problem(401, "invalid_credentials");
}

/// The real binary serving identity and catalog, with inventory at `inventory_url`, its logs piped; and
/// its base URL once it is ready.
async fn binary_calling(
    inventory_url: &str,
    extra: &[(&str, &str)],
    dir: &std::path::Path,
    db: &TestDb,
) -> Result<(std::process::Child, String), Box<dyn std::error::Error>> {
    let port = free_port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop"));
    command.envs(base_vars(dir, &db.url));
    command
        .env("SHOP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("SHOP_MODULES", "identity,catalog,notifications")
        .env("SHOP_INVENTORY_URL", inventory_url)
        .env("RUST_LOG", "info");
    for (k, v) in extra {
        command.env(k, v);
    }
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if reqwest::get(format!("{base}/health/ready"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((child, base));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    Err("the server did not become ready".into())
}

fn terminate(child: &std::process::Child) -> TestResult {
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(term.success());
    Ok(())
}

/// Waits for the process to exit, at most `bound`: its status and what it logged.
async fn exit_within(
    child: &mut std::process::Child,
    bound: Duration,
) -> Result<(std::process::ExitStatus, String), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            return Err(format!("no exit within {bound:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut logs = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use std::io::Read;
        stderr.read_to_string(&mut logs)?;
    }
    Ok((status, logs))
}

/// A new connection for every request: whether the listener still accepts is part of what is tested.
async fn fresh_get(url: &str) -> Result<reqwest::Response, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?
        .get(url)
        .send()
        .await
}

#[tokio::test]
async fn sigterm_fails_readiness_first_serves_through_the_drain_then_finishes_in_flight_requests_and_exits_zero()
-> TestResult {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-term-{}", uuid::Uuid::now_v7().simple()));
    // Inventory answers, but only after 3 s: a request to it is surely in flight when the drain ends.
    let stock = json!({ "sku": "SLOW-1", "on_hand": 5, "reserved": 0, "available": 5 });
    let inventory = slow_remote(Duration::from_secs(3), stock.clone());
    let drain = Duration::from_millis(1000);
    let (mut child, base) = binary_calling(
        &inventory,
        &[
            ("SHOP_REMOTE_TIMEOUT_MS", "10000"),
            ("SHOP_SHUTDOWN_DRAIN_MS", "1000"),
            ("SHOP_SHUTDOWN_TIMEOUT_SECS", "10"),
        ],
        &dir,
        &db,
    )
    .await?;
    let in_flight = tokio::spawn({
        let url = format!("{base}/api/v1/inventory/SLOW-1");
        async move {
            let r = reqwest::get(url).await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.json::<serde_json::Value>().await?))
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    terminate(&child)?;
    let signalled = Instant::now();

    // Readiness fails at once, while the listener still takes new connections and serves them.
    let mut ready = fresh_get(&format!("{base}/health/ready")).await?;
    while ready.status().is_success() && signalled.elapsed() < drain / 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ready = fresh_get(&format!("{base}/health/ready")).await?;
    }
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(
        ready.json::<serde_json::Value>().await?["status"],
        "draining"
    );
    let products = fresh_get(&format!("{base}/api/v1/products")).await?;
    assert_eq!(products.status().as_u16(), 200, "served during the drain");
    assert!(signalled.elapsed() < drain, "checked within the drain");

    // After the drain the listener closes; the request in flight is still being answered.
    while fresh_get(&format!("{base}/health/live")).await.is_ok() {
        assert!(
            signalled.elapsed() < drain * 3,
            "still accepting long after the drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        signalled.elapsed() >= drain,
        "stopped accepting before the drain was over"
    );
    assert!(
        !in_flight.is_finished(),
        "the slow request was meant to outlast the drain"
    );
    let (status, body) = in_flight.await??;
    assert_eq!((status, body), (200, stock));

    let (status, logs) = exit_within(&mut child, drain + Duration::from_secs(10)).await?;
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("background tasks stopped"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "no colour codes when the output is not a terminal: {logs}"
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test]
async fn a_request_outlasting_the_shutdown_bound_is_cut_off_and_the_process_still_exits_zero_in_time()
-> TestResult {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-term-{}", uuid::Uuid::now_v7().simple()));
    let inventory = slow_remote(Duration::from_secs(60), json!({}));
    let (mut child, base) = binary_calling(
        &inventory,
        &[
            ("SHOP_REMOTE_TIMEOUT_MS", "120000"),
            ("SHOP_SHUTDOWN_DRAIN_MS", "0"),
            ("SHOP_SHUTDOWN_TIMEOUT_SECS", "1"),
        ],
        &dir,
        &db,
    )
    .await?;
    let in_flight = tokio::spawn(reqwest::get(format!("{base}/api/v1/inventory/SLOW-1")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    terminate(&child)?;
    let signalled = Instant::now();
    let (status, logs) = exit_within(&mut child, Duration::from_secs(5)).await?;
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "exited {:?} after the signal",
        signalled.elapsed()
    );
    assert!(in_flight.await?.is_err(), "the request was cut off");
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// Runs the binary with these variables on a fresh data dir and database; it must exit at once: (exit
/// code, what it printed on stderr).
fn refused_start(
    vars: &[(&str, &str)],
) -> Result<(Option<i32>, String), Box<dyn std::error::Error>> {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-refuse-{}", uuid::Uuid::now_v7().simple()));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop"));
    command.envs(base_vars(&dir, &db.url));
    command.env("SHOP_HTTP_ADDR", format!("127.0.0.1:{}", free_port()));
    command.envs(vars.iter().copied());
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the binary started instead of refusing".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        pipe.read_to_string(&mut stderr)?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok((status.code(), stderr))
}

#[test]
fn a_publisher_whose_subscriber_is_neither_here_nor_given_a_url_refuses_to_start() -> TestResult {
    for (vars, publisher) in [
        (vec![("SHOP_MODULES", "identity,catalog")], "identity"),
        (
            vec![
                ("SHOP_MODULES", "ordering"),
                ("SHOP_IDENTITY_URL", "http://127.0.0.1:9"),
                ("SHOP_CATALOG_URL", "http://127.0.0.1:9"),
                ("SHOP_INVENTORY_URL", "http://127.0.0.1:9"),
                ("SHOP_PAYMENTS_URL", "http://127.0.0.1:9"),
            ],
            "ordering",
        ),
    ] {
        let (code, stderr) = refused_start(&vars)?;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{publisher} runs here and publishes"))
                && stderr.contains("set SHOP_NOTIFICATIONS_URL"),
            "{stderr}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn payments_forgets_idempotency_keys_older_than_a_day() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-keys-{}", uuid::Uuid::now_v7().simple()));
    let vars = base_vars(&dir, &db.url);
    let app = spawn_vars(vars.clone()).await;
    let admin = app.admin_token().await;
    let (ada, _) = app.customer("ada@example.com").await;
    for key in ["old-credit", "young-credit"] {
        let r = app
            .request_with(
                Method::POST,
                &format!("/api/v1/wallets/{ada}/credits"),
                Some(&admin),
                Some(json!({ "amount_minor": 100, "reason": "welcome" })),
                &[("idempotency-key", key)],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    app.stop().await;
    let keys = |key: &str| {
        count(
            &db.url,
            &format!("SELECT COUNT(*) AS n FROM payments_idempotency_keys WHERE key = '{key}'"),
        )
    };
    assert_eq!((keys("old-credit"), keys("young-credit")), (1, 1));
    // One key is made a day and a minute old (and its credit forgotten with it).
    let a_day_ago = (chrono::Utc::now() - chrono::Duration::minutes(24 * 60 + 1))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S");
    execute(
        &db.url,
        &format!(
            "UPDATE payments_idempotency_keys SET created_at = '{a_day_ago}' WHERE key = 'old-credit'"
        ),
    );
    // The purge runs when the process starts, and every ten minutes after.
    let _restarted = spawn_vars(vars).await;
    let mut left = (1, 1);
    for _ in 0..100 {
        left = (keys("old-credit"), keys("young-credit"));
        if left.0 == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, (0, 1));
    let _ = std::fs::remove_dir_all(dir);
}
