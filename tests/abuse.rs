//! What a hostile client must not be able to do with password hashing: run the box out of CPU, threads or
//! memory, or register and sign in without limit.

mod common;

use std::sync::Arc;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn retry_after(r: &Reply) -> u64 {
    r.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn from(app: &TestApp, client: &str, path: &str, body: serde_json::Value) -> Reply {
    app.request_with(
        Method::POST,
        path,
        None,
        Some(body),
        &[("x-forwarded-for", client)],
    )
    .await
}

#[tokio::test]
async fn registrations_and_sign_ins_share_a_per_client_rate_limit() {
    let app = spawn_with(&[
        ("SHOP_RATE_LIMIT_PER_CLIENT", "4"),
        ("SHOP_TRUST_FORWARDED", "true"),
    ])
    .await;
    let register = |n: u32| json!({ "email": format!("u{n}@example.com"), "password": "a-long-password", "display_name": "U" });
    let sign_in = json!({ "email": "u1@example.com", "password": "a-long-password" });
    for n in 1..=2 {
        let r = from(&app, "203.0.113.9", "/api/v1/users", register(n)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    for _ in 0..2 {
        let r = from(&app, "203.0.113.9", "/api/v1/auth/token", sign_in.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "a valid account is limited too");
    }
    for (path, body) in [
        ("/api/v1/auth/token", sign_in.clone()),
        ("/api/v1/users", register(3)),
    ] {
        let r = from(&app, "203.0.113.9", path, body).await;
        r.assert_problem(429, "rate_limited");
        assert!((1..=60).contains(&retry_after(&r)), "{:?}", r.headers);
    }
    // Another address has its own allowance.
    let r = from(&app, "198.51.100.7", "/api/v1/auth/token", sign_in).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_the_hashing_threads_callers_get_503_with_retry_after_never_a_queue() -> TestResult {
    let app = Arc::new(
        spawn_with(&[
            ("SHOP_PASSWORD_HASH_THREADS", "1"),
            ("SHOP_PASSWORD_HASH_WAIT_MS", "1"),
            // Real cost, so that hashes overlap.
            ("SHOP_ARGON2_MEMORY_KIB", "19456"),
            ("SHOP_ARGON2_ITERATIONS", "2"),
            ("SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT", "1000"),
        ])
        .await,
    );
    app.customer("busy@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/api/v1/auth/token",
                None,
                json!({ "email": "busy@example.com", "password": "customer-password-1" }),
            )
            .await
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for task in tasks {
        let r = task.await?;
        match r.status.as_u16() {
            200 => ok += 1,
            503 => {
                r.assert_problem(503, "busy");
                assert!(retry_after(&r) >= 1, "{:?}", r.headers);
                busy += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    // A taken email is refused without a hash: it answers 409 even while hashing is saturated.
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "busy@example.com", "password": "a-long-password", "display_name": "B" }),
        )
        .await;
    r.assert_problem(409, "email_taken");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remote_identitys_busy_answer_reaches_the_client_with_its_retry_after() -> TestResult {
    let identity_port = free_port();
    let identity_addr = format!("127.0.0.1:{identity_port}");
    let identity = spawn_with(&[
        ("SHOP_MODULES", "identity,notifications"),
        ("SHOP_HTTP_ADDR", &identity_addr),
        ("SHOP_PASSWORD_HASH_THREADS", "1"),
        ("SHOP_PASSWORD_HASH_WAIT_MS", "1"),
        ("SHOP_ARGON2_MEMORY_KIB", "19456"),
        ("SHOP_ARGON2_ITERATIONS", "2"),
        ("SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT", "1000"),
    ])
    .await;
    let gateway = Arc::new(
        spawn_with(&[
            ("SHOP_MODULES", "catalog"),
            ("SHOP_IDENTITY_URL", &identity.base),
        ])
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            gateway
                .post(
                    "/api/v1/auth/token",
                    None,
                    json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
                )
                .await
        }));
    }
    let mut busy = 0;
    for task in tasks {
        let r = task.await?;
        if r.status.as_u16() == 503 {
            // The same answer as in-process: `busy` with its Retry-After, not a bare `unavailable`.
            r.assert_problem(503, "busy");
            assert!(retry_after(&r) >= 1, "{:?}", r.headers);
            busy += 1;
        } else {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
    assert!(
        busy >= 1,
        "with one hashing thread some of 16 sign-ins wait too long"
    );
    Ok(())
}
