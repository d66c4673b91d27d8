//! Checkout under faults: a module that does not answer, a module that is down and comes back (or does not
//! in time), and the real binary killed right after each saga step, then restarted. Every order ends
//! confirmed, cancelled or failed exactly once: never charged without stock, never holding stock forever.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A TCP port that accepts connections and never answers: a module that hangs.
fn black_hole() -> String {
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

async fn place(app: &TestApp, token: &str, product: &Value, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    let body = json!({ "lines": [{ "product_id": product["id"], "quantity": 2 }] });
    app.request_with(
        Method::POST,
        "/api/v1/orders",
        Some(token),
        Some(body),
        &headers,
    )
    .await
}

async fn stock(app: &TestApp, sku: &str) -> (i64, i64) {
    let r = app.get(&format!("/api/v1/inventory/{sku}"), None).await;
    (
        r.body["on_hand"].as_i64().unwrap_or(-1),
        r.body["reserved"].as_i64().unwrap_or(-1),
    )
}

#[tokio::test]
async fn a_duplicate_sent_while_the_first_is_placing_is_409_and_afterwards_the_same_order() {
    let payments = black_hole();
    let app = spawn_with(&[
        (
            "SHOP_MODULES",
            "identity,catalog,inventory,ordering,notifications",
        ),
        ("SHOP_PAYMENTS_URL", &payments),
        ("SHOP_REMOTE_TIMEOUT_MS", "1500"),
    ])
    .await;
    let admin = app.admin_token().await;
    let product = app.product(&admin, "HANG-1", "Hanging", 100).await;
    app.set_stock(&admin, "HANG-1", 10).await;
    let (_, token) = app.customer("ada@example.com").await;

    let first = tokio::spawn({
        let (base, token, product) = (app.base.clone(), token.clone(), product.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v1/orders"))
                .bearer_auth(token)
                .header("idempotency-key", "k-1")
                .json(&json!({ "lines": [{ "product_id": product["id"], "quantity": 2 }] }))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    // The first request waits on payments; a duplicate meanwhile is told so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!first.is_finished());
    place(&app, &token, &product, Some("k-1"))
        .await
        .assert_problem(409, "idempotency_key_in_use");
    // Payments never answered: the order is pending, holding its stock, and finished in the background.
    assert_eq!(
        first.await.ok().and_then(Result::ok),
        Some(StatusCode::ACCEPTED)
    );
    let again = place(&app, &token, &product, Some("k-1")).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.body["status"], "pending");
    assert_eq!(stock(&app, "HANG-1").await, (10, 2));
    let list = app.get("/api/v1/orders", Some(&token)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
}

/// A gateway with every module but payments, and payments in its own process on a port that survives its
/// restarts.
struct Checkout {
    gateway: TestApp,
    payments: Option<TestApp>,
    payments_vars: HashMap<String, String>,
    payments_db: Option<TestDb>,
}

impl Checkout {
    async fn start(extra: &[(&str, &str)]) -> Checkout {
        let port = free_port();
        let mut gateway_vars = vec![
            (
                "SHOP_MODULES",
                "identity,catalog,inventory,ordering,notifications",
            ),
            ("SHOP_REMOTE_TIMEOUT_MS", "1000"),
        ];
        let url = format!("http://127.0.0.1:{port}");
        gateway_vars.push(("SHOP_PAYMENTS_URL", &url));
        gateway_vars.extend_from_slice(extra);
        let gateway = spawn_with(&gateway_vars).await;
        let db = TestDb::new();
        let dir = std::env::temp_dir().join(format!("shop-pay-{}", uuid::Uuid::now_v7().simple()));
        let mut vars = base_vars(&dir, &db.url);
        for (k, v) in [
            ("SHOP_MODULES", "payments".to_string()),
            ("SHOP_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("SHOP_IDENTITY_URL", gateway.base.clone()),
        ] {
            vars.insert(k.into(), v);
        }
        let mut checkout = Checkout {
            gateway,
            payments: None,
            payments_vars: vars,
            payments_db: Some(db),
        };
        checkout.start_payments().await;
        checkout
    }

    /// A product `sku` with 10 units at 3.00, and a buyer with 10.00 in the wallet: (product, token).
    async fn buyer(&self, sku: &str) -> (Value, String) {
        let g = &self.gateway;
        let admin = g.admin_token().await;
        let product = g.product(&admin, sku, "Down", 300).await;
        g.set_stock(&admin, sku, 10).await;
        let (user, token) = g.customer("ada@example.com").await;
        g.fund(&admin, &user, 1000).await;
        (product, token)
    }

    async fn start_payments(&mut self) {
        self.payments = Some(spawn_vars(self.payments_vars.clone()).await);
    }

    async fn stop_payments(&mut self) {
        if let Some(payments) = self.payments.take() {
            payments.stop().await;
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // The database outlives the payments process across restarts; drop it last.
        self.payments = None;
        self.payments_db.take();
    }
}

async fn order_status(app: &TestApp, token: &str, id: &str, want: &str, secs: u64) -> Value {
    poll_until(app, &format!("/api/v1/orders/{id}"), token, secs, |o| {
        o["status"] == want
    })
    .await
}

#[tokio::test]
async fn with_payments_down_an_order_waits_holding_its_stock_and_is_confirmed_when_payments_returns()
 {
    let mut c = Checkout::start(&[]).await;
    let (product, token) = c.buyer("DOWN-1").await;

    c.stop_payments().await;
    let g = &c.gateway;
    let pending = place(g, &token, &product, None).await;
    assert_eq!(pending.status, StatusCode::ACCEPTED, "{}", pending.body);
    assert_eq!(pending.body["status"], "pending");
    let id = pending.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        pending
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/orders/{id}").as_str())
    );
    assert_eq!(stock(g, "DOWN-1").await, (10, 2), "held while it waits");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        g.get(&format!("/api/v1/orders/{id}"), Some(&token))
            .await
            .body["status"],
        "pending"
    );

    c.start_payments().await;
    let g = &c.gateway;
    let done = order_status(g, &token, &id, "confirmed", 30).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    assert_eq!(stock(g, "DOWN-1").await, (8, 0));
    let wallet = g.get("/api/v1/wallet", Some(&token)).await;
    assert_eq!(wallet.body["balance"]["amount_minor"], 400, "charged once");
}

#[tokio::test]
async fn with_payments_down_past_the_give_up_time_an_order_is_compensated_and_never_charged() {
    let mut c = Checkout::start(&[("SHOP_ORDER_GIVE_UP_SECS", "1")]).await;
    let (product, token) = c.buyer("DOWN-2").await;
    c.stop_payments().await;
    let g = &c.gateway;
    let pending = place(g, &token, &product, None).await;
    assert_eq!(pending.status, StatusCode::ACCEPTED, "{}", pending.body);
    let id = pending.body["id"].as_str().unwrap_or_default().to_string();
    // Past the give-up time the charge is not tried again; the compensation (a refund tombstone first,
    // so that no late charge can go through) waits for payments to return.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stock(g, "DOWN-2").await,
        (10, 2),
        "still held: no refund yet"
    );

    c.start_payments().await;
    let g = &c.gateway;
    let done = order_status(g, &token, &id, "failed", 30).await;
    assert_eq!(
        (done["status"].as_str(), done["failure"].as_str()),
        (Some("failed"), Some("unavailable")),
        "{done}"
    );
    assert_eq!(stock(g, "DOWN-2").await, (10, 0), "released");
    let wallet = g.get("/api/v1/wallet", Some(&token)).await;
    assert_eq!(
        wallet.body["balance"]["amount_minor"], 1000,
        "never charged"
    );
}

/// Kills the process right after `step` of a placement (or its cancellation), restarts it, and checks the
/// order ends `want` exactly once: money, stock and messages counted.
async fn killed_after(step: &str, want: &str) {
    killed_after_ordering(step, want, &["CRASH-1"]).await;
}

/// [`killed_after`] with an order of two units of each of `skus` (300 each).
async fn killed_after_ordering(step: &str, want: &str, skus: &[&str]) {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-crash-{}", uuid::Uuid::now_v7().simple()));
    let vars = base_vars(&dir, &db.url);
    let quick = [
        ("SHOP_ORDER_SAGA_LEASE_MS", "500"),
        ("SHOP_ORDER_RECOVERY_INTERVAL_MS", "100"),
        ("SHOP_EVENT_RELAY_INTERVAL_MS", "50"),
    ];
    let crashing = [quick.as_slice(), &[("SHOP_FAULT_CRASH_AFTER", step)]].concat();
    let cancelling = step == "cancel";
    let total = 600 * i64::try_from(skus.len()).unwrap_or(1);
    let funds = if step == "compensate" {
        100
    } else {
        total + 400
    };

    let mut shop = Binary::start(&vars, if cancelling { &quick } else { &crashing }).await;
    let admin = shop.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut lines = Vec::new();
    for sku in skus {
        let (status, product) = shop
            .call(
                Method::POST,
                "/api/v1/products",
                Some(&admin),
                Some(json!({ "sku": sku, "name": "Crash", "description": "",
                             "price": { "amount_minor": 300, "currency": "EUR" } })),
            )
            .await;
        assert_eq!(status, 201, "{product}");
        let (status, _) = shop
            .call(
                Method::PUT,
                &format!("/api/v1/inventory/{sku}"),
                Some(&admin),
                Some(json!({ "on_hand": 10 })),
            )
            .await;
        assert_eq!(status, 200);
        lines.push(json!({ "product_id": product["id"], "quantity": 2 }));
    }
    let (_, user) = shop
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(
                json!({ "email": "ada@example.com", "password": "customer-password-1",
                         "display_name": "Ada" }),
            ),
        )
        .await;
    let token = shop.token("ada@example.com", "customer-password-1").await;
    let (status, _) = shop
        .call(
            Method::POST,
            &format!(
                "/api/v1/wallets/{}/credits",
                user["id"].as_str().unwrap_or_default()
            ),
            Some(&admin),
            Some(json!({ "amount_minor": funds, "reason": "test" })),
        )
        .await;
    assert_eq!(status, 201);
    let order = json!({ "lines": lines });
    let (status, placed) = shop
        .call(Method::POST, "/api/v1/orders", Some(&token), Some(order))
        .await;
    if cancelling {
        assert_eq!(status, 201, "{placed}");
        drop(shop);
        shop = Binary::start(&vars, &crashing).await;
        let id = placed["id"].as_str().unwrap_or_default();
        let (status, _) = shop
            .call(
                Method::POST,
                &format!("/api/v1/orders/{id}/cancel"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 0, "the process died before answering");
    } else {
        assert_eq!(status, 0, "the process died before answering: {placed}");
    }
    assert_eq!(
        shop.exits().await,
        Some(86),
        "the fault switch fired after {step}"
    );

    let shop = Binary::start(&vars, &quick).await;
    let mut orders = Value::Null;
    for _ in 0..200 {
        (_, orders) = shop
            .call(Method::GET, "/api/v1/orders", Some(&token), None)
            .await;
        if orders["items"][0]["status"] == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let items = orders["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "one order: {orders}");
    assert_eq!(items[0]["status"], want, "after {step}: {orders}");

    let (on_hand, balance) = match want {
        "confirmed" => (8, funds - total),
        _ => (10, funds),
    };
    for sku in skus {
        let (_, stock) = shop
            .call(Method::GET, &format!("/api/v1/inventory/{sku}"), None, None)
            .await;
        assert_eq!(
            (stock["on_hand"].as_i64(), stock["reserved"].as_i64()),
            (Some(on_hand), Some(0)),
            "stock of {sku} after {step}"
        );
    }
    let (_, wallet) = shop
        .call(Method::GET, "/api/v1/wallet", Some(&token), None)
        .await;
    assert_eq!(
        wallet["balance"]["amount_minor"].as_i64(),
        Some(balance),
        "wallet after {step}"
    );
    // The announcement of the outcome is delivered once, across the restart.
    let kind = match want {
        "confirmed" => Some("order_confirmed"),
        "cancelled" => Some("order_cancelled"),
        _ => None,
    };
    if let Some(kind) = kind {
        let mut count = 0;
        for _ in 0..100 {
            let (_, page) = shop
                .call(Method::GET, "/api/v1/notifications", Some(&token), None)
                .await;
            count = page["items"].as_array().map_or(0, |items| {
                items.iter().filter(|n| n["kind"] == kind).count()
            });
            if count > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, page) = shop
            .call(Method::GET, "/api/v1/notifications", Some(&token), None)
            .await;
        let again = page["items"].as_array().map_or(0, |items| {
            items.iter().filter(|n| n["kind"] == kind).count()
        });
        assert_eq!((count, again), (1, 1), "one {kind} message");
    }
    drop(shop);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn killed_after_the_reservation_the_order_is_confirmed_after_restart() {
    killed_after("reserve", "confirmed").await;
}

/// `a-1` sorts before `B-1` by bytes and after it in most collations (en-US, ICU): the retried reserve
/// must still find the stored one equal, on whatever collation the database has.
#[tokio::test]
async fn killed_after_reserving_skus_that_collations_sort_apart_the_order_is_confirmed_after_restart()
 {
    killed_after_ordering("reserve", "confirmed", &["a-1", "B-1"]).await;
}

#[tokio::test]
async fn killed_after_the_charge_the_order_is_confirmed_after_restart() {
    killed_after("charge", "confirmed").await;
}

#[tokio::test]
async fn killed_after_the_commit_the_order_is_confirmed_after_restart() {
    killed_after("commit", "confirmed").await;
}

#[tokio::test]
async fn killed_during_a_compensation_the_order_fails_after_restart_holding_nothing() {
    killed_after("compensate", "failed").await;
}

#[tokio::test]
async fn killed_during_a_cancellation_the_order_is_cancelled_after_restart() {
    killed_after("cancel", "cancelled").await;
}
