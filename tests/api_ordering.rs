//! Black-box tests of the orders API: placement through the saga (prices from the catalog, stock held and
//! committed, wallet charged), refusals that hold and charge nothing, idempotency, cancellation, BOLA, and
//! 200 buyers racing for 10 units.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Places an order, with an `Idempotency-Key` when given.
async fn place(app: &TestApp, token: &str, body: Value, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    app.request_with(
        Method::POST,
        "/api/v1/orders",
        Some(token),
        Some(body),
        &headers,
    )
    .await
}

async fn balance(app: &TestApp, token: &str) -> i64 {
    let r = app.get("/api/v1/wallet", Some(token)).await;
    r.body["balance"]["amount_minor"].as_i64().unwrap_or(-1)
}

async fn stock(app: &TestApp, sku: &str) -> (i64, i64) {
    let r = app.get(&format!("/api/v1/inventory/{sku}"), None).await;
    (
        r.body["on_hand"].as_i64().unwrap_or(-1),
        r.body["reserved"].as_i64().unwrap_or(-1),
    )
}

/// A product with stock: returns its id.
async fn stocked(app: &TestApp, admin: &str, sku: &str, price: i64, on_hand: i64) -> String {
    let product = app
        .product(admin, sku, &format!("Product {sku}"), price)
        .await;
    let r = app.set_stock(admin, sku, on_hand).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    product["id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_order_is_priced_by_the_catalog_paid_and_its_stock_taken_then_cancelled() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let mug = stocked(&app, &admin, "MUG-1", 1250, 10).await;
    let tea = stocked(&app, &admin, "TEA-1", 400, 5).await;
    let (ada, ada_token) = app.customer("ada@example.com").await;
    app.fund(&admin, &ada, 10_000).await;

    // A client price is ignored: the catalog's counts.
    let body = json!({ "lines": [
        { "product_id": mug, "quantity": 2, "unit_price": { "amount_minor": 1, "currency": "EUR" } },
        { "product_id": tea, "quantity": 3 },
    ]});
    let r = place(&app, &ada_token, body, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let order = r.body.clone();
    let id = order["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/orders/{id}").as_str())
    );
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["user_id"], ada.as_str());
    assert_eq!(order["failure"], Value::Null);
    assert_eq!(
        order["total"],
        json!({ "amount_minor": 3700, "currency": "EUR" })
    );
    assert_eq!(
        order["lines"][0],
        json!({
            "product_id": mug, "sku": "MUG-1", "name": "Product MUG-1",
            "unit_price": { "amount_minor": 1250, "currency": "EUR" }, "quantity": 2,
            "line_total": { "amount_minor": 2500, "currency": "EUR" },
        })
    );
    assert_eq!(balance(&app, &ada_token).await, 10_000 - 3700);
    assert_eq!(
        stock(&app, "MUG-1").await,
        (8, 0),
        "sold units left on hand"
    );
    assert_eq!(stock(&app, "TEA-1").await, (2, 0));

    let got = app
        .get(&format!("/api/v1/orders/{id}"), Some(&ada_token))
        .await;
    assert_eq!((got.status, &got.body), (StatusCode::OK, &order));
    let list = app.get("/api/v1/orders", Some(&ada_token)).await;
    assert_eq!(list.body["items"], json!([order]));
    assert_eq!(list.body["next_cursor"], Value::Null);

    // Another customer sees nothing of it; an admin does.
    let (_, bob_token) = app.customer("bob@example.com").await;
    app.get(&format!("/api/v1/orders/{id}"), Some(&bob_token))
        .await
        .assert_problem(404, "not_found");
    app.post(
        &format!("/api/v1/orders/{id}/cancel"),
        Some(&bob_token),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    let bobs = app.get("/api/v1/orders", Some(&bob_token)).await;
    assert_eq!(bobs.body["items"], json!([]));
    let as_admin = app.get(&format!("/api/v1/orders/{id}"), Some(&admin)).await;
    assert_eq!(as_admin.status, StatusCode::OK);
    app.get(&format!("/api/v1/orders/{id}"), None)
        .await
        .assert_problem(401, "unauthenticated");

    // Cancellation refunds and returns the stock, once, however often it is asked.
    let cancelled = app
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&ada_token),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = app
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&ada_token),
            json!({}),
        )
        .await;
    assert_eq!(
        (again.status, &again.body),
        (StatusCode::OK, &cancelled.body)
    );
    assert_eq!(balance(&app, &ada_token).await, 10_000);
    assert_eq!(stock(&app, "MUG-1").await, (10, 0));
    assert_eq!(stock(&app, "TEA-1").await, (5, 0));
    let unknown = uuid::Uuid::now_v7();
    app.post(
        &format!("/api/v1/orders/{unknown}/cancel"),
        Some(&ada_token),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_free_product_is_ordered_without_a_charge_and_cancelled() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let gift = stocked(&app, &admin, "GIFT-1", 0, 2).await;
    let (_, token) = app.customer("ada@example.com").await;
    let r = place(
        &app,
        &token,
        json!({ "lines": [{ "product_id": gift, "quantity": 1 }] }),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["total"]["amount_minor"], 0);
    assert_eq!(stock(&app, "GIFT-1").await, (1, 0));
    let id = r.body["id"].as_str().unwrap_or_default();
    let cancelled = app
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    assert_eq!(stock(&app, "GIFT-1").await, (2, 0));
    assert_eq!(balance(&app, &token).await, 0);
}

#[tokio::test]
async fn refused_orders_hold_nothing_and_charge_nothing() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let mug = stocked(&app, &admin, "MUG-2", 1000, 3).await;
    let tea = stocked(&app, &admin, "TEA-2", 100, 100).await;
    let (ada, ada_token) = app.customer("ada@example.com").await;
    app.fund(&admin, &ada, 2500).await;

    // Not enough units: 409 naming the SKU; nothing taken from either product or the wallet.
    let r = place(
        &app,
        &ada_token,
        json!({ "lines": [{ "product_id": tea, "quantity": 1 }, { "product_id": mug, "quantity": 4 }] }),
        None,
    )
    .await;
    r.assert_problem(409, "insufficient_stock");
    assert_eq!(r.body["sku"], "MUG-2");
    assert_eq!(stock(&app, "TEA-2").await, (100, 0));
    assert_eq!(balance(&app, &ada_token).await, 2500);

    // Not enough money: 402; the units held for it are given back.
    let r = place(
        &app,
        &ada_token,
        json!({ "lines": [{ "product_id": mug, "quantity": 3 }] }),
        None,
    )
    .await;
    r.assert_problem(402, "insufficient_funds");
    assert_eq!(r.body["balance"], 2500);
    assert_eq!(stock(&app, "MUG-2").await, (3, 0), "released");
    assert_eq!(balance(&app, &ada_token).await, 2500);

    // The failed attempts are recorded, as failed, with their reason; they cannot be cancelled.
    let list = app.get("/api/v1/orders", Some(&ada_token)).await;
    let failures: Vec<(&str, &str)> = list.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| {
                    (
                        o["status"].as_str().unwrap_or_default(),
                        o["failure"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        failures,
        vec![
            ("failed", "insufficient_funds"),
            ("failed", "insufficient_stock")
        ]
    );
    let failed_id = list.body["items"][0]["id"].as_str().unwrap_or_default();
    let r = app
        .post(
            &format!("/api/v1/orders/{failed_id}/cancel"),
            Some(&ada_token),
            json!({}),
        )
        .await;
    r.assert_problem(409, "not_cancellable");
    assert_eq!(r.body["order_status"], "failed");
}

#[tokio::test]
async fn malformed_orders_are_422_naming_the_line() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let mug = stocked(&app, &admin, "MUG-3", 1000, 3).await;
    let hidden = stocked(&app, &admin, "OLD-3", 1000, 3).await;
    let r = app
        .patch(
            &format!("/api/v1/products/{hidden}"),
            Some(&admin),
            json!({ "active": false }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (_, token) = app.customer("ada@example.com").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let line = |id: &str, q: i64| json!({ "product_id": id, "quantity": q });
    let many: Vec<Value> = (0..51).map(|_| line(&mug, 1)).collect();
    let cases = [
        (json!({ "lines": [] }), "lines"),
        (json!({ "lines": many }), "lines"),
        (json!({ "lines": [line(&mug, 0)] }), "lines[0].quantity"),
        (json!({ "lines": [line(&mug, 101)] }), "lines[0].quantity"),
        (
            json!({ "lines": [line(&mug, 1), line(&mug, 2)] }),
            "lines[1].product_id",
        ),
        (
            json!({ "lines": [line(&unknown, 1)] }),
            "lines[0].product_id",
        ),
        (
            json!({ "lines": [line(&mug, 1), line(&hidden, 1)] }),
            "lines[1].product_id",
        ),
    ];
    for (body, field) in cases {
        let r = place(&app, &token, body.clone(), None).await;
        r.assert_problem(422, "validation_failed");
        assert!(
            r.fields().contains(&field.to_string()),
            "{body}: {}",
            r.body
        );
    }
    place(&app, &token, json!({ "lines": "x" }), None)
        .await
        .assert_problem(422, "validation_failed");
    let malformed = app
        .http
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"lines\": [")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_default();
    assert_eq!(malformed, 400);
    place(&app, &token, json!({ "lines": [line(&mug, 1)] }), Some(""))
        .await
        .assert_problem(422, "validation_failed");
    let anonymous = app
        .post("/api/v1/orders", None, json!({ "lines": [line(&mug, 1)] }))
        .await;
    anonymous.assert_problem(401, "unauthenticated");
    assert_eq!(stock(&app, "MUG-3").await, (3, 0));
    app.get("/api/v1/orders?limit=0", Some(&token))
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/orders?cursor=zz", Some(&token))
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn an_idempotency_key_answers_the_same_order_and_charges_once() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let mug = stocked(&app, &admin, "MUG-4", 100, 1000).await;
    let (ada, token) = app.customer("ada@example.com").await;
    app.fund(&admin, &ada, 100_000).await;
    let body = json!({ "lines": [{ "product_id": mug, "quantity": 2 }] });

    let first = place(&app, &token, body.clone(), Some("order-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = place(&app, &token, body.clone(), Some("order-1")).await;
    assert_eq!(
        (again.status, &again.body),
        (StatusCode::CREATED, &first.body)
    );
    place(
        &app,
        &token,
        json!({ "lines": [{ "product_id": mug, "quantity": 3 }] }),
        Some("order-1"),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    assert_eq!(balance(&app, &token).await, 100_000 - 200, "charged once");

    // Another user's key is theirs alone.
    let (bob, bob_token) = app.customer("bob@example.com").await;
    app.fund(&admin, &bob, 1000).await;
    let bobs = place(&app, &bob_token, body.clone(), Some("order-1")).await;
    assert_eq!(bobs.status, StatusCode::CREATED);
    assert_ne!(bobs.body["id"], first.body["id"]);

    // Concurrent duplicates: one order; the others replay it or are told it is still running (faults.rs
    // holds the first one up to see the 409 every time).
    let replies = futures_util::future::join_all(
        (0..12).map(|_| place(&app, &token, body.clone(), Some("order-2"))),
    )
    .await;
    let mut ids = std::collections::BTreeSet::new();
    let mut in_use = 0;
    for r in &replies {
        match r.status {
            StatusCode::CREATED => {
                ids.insert(r.body["id"].as_str().unwrap_or_default().to_string());
            }
            _ => {
                r.assert_problem(409, "idempotency_key_in_use");
                in_use += 1;
            }
        }
    }
    assert_eq!(
        ids.len(),
        1,
        "one order for one key ({in_use} told to wait): {ids:?}"
    );
    let settled = place(&app, &token, body, Some("order-2")).await;
    assert_eq!(settled.status, StatusCode::CREATED);
    assert_eq!(
        balance(&app, &token).await,
        100_000 - 400,
        "two orders paid"
    );
    assert_eq!(stock(&app, "MUG-4").await, (1000 - 6, 0));
}

#[tokio::test]
async fn two_hundred_buyers_for_ten_units_make_ten_orders_and_nothing_else() {
    // The burst queues behind the databases' write locks: wait for answers rather than time out.
    let app = spawn_scenario(&[("SHOP_REMOTE_TIMEOUT_MS", "60000")]).await;
    let admin = app.admin_token().await;
    let mug = stocked(&app, &admin, "RARE-1", 700, 10).await;
    let mut buyers = Vec::new();
    for i in 0..200 {
        let (id, token) = app.customer(&format!("buyer{i}@example.com")).await;
        app.fund(&admin, &id, 1000).await;
        buyers.push(token);
    }
    let body = json!({ "lines": [{ "product_id": mug, "quantity": 1 }] });
    let replies =
        futures_util::future::join_all(buyers.iter().map(|t| place(&app, t, body.clone(), None)))
            .await;
    let confirmed = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED && r.body["status"] == "confirmed")
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.body["code"] == "insufficient_stock")
        .count();
    let other: Vec<String> = replies
        .iter()
        .filter(|r| r.status != StatusCode::CREATED && r.body["code"] != "insufficient_stock")
        .map(|r| format!("{} {}", r.status, r.body))
        .take(3)
        .collect();
    assert_eq!((confirmed, refused), (10, 190), "other answers: {other:?}");
    assert_eq!(stock(&app, "RARE-1").await, (0, 0));
    let mut total = 0;
    for token in &buyers {
        total += balance(&app, token).await;
    }
    assert_eq!(total, 200 * 1000 - 10 * 700, "exactly ten charges");
}

/// A refund is money the wallet already held, and the room for it is kept: a credit may not take the balance
/// and the charges not yet refunded together past the bound (10^15 minor units), so a cancellation always
/// refunds and never leaves an order stuck mid-compensation.
#[tokio::test]
async fn a_credit_keeps_room_below_the_balance_bound_for_refunds_so_a_cancellation_always_refunds()
{
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let mug = stocked(&app, &admin, "MUG-1", 1250, 10).await;
    let (ada, ada_token) = app.customer("ada@example.com").await;
    const BOUND: i64 = 1_000_000_000_000_000;
    app.fund(&admin, &ada, BOUND).await;
    let body = json!({ "lines": [{ "product_id": mug, "quantity": 1 }] });
    let r = place(&app, &ada_token, body, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(balance(&app, &ada_token).await, BOUND - 1250);

    let topped = app
        .post(
            &format!("/api/v1/wallets/{ada}/credits"),
            Some(&admin),
            json!({ "amount_minor": 1, "reason": "top up" }),
        )
        .await;
    topped.assert_problem(422, "validation_failed");
    assert!(
        topped.body.to_string().contains("refunds"),
        "{}",
        topped.body
    );

    let cancelled = app
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&ada_token),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(balance(&app, &ada_token).await, BOUND);
    assert_eq!(stock(&app, "MUG-1").await, (10, 0));
    // The refund gave the room back to credits only as far as the bound.
    let topped = app
        .post(
            &format!("/api/v1/wallets/{ada}/credits"),
            Some(&admin),
            json!({ "amount_minor": 1, "reason": "top up" }),
        )
        .await;
    topped.assert_problem(422, "validation_failed");
}
