//! Checkout under faults: a module that does not answer, a module that is down and comes back (or does not
//! in time), and the real binary killed right after each saga step, then restarted. Every order ends
//! confirmed, cancelled or failed exactly once: never charged without stock, never holding stock forever.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
    let pending = place(g, &token, &product, Some("down-2")).await;
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
    // The placement's repeat answers the failure, never 201 (a failed order is not a placed one).
    let repeat = place(g, &token, &product, Some("down-2")).await;
    repeat.assert_problem(409, "order_failed");
    assert_eq!(
        (
            repeat.body["order_id"].as_str(),
            repeat.body["failure"].as_str()
        ),
        (Some(id.as_str()), Some("unavailable"))
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

/// Fails the first call of each operation named in it, once, as a module with a fault on its side would
/// (a 500 from a remote, a deadlock that was not retried): before the call reaches the module, or after it
/// was applied and the answer was lost.
struct FailOnce {
    before: &'static [&'static str],
    after: &'static [&'static str],
    failed: std::sync::Mutex<Vec<String>>,
}

impl FailOnce {
    fn new(before: &'static [&'static str], after: &'static [&'static str]) -> Self {
        FailOnce {
            before,
            after,
            failed: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Whether this call of `operation` fails (`applied`: the module has already done it).
    fn fails(&self, operation: &'static str, applied: bool) -> bool {
        let (listed, fault) = if applied {
            (self.after, format!("{operation} after"))
        } else {
            (self.before, format!("{operation} before"))
        };
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if listed.contains(&operation) && !failed.contains(&fault) {
            failed.push(fault);
            return true;
        }
        false
    }

    fn failed(&self) -> Vec<String> {
        let mut failed = self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        failed.sort_unstable();
        failed
    }
}

struct FlakyInventory(std::sync::Arc<dyn shop_inventory::InventoryApi>, FailOnce);

#[async_trait::async_trait]
impl shop_inventory::InventoryApi for FlakyInventory {
    async fn get_stock(
        &self,
        ctx: &shop_kernel::RequestContext,
        sku: String,
    ) -> Result<shop_inventory::StockLevels, shop_inventory::InventoryError> {
        self.0.get_stock(ctx, sku).await
    }

    async fn set_stock(
        &self,
        ctx: &shop_kernel::RequestContext,
        sku: String,
        stock: shop_inventory::SetStock,
    ) -> Result<shop_inventory::StockLevels, shop_inventory::InventoryError> {
        self.0.set_stock(ctx, sku, stock).await
    }

    async fn adjust_stock(
        &self,
        ctx: &shop_kernel::RequestContext,
        sku: String,
        adjustment: shop_inventory::Adjustment,
        idempotency_key: Option<String>,
    ) -> Result<shop_inventory::StockLevels, shop_inventory::InventoryError> {
        self.0
            .adjust_stock(ctx, sku, adjustment, idempotency_key)
            .await
    }

    async fn reserve(
        &self,
        ctx: &shop_kernel::RequestContext,
        order_id: uuid::Uuid,
        lines: Vec<shop_inventory::ReservationLine>,
    ) -> Result<shop_inventory::Reservation, shop_inventory::InventoryError> {
        use shop_inventory::InventoryError::Internal;
        if self.1.fails("reserve", false) {
            return Err(Internal("deadlock detected".into()));
        }
        let done = self.0.reserve(ctx, order_id, lines).await;
        if self.1.fails("reserve", true) {
            return Err(Internal("connection reset".into()));
        }
        done
    }

    async fn commit_reservation(
        &self,
        ctx: &shop_kernel::RequestContext,
        order_id: uuid::Uuid,
    ) -> Result<shop_inventory::Reservation, shop_inventory::InventoryError> {
        use shop_inventory::InventoryError::Internal;
        if self.1.fails("commit", false) {
            return Err(Internal("deadlock detected".into()));
        }
        let done = self.0.commit_reservation(ctx, order_id).await;
        if self.1.fails("commit", true) {
            return Err(Internal("connection reset".into()));
        }
        done
    }

    async fn release_reservation(
        &self,
        ctx: &shop_kernel::RequestContext,
        order_id: uuid::Uuid,
    ) -> Result<shop_inventory::Reservation, shop_inventory::InventoryError> {
        self.0.release_reservation(ctx, order_id).await
    }

    async fn get_reservation(
        &self,
        ctx: &shop_kernel::RequestContext,
        order_id: uuid::Uuid,
    ) -> Result<shop_inventory::Reservation, shop_inventory::InventoryError> {
        self.0.get_reservation(ctx, order_id).await
    }
}

struct FlakyPayments(std::sync::Arc<dyn shop_payments::PaymentsApi>, FailOnce);

#[async_trait::async_trait]
impl shop_payments::PaymentsApi for FlakyPayments {
    async fn wallet(
        &self,
        ctx: &shop_kernel::RequestContext,
    ) -> Result<shop_payments::Wallet, shop_payments::PaymentsError> {
        self.0.wallet(ctx).await
    }

    async fn transactions(
        &self,
        ctx: &shop_kernel::RequestContext,
        query: shop_payments::TransactionQuery,
    ) -> Result<shop_kernel::Page<shop_payments::Transaction>, shop_payments::PaymentsError> {
        self.0.transactions(ctx, query).await
    }

    async fn credit(
        &self,
        ctx: &shop_kernel::RequestContext,
        user_id: uuid::Uuid,
        credit: shop_payments::NewCredit,
        idempotency_key: Option<String>,
    ) -> Result<shop_payments::Transaction, shop_payments::PaymentsError> {
        self.0.credit(ctx, user_id, credit, idempotency_key).await
    }

    async fn charge(
        &self,
        ctx: &shop_kernel::RequestContext,
        order_id: uuid::Uuid,
        user_id: uuid::Uuid,
        amount: shop_kernel::Money,
    ) -> Result<shop_payments::Payment, shop_payments::PaymentsError> {
        use shop_payments::PaymentsError::Internal;
        if self.1.fails("charge", false) {
            return Err(Internal("could not serialize access".into()));
        }
        let done = self.0.charge(ctx, order_id, user_id, amount).await;
        if self.1.fails("charge", true) {
            return Err(Internal("connection reset".into()));
        }
        done
    }

    async fn refund(
        &self,
        ctx: &shop_kernel::RequestContext,
        order_id: uuid::Uuid,
    ) -> Result<shop_payments::Payment, shop_payments::PaymentsError> {
        self.0.refund(ctx, order_id).await
    }
}

/// Runs one order through an ordering whose inventory and payments fail once before and once after each
/// step's call; the recovery task is run by hand until the order settles.
async fn place_through_faults(
    inventory_faults: FailOnce,
    payments_faults: FailOnce,
) -> (TestApp, Value, String, Vec<String>) {
    use shop_ordering::OrderingApi;
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let product = app.product(&admin, "FLAKY-1", "Flaky", 300).await;
    app.set_stock(&admin, "FLAKY-1", 10).await;
    let (user, token) = app.customer("ada@example.com").await;
    app.fund(&admin, &user, 1000).await;

    let modules = &app.running_modules;
    let catalog = modules
        .get::<dyn shop_catalog::CatalogApi>()
        .unwrap_or_else(|| panic!("catalog runs here"));
    let inventory = std::sync::Arc::new(FlakyInventory(
        modules
            .get::<dyn shop_inventory::InventoryApi>()
            .unwrap_or_else(|| panic!("inventory runs here")),
        inventory_faults,
    ));
    let payments = std::sync::Arc::new(FlakyPayments(
        modules
            .get::<dyn shop_payments::PaymentsApi>()
            .unwrap_or_else(|| panic!("payments runs here")),
        payments_faults,
    ));
    let orders_db = TestDb::new();
    let db =
        shop_kernel::db::Database::connect(&orders_db.url, 2).unwrap_or_else(|e| panic!("{e}"));
    let module = shop::config::Module::parse("ordering").unwrap_or_else(|| panic!("ordering"));
    shop::migrate::run(&db, module).unwrap_or_else(|e| panic!("{e}"));
    let config = shop_ordering::OrderingConfig {
        retry_base: Duration::ZERO,
        ..shop_ordering::OrderingConfig::new("EUR")
    };
    let ordering = shop_ordering::OrderingService::new(
        db,
        config,
        catalog,
        inventory.clone(),
        payments.clone(),
    );
    let ctx = app.ctx_for("ada@example.com", "customer-password-1").await;
    let product_id = product["id"]
        .as_str()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("{product}"));
    let order = shop_ordering::NewOrder {
        lines: vec![shop_ordering::NewOrderLine {
            product_id,
            quantity: 2,
        }],
    };
    let placed = ordering
        .place_order(&ctx, order, None)
        .await
        .unwrap_or_else(|e| panic!("a fault is not a refusal: {e}"));
    let mut now = placed.clone();
    for _ in 0..20 {
        if now.status != shop_ordering::OrderStatus::Pending {
            break;
        }
        ordering.recover().await.unwrap_or_else(|e| panic!("{e}"));
        now = ordering
            .get_order(&ctx, placed.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let order = serde_json::to_value(&now).unwrap_or_default();
    let failed = [inventory.1.failed(), payments.1.failed()].concat();
    drop(orders_db);
    (app, order, token, failed)
}

#[tokio::test]
async fn a_fault_at_each_checkout_step_is_retried_and_nothing_is_undone() {
    let (app, order, token, failed) = place_through_faults(
        FailOnce::new(&["reserve", "commit"], &["reserve", "commit"]),
        FailOnce::new(&["charge"], &["charge"]),
    )
    .await;
    assert_eq!(
        failed,
        [
            "commit after",
            "commit before",
            "reserve after",
            "reserve before",
            "charge after",
            "charge before"
        ],
        "every fault fired"
    );
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["failure"], Value::Null, "{order}");
    assert_eq!(stock(&app, "FLAKY-1").await, (8, 0));
    let wallet = app.get("/api/v1/wallet", Some(&token)).await;
    assert_eq!(
        wallet.body["balance"]["amount_minor"], 400,
        "charged once, never refunded"
    );
}

/// A real deadlock on PostgreSQL: the placement's reserve holds `DL-A` and waits for `DL-B`, which a
/// transaction of this test holds while it then waits for `DL-A`. PostgreSQL breaks the cycle by rolling
/// the reserve back (this test's session waits longer before it checks for deadlocks); inventory runs the
/// reserve again, and the order is confirmed: a deadlock is not a refusal.
#[tokio::test]
async fn a_deadlock_on_postgresql_is_retried_and_the_order_is_confirmed() {
    let app = spawn_app().await;
    let Some(url) = app
        .db
        .as_ref()
        .filter(|db| db.is_postgres())
        .map(|db| db.url.clone())
    else {
        eprintln!("skipped: a deadlock needs PostgreSQL (SHOP_TEST_POSTGRES_URL)");
        return;
    };
    let admin = app.admin_token().await;
    let a = app.product(&admin, "DL-A", "A", 100).await;
    let b = app.product(&admin, "DL-B", "B", 100).await;
    app.set_stock(&admin, "DL-A", 10).await;
    app.set_stock(&admin, "DL-B", 10).await;
    let (user, token) = app.customer("ada@example.com").await;
    app.fund(&admin, &user, 1000).await;
    let deadlocks_before = count(
        &url,
        "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()",
    );

    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let blocker = tokio::task::spawn_blocking(move || {
        use diesel::{Connection, RunQueryDsl, connection::SimpleConnection};
        let mut conn = diesel::PgConnection::establish(&url).unwrap_or_else(|e| panic!("{e}"));
        let mut watch = diesel::PgConnection::establish(&url).unwrap_or_else(|e| panic!("{e}"));
        conn.batch_execute(
            "SET deadlock_timeout = '20s'; BEGIN; \
             UPDATE inventory_stock SET updated_at = updated_at WHERE sku = 'DL-B'",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = locked_tx.send(());
        // Until the reserve waits for DL-B (it holds DL-A by then: lines are reserved in SKU order).
        #[derive(diesel::QueryableByName)]
        struct Waiting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let waiting = |c: &mut diesel::PgConnection| {
            diesel::sql_query(
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE '%inventory_stock%'",
            )
            .get_result::<Waiting>(c)
            .map(|w| w.n)
            .unwrap_or(0)
        };
        let started = std::time::Instant::now();
        while waiting(&mut watch) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the reserve never waited for DL-B"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Closes the cycle; PostgreSQL rolls the reserve back after its 1 s deadlock_timeout.
        conn.batch_execute(
            "UPDATE inventory_stock SET updated_at = updated_at WHERE sku = 'DL-A'; COMMIT",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    });
    let _ = locked_rx.await;
    let order = json!({ "lines": [
        { "product_id": a["id"], "quantity": 1 },
        { "product_id": b["id"], "quantity": 1 },
    ] });
    let placed = app.post("/api/v1/orders", Some(&token), order).await;
    blocker.await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(placed.body["status"], "confirmed");
    // Statistics reach pg_stat_database within a second or so of the transaction's end.
    let url = app.db.as_ref().map(|db| db.url.clone()).unwrap_or_default();
    let mut deadlocks = deadlocks_before;
    for _ in 0..50 {
        deadlocks = count(
            &url,
            "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()",
        );
        if deadlocks > deadlocks_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(deadlocks > deadlocks_before, "PostgreSQL saw a deadlock");
    assert_eq!(stock(&app, "DL-A").await, (9, 0));
    assert_eq!(stock(&app, "DL-B").await, (9, 0));
    let wallet = app.get("/api/v1/wallet", Some(&token)).await;
    assert_eq!(wallet.body["balance"]["amount_minor"], 800);
}

/// Checkout split with a payments that never answers: the gateway calls ordering with its remote timeout,
/// ordering spends what is left of that (less the answer's way back) waiting for payments, and answers 202
/// with the pending order before the gateway stops listening: the client never hears "nothing was placed"
/// about an order that exists.
#[tokio::test]
async fn an_order_placed_while_payments_hangs_is_answered_202_through_a_remote_ordering() {
    let ordering_port = free_port();
    let ordering_url = format!("http://127.0.0.1:{ordering_port}");
    let timeout = ("SHOP_REMOTE_TIMEOUT_MS", "1500");
    let gateway = spawn_with(&[
        (
            "SHOP_MODULES",
            "identity,catalog,inventory,payments,notifications",
        ),
        ("SHOP_ORDERING_URL", &ordering_url),
        timeout,
    ])
    .await;
    let payments = black_hole();
    let ordering_addr = format!("127.0.0.1:{ordering_port}");
    let ordering = spawn_with(&[
        ("SHOP_MODULES", "ordering"),
        ("SHOP_HTTP_ADDR", &ordering_addr),
        ("SHOP_PAYMENTS_URL", &payments),
        ("SHOP_IDENTITY_URL", &gateway.base),
        ("SHOP_CATALOG_URL", &gateway.base),
        ("SHOP_INVENTORY_URL", &gateway.base),
        ("SHOP_NOTIFICATIONS_URL", &gateway.base),
        timeout,
    ])
    .await;
    let admin = gateway.admin_token().await;
    let product = gateway.product(&admin, "SLOW-1", "Slow", 100).await;
    gateway.set_stock(&admin, "SLOW-1", 10).await;
    let (_, token) = gateway.customer("ada@example.com").await;

    let started = std::time::Instant::now();
    let placed = place(&gateway, &token, &product, None).await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{}", placed.body);
    assert_eq!(placed.body["status"], "pending");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered within the gateway's timeout: {:?}",
        started.elapsed()
    );
    let id = placed.body["id"].as_str().unwrap_or_default();
    assert_eq!(
        placed.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/orders/{id}").as_str())
    );
    let read = gateway
        .get(&format!("/api/v1/orders/{id}"), Some(&token))
        .await;
    assert_eq!(read.body["status"], "pending", "{}", read.body);
    assert_eq!(
        stock(&gateway, "SLOW-1").await,
        (10, 2),
        "held while it waits"
    );
    drop(ordering);
}

/// Holds the one pooled connection of `app`'s database until the returned sender is used or dropped.
async fn hold_the_connection(app: &TestApp) -> std::sync::mpsc::Sender<()> {
    let (_, db) = app
        .running_modules
        .databases
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no local database"));
    let (taken_tx, taken) = std::sync::mpsc::channel::<()>();
    let (release, held) = std::sync::mpsc::channel::<()>();
    tokio::spawn(async move {
        db.run(move |_| {
            let _ = taken_tx.send(());
            let _ = held.recv_timeout(Duration::from_secs(30));
            Ok::<_, shop_kernel::db::DbError>(())
        })
        .await
    });
    let taken =
        tokio::task::spawn_blocking(move || taken.recv_timeout(Duration::from_secs(10))).await;
    assert!(matches!(taken, Ok(Ok(()))), "the connection was not taken");
    release
}

async fn readiness_becomes(app: &TestApp, want: StatusCode, secs: u64) -> Reply {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let ready = app.get("/health/ready", None).await;
        if ready.status == want || std::time::Instant::now() > deadline {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_this_process_cannot_get_at_its_own_database() {
    let app = spawn_with(&[
        ("SHOP_DB_POOL_SIZE", "1"),
        ("SHOP_DB_ACQUIRE_TIMEOUT_MS", "200"),
    ])
    .await;
    assert_eq!(app.get("/health/ready", None).await.status, StatusCode::OK);
    let release = hold_the_connection(&app).await;
    let ready = readiness_becomes(&app, StatusCode::SERVICE_UNAVAILABLE, 10).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.body["status"], "not_ready", "{}", ready.body);
    assert!(
        ready.body["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["status"] == "down"),
        "{}",
        ready.body
    );
    let _ = release.send(());
    let ready = readiness_becomes(&app, StatusCode::OK, 10).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);

    // On PostgreSQL the database can really go away.
    if let Some(db) = app.db.as_ref().filter(|db| db.is_postgres()) {
        db.drop_now();
        let ready = readiness_becomes(&app, StatusCode::SERVICE_UNAVAILABLE, 10).await;
        assert_eq!(
            ready.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            ready.body
        );
        assert_eq!(ready.body["status"], "not_ready", "{}", ready.body);
    }
}
