//! The boundary between services: who may call what, with which credential, and what the end user sees
//! when the services themselves are deployed wrong.

mod common;

use std::collections::HashMap;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop_identity::{IdentityApi, IdentityClient, IdentityError};
use shop_inventory::{InventoryApi, InventoryClient, InventoryError, ReservationLine};
use shop_kernel::RequestContext;
use shop_kernel::Secret;
use shop_kernel::rpc::OutgoingCredential;

const ORDERING_SECRET: &str = "ordering-secret-0123456789-abcdefghij";
const NOTIFICATIONS_SECRET: &str = "notifications-secret-0123456789-abcdef";

fn hex(secret: &str) -> String {
    shop_kernel::http::credential_digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn service(name: &str, secret: &str) -> OutgoingCredential {
    OutgoingCredential::Service {
        name: name.into(),
        secret: Secret::new(secret),
    }
}

fn one_line() -> Vec<ReservationLine> {
    vec![ReservationLine {
        sku: "MUG-1".into(),
        quantity: 1,
    }]
}

#[tokio::test]
async fn the_admin_email_registered_by_someone_else_is_not_promoted() -> TestResult {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-test-{}", uuid::Uuid::now_v7().simple()));
    let mut vars = base_vars(&dir, &db.url);
    vars.remove("SHOP_ADMIN_EMAIL");
    vars.remove("SHOP_ADMIN_PASSWORD");
    let app = spawn_vars(vars).await;
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "boss@shop.test", "password": "attacker-password", "display_name": "Boss" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let db_url = db.url.clone();
    let start = |password: &str| {
        let mut vars: HashMap<String, String> = base_vars(&app.data_dir, &db_url);
        vars.insert("SHOP_ADMIN_EMAIL".into(), "boss@shop.test".into());
        vars.insert("SHOP_ADMIN_PASSWORD".into(), password.into());
        let config = shop::config::Config::from_lookup(|k| vars.get(k).cloned());
        async move {
            let config = config.map_err(|e| e.to_string())?;
            shop::server::start(config).await.map_err(|e| e.to_string())
        }
    };
    let refused = start("the-real-admin-password")
        .await
        .err()
        .unwrap_or_default();
    assert!(
        refused.contains("SHOP_ADMIN_PASSWORD does not match"),
        "{refused}"
    );
    let attacker = app.token("boss@shop.test", "attacker-password").await;
    assert_eq!(
        app.get("/api/v1/users/me", Some(&attacker)).await.body["role"],
        "customer"
    );
    // The owner of the password is promoted.
    let running = start("attacker-password").await?;
    let handle = running.server.handle();
    tokio::spawn(running.server);
    handle.stop(false).await;
    let token = app.token("boss@shop.test", "attacker-password").await;
    assert_eq!(
        app.get("/api/v1/users/me", Some(&token)).await.body["role"],
        "admin"
    );
    Ok(())
}

#[tokio::test]
async fn ensure_admin_is_the_systems_alone_and_never_served_over_http() -> TestResult {
    let app = spawn_app().await;
    let local = app
        .running_modules
        .get::<dyn shop_identity::IdentityApi>()
        .ok_or("no identity")?;
    let created = local
        .ensure_admin(
            &RequestContext::system(),
            "ops@shop.test".into(),
            "ops-password-123".into(),
        )
        .await?;
    assert_eq!(
        local
            .ensure_admin(
                &RequestContext::system(),
                "ops@shop.test".into(),
                "ops-password-123".into()
            )
            .await?,
        created,
        "idempotent"
    );
    // An existing admin stays as it is, its password its own.
    assert_eq!(
        local
            .ensure_admin(
                &RequestContext::system(),
                "ops@shop.test".into(),
                "another-password".into()
            )
            .await?,
        created
    );
    app.token("ops@shop.test", "ops-password-123").await;
    // An existing customer is promoted only by its own password.
    app.customer("someone@shop.test").await;
    assert_eq!(
        local
            .ensure_admin(
                &RequestContext::system(),
                "someone@shop.test".into(),
                "another-password".into()
            )
            .await,
        Err(IdentityError::AdminPasswordMismatch)
    );
    let remote = IdentityClient::new(app.rpc());
    assert_eq!(
        remote
            .ensure_admin(
                &RequestContext::system(),
                "evil@shop.test".into(),
                "evil-password-1".into()
            )
            .await,
        Err(IdentityError::Forbidden),
        "the system's authority does not cross HTTP"
    );
    let r = app
        .request_with(
            Method::POST,
            "/internal/identity/ensure_admin",
            None,
            Some(json!({ "email": "evil@shop.test", "password": "evil-password-1" })),
            &[
                ("x-shop-service-token", SERVICE_TOKEN),
                ("x-shop-origin", "module:identity"),
            ],
        )
        .await;
    r.assert_problem(404, "unknown_operation");
    Ok(())
}

#[tokio::test]
async fn per_service_credentials_speak_only_for_their_own_modules() -> TestResult {
    let peers = format!(
        "ordering={},notifications={}",
        hex(ORDERING_SECRET),
        hex(NOTIFICATIONS_SECRET)
    );
    let app = spawn_with(&[("SHOP_SERVICE_PEERS", &peers)]).await;
    let admin = app.admin_token().await;
    app.set_stock(&admin, "MUG-1", 5).await;
    let order = uuid::Uuid::now_v7();

    let notifications =
        InventoryClient::new(app.rpc_with(service("notifications", NOTIFICATIONS_SECRET)));
    // Speaking as itself, notifications is simply not allowed to hold stock.
    let as_notifications = RequestContext::default().as_module("notifications");
    assert_eq!(
        notifications
            .reserve(&as_notifications, order, one_line())
            .await,
        Err(InventoryError::Forbidden)
    );
    // Claiming to be ordering with its own secret is refused by the server: a deployment fault, 503.
    assert!(matches!(
        notifications.reserve(&ordering(), order, one_line()).await,
        Err(InventoryError::Unavailable(_))
    ));
    // The same claim over raw HTTP shows the server's answer.
    let r = app
        .request_with(
            Method::POST,
            "/internal/inventory/reserve",
            None,
            Some(json!({ "order_id": order, "lines": [{ "sku": "MUG-1", "quantity": 1 }] })),
            &[
                ("x-shop-service", "notifications"),
                ("x-shop-service-token", NOTIFICATIONS_SECRET),
                ("x-shop-origin", "module:ordering"),
            ],
        )
        .await;
    r.assert_problem(403, "origin_not_allowed");
    // A right name with a wrong secret is not accepted at all.
    let forged = InventoryClient::new(app.rpc_with(service("ordering", NOTIFICATIONS_SECRET)));
    assert!(matches!(
        forged.reserve(&ordering(), order, one_line()).await,
        Err(InventoryError::Unavailable(_))
    ));
    // Ordering, with its own secret, holds stock.
    let ordering_client = InventoryClient::new(app.rpc_with(service("ordering", ORDERING_SECRET)));
    let held = ordering_client
        .reserve(&ordering(), order, one_line())
        .await?;
    assert_eq!(held.lines, one_line());
    Ok(())
}

#[tokio::test]
async fn a_second_shared_token_is_accepted_while_the_first_is_rotated() -> TestResult {
    let next = "the-next-service-token-0123456789-abcd";
    let app = spawn_with(&[("SHOP_SERVICE_TOKEN_ACCEPTED", next)]).await;
    for token in [SERVICE_TOKEN, next] {
        let client =
            InventoryClient::new(app.rpc_with(OutgoingCredential::Shared(Secret::new(token))));
        assert!(matches!(
            client
                .get_stock(&RequestContext::default(), "NONE".into())
                .await,
            Err(InventoryError::SkuNotFound { .. })
        ));
    }
    let stale = InventoryClient::new(app.rpc_with(OutgoingCredential::Shared(Secret::new(
        "a-token-nobody-accepts-0123456789-abcdef",
    ))));
    assert!(matches!(
        stale
            .get_stock(&RequestContext::default(), "NONE".into())
            .await,
        Err(InventoryError::Unavailable(_))
    ));
    Ok(())
}

/// A gateway serving identity and catalog, and inventory as a service of its own that the gateway calls;
/// `inventory_extra` adds to (or overrides) the service's variables.
async fn gateway_and_inventory(inventory_extra: &[(&str, &str)]) -> (TestApp, TestApp) {
    let inventory_port = free_port();
    let inventory_url = format!("http://127.0.0.1:{inventory_port}");
    let gateway = spawn_with(&[
        ("SHOP_MODULES", "identity,catalog,notifications"),
        ("SHOP_INVENTORY_URL", &inventory_url),
        ("SHOP_REMOTE_TIMEOUT_MS", "2000"),
        ("SHOP_REMOTE_PROBE_INTERVAL_MS", "200"),
    ])
    .await;
    let addr = format!("127.0.0.1:{inventory_port}");
    let mut vars = vec![
        ("SHOP_MODULES", "inventory"),
        ("SHOP_HTTP_ADDR", addr.as_str()),
        ("SHOP_IDENTITY_URL", gateway.base.as_str()),
    ];
    vars.extend_from_slice(inventory_extra);
    let inventory = spawn_with(&vars).await;
    (gateway, inventory)
}

#[tokio::test]
async fn a_rejected_credential_is_a_503_for_the_user_opens_the_breaker_and_shows_in_readiness()
-> TestResult {
    let (gateway, _inventory) = gateway_and_inventory(&[(
        "SHOP_SERVICE_TOKEN",
        "inventory-has-another-token-0123456789",
    )])
    .await;
    // Not a 401 "sign in first", nor a 404 "unknown SKU": the user did nothing wrong.
    gateway
        .get("/api/v1/inventory/MUG-1", None)
        .await
        .assert_problem(503, "unavailable");
    // Down in readiness, yet the gateway stays ready: it serves everything but inventory.
    let (status, ready) = readiness_showing(&gateway.base, "remote:inventory", "down", 10).await;
    let checks = ready["checks"].as_array().cloned().unwrap_or_default();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "remote:inventory" && c["status"] == "down"),
        "{ready}"
    );
    assert_eq!(status, StatusCode::OK, "{ready}");
    // Each refusal counts against the breaker: after five, calls fail fast without reaching the service.
    let inventory = gateway
        .running_modules
        .get::<dyn shop_inventory::InventoryApi>()
        .ok_or("no inventory")?;
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            inventory
                .get_stock(&RequestContext::default(), "MUG-1".into())
                .await,
        );
    }
    assert!(
        matches!(&last, Some(Err(InventoryError::Unavailable(d))) if d.contains("circuit open")),
        "{last:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_module_url_pointing_at_a_process_that_does_not_serve_it_is_a_503() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // This "inventory" is really a catalog service.
    let gateway_port = free_port();
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    let wrong_url = format!("http://127.0.0.1:{port}");
    let gateway_addr = format!("127.0.0.1:{gateway_port}");
    let gateway = spawn_with(&[
        ("SHOP_HTTP_ADDR", &gateway_addr),
        ("SHOP_MODULES", "identity,catalog,notifications"),
        ("SHOP_INVENTORY_URL", &wrong_url),
    ])
    .await;
    let _catalog = spawn_with(&[
        ("SHOP_MODULES", "catalog"),
        ("SHOP_HTTP_ADDR", &addr),
        ("SHOP_IDENTITY_URL", &gateway_url),
    ])
    .await;
    gateway
        .get("/api/v1/inventory/MUG-1", None)
        .await
        .assert_problem(503, "unavailable");
    let (status, ready) = readiness_showing(&gateway.base, "remote:inventory", "down", 10).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(
        ready["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "remote:inventory" && c["status"] == "down"),
        "{ready}"
    );
}

#[tokio::test]
async fn with_an_internal_listener_the_public_one_hides_internal_routes_and_metrics() -> TestResult
{
    let dead = format!("http://127.0.0.1:{}", free_port());
    // Bound to every interface, as in a container: connections report the address they arrived on.
    let app = spawn_with(&[
        ("SHOP_INTERNAL_ADDR", "0.0.0.0:0"),
        ("SHOP_MODULES", "identity,catalog,notifications"),
        ("SHOP_INVENTORY_URL", &dead),
        ("SHOP_REMOTE_TIMEOUT_MS", "500"),
    ])
    .await;
    let internal = app
        .internal_base
        .clone()
        .ok_or("no internal listener")?
        .replace("0.0.0.0", "127.0.0.1");
    let service_headers = [("x-shop-service-token", SERVICE_TOKEN)];
    let public = app
        .request_with(
            Method::POST,
            "/internal/catalog/get_product",
            None,
            Some(json!({ "id": uuid::Uuid::now_v7() })),
            &service_headers,
        )
        .await;
    public.assert_problem(404, "unknown_operation");
    // Percent-encoding does not get past the listener check.
    app.request_with(
        Method::POST,
        "/%69nternal/catalog/get_product",
        None,
        Some(json!({ "id": uuid::Uuid::now_v7() })),
        &service_headers,
    )
    .await
    .assert_problem(404, "unknown_operation");
    app.get("/metrics", None)
        .await
        .assert_problem(404, "not_found");

    let http = reqwest::Client::new();
    let metrics = http.get(format!("{internal}/metrics")).send().await?;
    assert_eq!(metrics.status(), StatusCode::OK);
    let call = http
        .post(format!("{internal}/internal/catalog/get_product"))
        .header("x-shop-service-token", SERVICE_TOKEN)
        .json(&json!({ "id": uuid::Uuid::now_v7() }))
        .send()
        .await?;
    assert_eq!(call.status(), StatusCode::NOT_FOUND);

    // Readiness: up/down for everyone, the reason only on the internal listener.
    let (status, public_ready) = readiness_showing(&app.base, "remote:inventory", "down", 10).await;
    assert_eq!(status, StatusCode::OK, "{public_ready}");
    let down = |body: &serde_json::Value| {
        body["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == "remote:inventory")
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(down(&public_ready)["status"], "down");
    assert!(
        down(&public_ready).get("detail").is_none(),
        "{public_ready}"
    );
    let internal_ready: serde_json::Value = http
        .get(format!("{internal}/health/ready"))
        .send()
        .await?
        .json()
        .await?;
    assert!(
        down(&internal_ready)["detail"].is_string(),
        "{internal_ready}"
    );
    Ok(())
}

#[tokio::test]
async fn a_newer_caller_and_an_older_caller_are_both_understood() -> TestResult {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.set_stock(&admin, "MUG-1", 5).await;
    let bearer = format!("Bearer {admin}");
    let headers = [
        ("x-shop-service-token", SERVICE_TOKEN),
        ("authorization", bearer.as_str()),
    ];
    // An older caller does not send `idempotency_key` (added later as an optional argument).
    let old = app
        .request_with(
            Method::POST,
            "/internal/inventory/adjust_stock",
            None,
            Some(json!({ "sku": "MUG-1", "adjustment": { "delta": 1, "reason": "old caller" } })),
            &headers,
        )
        .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.body);
    // A newer caller sends an argument this server does not know yet: ignored.
    let new = app
        .request_with(
            Method::POST,
            "/internal/inventory/adjust_stock",
            None,
            Some(json!({
                "sku": "MUG-1",
                "adjustment": { "delta": 1, "reason": "new caller" },
                "idempotency_key": null,
                "on_behalf_of_warehouse": "north"
            })),
            &headers,
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
    assert_eq!(new.body["on_hand"], 7);
    Ok(())
}

/// Collects formatted log lines in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_5xx_body_names_no_internals_quotes_the_request_id_and_its_cause_is_logged_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let app = spawn_with(&[
        ("SHOP_MODULES", "identity,catalog,notifications"),
        ("SHOP_INVENTORY_URL", &dead),
        ("SHOP_REMOTE_TIMEOUT_MS", "300"),
    ])
    .await;
    let r = app
        .request_with(
            Method::GET,
            "/api/v1/inventory/MUG-1",
            None,
            None,
            &[("x-request-id", "log-once-0001")],
        )
        .await;
    r.assert_problem(503, "unavailable");
    let body = r.body.to_string();
    assert!(
        !body.contains("127.0.0.1") && !body.contains(&dead),
        "{body}"
    );
    assert_eq!(r.body["request_id"], "log-once-0001", "{body}");
    let logs = captured
        .0
        .lock()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default();
    let failures: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("log-once-0001") && l.contains("request failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{logs}");
    assert!(
        failures[0].contains("127.0.0.1"),
        "the log has the cause: {}",
        failures[0]
    );
}

#[tokio::test]
async fn readiness_answers_at_once_while_a_remote_hangs_and_its_probe_tells_it_later() -> TestResult
{
    let app = spawn_with(&[
        ("SHOP_MODULES", "identity,catalog,notifications"),
        ("SHOP_INVENTORY_URL", &black_hole()),
        ("SHOP_REMOTE_TIMEOUT_MS", "1500"),
        ("SHOP_REMOTE_PROBE_INTERVAL_MS", "200"),
    ])
    .await;
    // The background probe is still waiting on the silent remote: readiness does not wait with it.
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let ready = app.get("/health/ready", None).await;
        assert!(
            started.elapsed() < std::time::Duration::from_millis(1000),
            "readiness took {:?}",
            started.elapsed()
        );
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    }
    let (status, ready) = readiness_showing(&app.base, "remote:inventory", "down", 10).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(
        ready["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "remote:inventory" && c["status"] == "down"),
        "{ready}"
    );
    let metrics = app.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "shop_remote_module_up{module=\"inventory\"}"),
        Some(0.0),
        "{metrics}"
    );
    Ok(())
}
