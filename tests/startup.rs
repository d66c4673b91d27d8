//! Starting up: several instances on one database, and where the client address comes from.

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
