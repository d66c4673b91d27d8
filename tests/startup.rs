//! Starting up: several instances on one database, where the client address comes from, the topologies
//! that refuse to start, and the upkeep every process does when it starts.

mod common;

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

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_stops_background_tasks_and_exits_zero() -> TestResult {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-term-{}", uuid::Uuid::now_v7().simple()));
    let port = free_port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop"));
    for (k, v) in base_vars(&dir, &db.url) {
        command.env(k, v);
    }
    let mut child = command
        .env("SHOP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("SHOP_RESERVATION_TTL_SECS", "4")
        // A sign-in that takes a good second: surely in flight when the signal arrives.
        .env("SHOP_ARGON2_MEMORY_KIB", "8192")
        .env("SHOP_ARGON2_ITERATIONS", "250")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..400 {
        if http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the server did not become ready");
    // A request in flight when the signal arrives (sign-in runs Argon2) still gets its answer.
    let in_flight = tokio::spawn({
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/api/v1/auth/token"))
                .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "the sign-in was meant to be still running"
    );
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(term.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no exit within the bound"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(in_flight.await?.ok(), Some(200));
    let mut logs = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use std::io::Read;
        stderr.read_to_string(&mut logs)?;
    }
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("background tasks stopped"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "no colour codes when the output is not a terminal: {logs}"
    );
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
