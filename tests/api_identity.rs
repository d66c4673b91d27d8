//! Black-box tests of the identity API and the HTTP contract every route shares.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn registering_returns_the_user_with_a_location_and_never_the_password() -> TestResult {
    let app = spawn_scenario(&[]).await;
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "Ada@Example.com", "password": "a-long-password", "display_name": "Ada", "role": "admin" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["email"], "ada@example.com");
    assert_eq!(
        r.body["role"], "customer",
        "registration never grants admin"
    );
    assert!(r.body.get("password").is_none() && r.body.get("password_hash").is_none());
    let id = r.body["id"].as_str().unwrap_or_default();
    assert_eq!(uuid::Uuid::parse_str(id)?.get_version_num(), 7);
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/users/{id}").as_str())
    );
    // The Location exists: for the user, for admins, and for nobody else.
    let location = format!("/api/v1/users/{id}");
    let own = app.token("ada@example.com", "a-long-password").await;
    assert_eq!(app.get(&location, Some(&own)).await.body, r.body);
    let admin = app.admin_token().await;
    assert_eq!(app.get(&location, Some(&admin)).await.body, r.body);
    let (_, other) = app.customer("other@example.com").await;
    app.get(&location, Some(&other))
        .await
        .assert_problem(404, "not_found");
    app.get(&location, None)
        .await
        .assert_problem(401, "unauthenticated");
    app.get("/api/v1/users/not-a-uuid", Some(&own))
        .await
        .assert_problem(400, "bad_request");
    Ok(())
}

#[tokio::test]
async fn registering_an_email_twice_is_a_conflict_whatever_its_case() {
    let app = spawn_scenario(&[]).await;
    app.customer("bob@example.com").await;
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "BOB@example.com", "password": "another-password", "display_name": "Bob" }),
        )
        .await;
    r.assert_problem(409, "email_taken");
}

#[tokio::test]
async fn registration_lists_every_invalid_field() {
    let app = spawn_scenario(&[]).await;
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "not-an-email", "password": "short", "display_name": "" }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["display_name", "email", "password"]);
    let long = "x".repeat(129);
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "a@b.io", "password": long, "display_name": "y".repeat(101) }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["display_name", "password"]);
}

#[tokio::test]
async fn control_characters_in_identity_input_are_4xx_on_every_database() {
    let app = spawn_scenario(&[]).await;
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "nul\u{0}@example.com", "password": "a-long-password", "display_name": "x\u{0}" }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["display_name", "email"]);
    app.post(
        "/api/v1/auth/token",
        None,
        json!({ "email": "a\u{0}@example.com", "password": "whatever-password" }),
    )
    .await
    .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn a_token_is_issued_for_valid_credentials_and_opens_users_me() {
    let app = spawn_scenario(&[]).await;
    app.customer("carol@example.com").await;
    let r = app
        .post(
            "/api/v1/auth/token",
            None,
            json!({ "email": "carol@example.com", "password": "customer-password-1" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert!(r.body["expires_in"].as_u64().is_some_and(|s| s > 0));
    let token = r.body["access_token"].as_str().unwrap_or_default();
    let me = app.get("/api/v1/users/me", Some(token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["email"], "carol@example.com");
    assert_eq!(me.body["display_name"], "Customer");
    assert_eq!(me.body["role"], "customer");
    assert!(
        me.body["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_emails_get_the_same_answer() {
    let app = spawn_scenario(&[]).await;
    app.customer("dave@example.com").await;
    let wrong = app
        .post(
            "/api/v1/auth/token",
            None,
            json!({ "email": "dave@example.com", "password": "wrong-password!" }),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/token",
            None,
            json!({ "email": "nobody@example.com", "password": "wrong-password!" }),
        )
        .await;
    wrong.assert_problem(401, "invalid_credentials");
    unknown.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn users_me_needs_a_valid_token() {
    let app = spawn_scenario(&[]).await;
    app.get("/api/v1/users/me", None)
        .await
        .assert_problem(401, "unauthenticated");
    app.get("/api/v1/users/me", Some("garbage"))
        .await
        .assert_problem(401, "unauthenticated");
    let r = app
        .request_with(
            Method::GET,
            "/api/v1/users/me",
            None,
            None,
            &[("authorization", "Basic YTpi")],
        )
        .await;
    r.assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn tampered_and_wrong_algorithm_tokens_are_rejected() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let app = spawn_scenario(&[]).await;
    let (_, token) = app.customer("eve@example.com").await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    // Promote ourselves to admin in the payload, keep the signature.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
    claims["role"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    app.get("/api/v1/users/me", Some(&forged))
        .await
        .assert_problem(401, "unauthenticated");
    // Same claims, but claiming HS256 / none: the algorithm is pinned to EdDSA.
    let mut header: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[0]).unwrap_or_default()).unwrap_or_default();
    for alg in ["HS256", "none"] {
        header["alg"] = json!(alg);
        let t = format!(
            "{}.{}.{}",
            b64.encode(header.to_string()),
            parts[1],
            parts[2]
        );
        app.get("/api/v1/users/me", Some(&t))
            .await
            .assert_problem(401, "unauthenticated");
    }
}

#[tokio::test]
async fn the_jwks_publishes_the_key_that_signed_the_token() {
    use base64::Engine as _;
    let app = spawn_scenario(&[]).await;
    let token = app.admin_token().await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    let header = token.split('.').next().unwrap_or_default();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key["kid"]);
}

#[tokio::test]
async fn the_configured_admin_exists_and_signs_in_as_admin() {
    let app = spawn_scenario(&[]).await;
    let token = app.admin_token().await;
    let me = app.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(me.body["role"], "admin", "{}", me.body);
    assert_eq!(me.body["email"], ADMIN_EMAIL);
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled_with_retry_after() {
    let app = spawn_scenario(&[
        ("SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3"),
        ("SHOP_LOGIN_WINDOW_SECS", "600"),
    ])
    .await;
    app.customer("frank@example.com").await;
    let attempt = || {
        app.post(
            "/api/v1/auth/token",
            None,
            json!({ "email": "frank@example.com", "password": "wrong-password!" }),
        )
    };
    for _ in 0..3 {
        attempt().await.assert_problem(401, "invalid_credentials");
    }
    let r = attempt().await;
    r.assert_problem(429, "rate_limited");
    let retry_after: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        (1..=600).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    // Even the right password waits: no probing while throttled.
    let r = app
        .post(
            "/api/v1/auth/token",
            None,
            json!({ "email": "frank@example.com", "password": "customer-password-1" }),
        )
        .await;
    r.assert_problem(429, "rate_limited");
    // Other accounts are unaffected.
    app.admin_token().await;
}

#[tokio::test]
async fn malformed_bodies_get_problems_never_5xx() {
    let app = spawn_scenario(&[]).await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.http
            .post(format!("{}/api/v1/users", app.base))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let r = raw("{\"email\":", "application/json")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = raw(
        "{\"email\": 5, \"password\": [], \"display_name\": null}",
        "application/json",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 422);
    let r = raw("email=a", "application/x-www-form-urlencoded")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 415);
    let big = json!({ "email": "a@b.io", "password": "p".repeat(100_000), "display_name": "x" });
    app.post("/api/v1/users", None, big)
        .await
        .assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_are_404_and_known_paths_with_other_methods_405() {
    let app = spawn_scenario(&[]).await;
    app.get("/api/v1/nothing-here", None)
        .await
        .assert_problem(404, "not_found");
    app.get("/api/v1/products/1/extra", None)
        .await
        .assert_problem(404, "not_found");
    let r = app
        .request(Method::DELETE, "/api/v1/users/me", None, None)
        .await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.headers["allow"], "GET");
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/v1/products/{}", uuid::Uuid::now_v7()),
            None,
            None,
        )
        .await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.headers["allow"], "GET, PATCH");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = spawn_scenario(&[]).await;
    let r = app.get("/health/live", None).await;
    assert!(r.headers.contains_key("x-request-id"));
    let r = app
        .request_with(
            Method::GET,
            "/health/live",
            None,
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = spawn_scenario(&[]).await;
    assert_eq!(app.get("/health/live", None).await.status, StatusCode::OK);
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    app.get("/api/v1/products", None).await;
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains(
            "shop_http_requests_total{endpoint=\"/api/v1/products\",method=\"GET\",status=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "shop_module_calls_total{module=\"catalog\",operation=\"list_products\",outcome=\"ok\",transport="
        ),
        "{metrics}"
    );
    let spec = app.get("/openapi.json", None).await;
    assert_eq!(spec.body["openapi"], "3.1.0");
    assert!(spec.body["paths"]["/api/v1/products"].is_object());
    let paths = |doc: &Value| -> Vec<String> {
        doc["paths"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert!(
        !paths(&spec.body).iter().any(|p| p.starts_with("/internal")),
        "the public document lists no /internal operation: {:?}",
        paths(&spec.body)
    );
    // The callers' document needs a service credential.
    assert_eq!(
        app.get("/internal/openapi.json", None)
            .await
            .status
            .as_u16(),
        401
    );
    // Each process lists the /internal operations of the modules it serves: all of them in a monolith, none
    // in an all-split gateway that serves no module itself.
    let mut listed = 0;
    for process in std::iter::once(&app).chain(app.services.iter()) {
        let internal = process
            .request_with(
                Method::GET,
                "/internal/openapi.json",
                None,
                None,
                &[(shop_kernel::rpc::SERVICE_TOKEN_HEADER, SERVICE_TOKEN)],
            )
            .await;
        assert_eq!(internal.status, StatusCode::OK, "{}", internal.body);
        let internal_paths = paths(&internal.body);
        assert!(
            internal_paths.iter().all(|p| p.starts_with("/internal/")),
            "{internal_paths:?}"
        );
        listed += internal_paths.len();
    }
    assert!(listed > 0, "no process lists an /internal operation");
    let docs = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap_or_default();
    assert!(
        html.contains("swagger"),
        "the docs page is served from the binary"
    );
}

#[tokio::test]
async fn the_cli_creates_an_admin_from_stdin() -> TestResult {
    use std::io::Write;
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-cli-{}", uuid::Uuid::now_v7().simple()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["admin", "create", "--email", "ops@example.com"])
        .env("SHOP_DATABASE_URL", &db.url)
        .env("SHOP_DATA_DIR", &dir)
        .env("SHOP_ARGON2_MEMORY_KIB", "256")
        .env("SHOP_ARGON2_ITERATIONS", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(b"ops-password-1234\n")?;
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut vars = base_vars(&dir, &db.url);
    vars.remove("SHOP_ADMIN_EMAIL");
    vars.remove("SHOP_ADMIN_PASSWORD");
    let app = spawn_vars(vars).await;
    let token = app.token("ops@example.com", "ops-password-1234").await;
    assert_eq!(
        app.get("/api/v1/users/me", Some(&token)).await.body["role"],
        "admin"
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
