//! Black-box tests of the inventory API.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn stock_exists_once_an_admin_sets_it() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    app.get("/api/v1/inventory/MUG-1", None)
        .await
        .assert_problem(404, "not_found");
    let r = app.set_stock(&admin, "MUG-1", 10).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({ "sku": "MUG-1", "on_hand": 10, "reserved": 0, "available": 10 })
    );
    assert_eq!(app.get("/api/v1/inventory/MUG-1", None).await.body, r.body);
    let r = app.set_stock(&admin, "MUG-1", 3).await;
    assert_eq!(r.body["on_hand"], 3);
}

#[tokio::test]
async fn only_admins_change_stock() {
    let app = spawn_scenario(&[]).await;
    let (_, customer) = app.customer("c@example.com").await;
    app.put("/api/v1/inventory/A", None, json!({ "on_hand": 1 }))
        .await
        .assert_problem(401, "unauthenticated");
    app.set_stock(&customer, "A", 1)
        .await
        .assert_problem(403, "forbidden");
    app.adjust(&customer, "A", 1, "x", None)
        .await
        .assert_problem(403, "forbidden");
    app.post(
        "/api/v1/inventory/A/adjustments",
        None,
        json!({ "delta": 1, "reason": "x" }),
    )
    .await
    .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn stock_input_is_validated() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let r = app
        .put(
            "/api/v1/inventory/MUG-1",
            Some(&admin),
            json!({ "on_hand": -1 }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["on_hand"]);
    let r = app
        .put(
            "/api/v1/inventory/bad%20sku",
            Some(&admin),
            json!({ "on_hand": 1 }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["sku"]);
    app.put(
        "/api/v1/inventory/MUG-1",
        Some(&admin),
        json!({ "on_hand": "ten" }),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.set_stock(&admin, "MUG-1", 1).await;
    let r = app.adjust(&admin, "MUG-1", 0, "", None).await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["delta", "reason"]);
}

#[tokio::test]
async fn adjustments_move_stock_but_never_below_zero() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    app.set_stock(&admin, "MUG-1", 5).await;
    let r = app.adjust(&admin, "MUG-1", 3, "delivery", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["on_hand"], 8);
    let r = app.adjust(&admin, "MUG-1", -9, "damage", None).await;
    r.assert_problem(409, "insufficient_stock");
    assert_eq!(r.body["sku"], "MUG-1");
    assert_eq!(
        app.get("/api/v1/inventory/MUG-1", None).await.body["on_hand"],
        8,
        "nothing half-written"
    );
    app.adjust(&admin, "NOPE", 1, "x", None)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_outcome() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    app.set_stock(&admin, "MUG-1", 5).await;
    let adjust =
        |delta: i64, key: &'static str| app.adjust(&admin, "MUG-1", delta, "recount", Some(key));
    let first = adjust(-2, "key-1").await;
    assert_eq!(first.body["on_hand"], 3);
    let again = adjust(-2, "key-1").await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(
        app.get("/api/v1/inventory/MUG-1", None).await.body["on_hand"],
        3,
        "applied once"
    );
    adjust(-1, "key-1")
        .await
        .assert_problem(422, "idempotency_key_reused");
    // Business errors are replayed too, even after stock would allow the request.
    adjust(-10, "key-2")
        .await
        .assert_problem(409, "insufficient_stock");
    app.set_stock(&admin, "MUG-1", 50).await;
    adjust(-10, "key-2")
        .await
        .assert_problem(409, "insufficient_stock");
    let long = "k".repeat(256);
    app.adjust(&admin, "MUG-1", 1, "x", Some(&long))
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn on_hand_cannot_drop_below_what_is_reserved() -> TestResult {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    app.set_stock(&admin, "MUG-1", 5).await;
    let inventory = app
        .running_modules
        .get::<dyn shop_inventory::InventoryApi>()
        .ok_or("no inventory")?;
    let lines = vec![shop_inventory::ReservationLine {
        sku: "MUG-1".into(),
        quantity: 4,
    }];
    inventory
        .reserve(&ordering(), uuid::Uuid::now_v7(), lines)
        .await?;
    let levels = app.get("/api/v1/inventory/MUG-1", None).await;
    assert_eq!(
        levels.body,
        json!({ "sku": "MUG-1", "on_hand": 5, "reserved": 4, "available": 1 })
    );
    let r = app.set_stock(&admin, "MUG-1", 3).await;
    r.assert_problem(409, "below_reserved");
    app.adjust(&admin, "MUG-1", -2, "x", None)
        .await
        .assert_problem(409, "insufficient_stock");
    Ok(())
}

// Not a public scenario: it asks the process that runs inventory for its /internal routes.
#[tokio::test]
async fn internal_routes_need_the_service_credential() {
    let app = spawn_app().await;
    let r = app
        .post("/internal/inventory/get_stock", None, json!({ "sku": "A" }))
        .await;
    r.assert_problem(401, "service_unauthenticated");
    let r = app
        .request_with(
            Method::POST,
            "/internal/inventory/get_stock",
            None,
            Some(json!({ "sku": "A" })),
            &[("x-shop-service-token", "wrong")],
        )
        .await;
    r.assert_problem(401, "service_unauthenticated");
    let r = app
        .request_with(
            Method::POST,
            "/internal/inventory/no_such_op",
            None,
            Some(json!({})),
            &[("x-shop-service-token", SERVICE_TOKEN)],
        )
        .await;
    r.assert_problem(404, "unknown_operation");
    // A known internal path asked with another method is 405, like any other.
    let r = app
        .request_with(
            Method::DELETE,
            "/internal/inventory",
            None,
            None,
            &[("x-shop-service-token", SERVICE_TOKEN)],
        )
        .await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(
        r.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    let r = app
        .request_with(
            Method::POST,
            "/internal/inventory/get_stock",
            None,
            Some(json!({ "sku": 5 })),
            &[("x-shop-service-token", SERVICE_TOKEN)],
        )
        .await;
    r.assert_problem(400, "bad_call");
}

#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_integers_and_fractions_are_refused() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let r = app
        .put(
            "/api/v1/inventory/MUG-1",
            Some(&admin),
            json!({ "on_hand": 7.0 }),
        )
        .await;
    assert_eq!(r.body["on_hand"], 7, "{}", r.body);
    app.put(
        "/api/v1/inventory/MUG-1",
        Some(&admin),
        json!({ "on_hand": 7.5 }),
    )
    .await
    .assert_problem(422, "validation_failed");
    let r = app
        .post(
            "/api/v1/inventory/MUG-1/adjustments",
            Some(&admin),
            json!({ "delta": -2.0, "reason": "recount" }),
        )
        .await;
    assert_eq!(r.body["on_hand"], 5, "{}", r.body);
}
