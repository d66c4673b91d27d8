//! Black-box tests of the wallet API, and a wallet that never goes negative under concurrent charges.

mod common;

use std::sync::Arc;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop_kernel::Money;
use shop_payments::{PaymentsApi, PaymentsClient, PaymentsError};

async fn credit(
    app: &TestApp,
    token: &str,
    user: &str,
    body: serde_json::Value,
    key: Option<&str>,
) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    app.request_with(
        Method::POST,
        &format!("/api/v1/wallets/{user}/credits"),
        Some(token),
        Some(body),
        &headers,
    )
    .await
}

#[tokio::test]
async fn admins_credit_wallets_and_owners_see_balance_and_ledger() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let (ada, ada_token) = app.customer("ada@example.com").await;
    let empty = app.get("/api/v1/wallet", Some(&ada_token)).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(
        empty.body,
        json!({ "balance": { "amount_minor": 0, "currency": "EUR" }, "updated_at": null })
    );
    app.get("/api/v1/wallet", None)
        .await
        .assert_problem(401, "unauthenticated");

    let body = json!({ "amount_minor": 2500, "reason": "welcome" });
    let r = credit(&app, &admin, &ada, body.clone(), Some("c-1")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["kind"], "credit");
    assert_eq!(
        r.body["amount"],
        json!({ "amount_minor": 2500, "currency": "EUR" })
    );
    let replay = credit(&app, &admin, &ada, body, Some("c-1")).await;
    assert_eq!(
        (replay.status, &replay.body),
        (StatusCode::CREATED, &r.body)
    );
    credit(
        &app,
        &admin,
        &ada,
        json!({ "amount_minor": 1, "reason": "other" }),
        Some("c-1"),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    credit(
        &app,
        &ada_token,
        &ada,
        json!({ "amount_minor": 1, "reason": "me" }),
        None,
    )
    .await
    .assert_problem(403, "forbidden");
    let unknown = uuid::Uuid::now_v7().to_string();
    credit(
        &app,
        &admin,
        &unknown,
        json!({ "amount_minor": 1, "reason": "x" }),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    credit(
        &app,
        &admin,
        "not-a-uuid",
        json!({ "amount_minor": 1, "reason": "x" }),
        None,
    )
    .await
    .assert_problem(400, "bad_request");
    let r = credit(
        &app,
        &admin,
        &ada,
        json!({ "amount_minor": 0, "reason": "" }),
        None,
    )
    .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["amount_minor", "reason"]);
    // The balance has a bound: a credit past it is refused, never wrapped.
    credit(
        &app,
        &admin,
        &ada,
        json!({ "amount_minor": 1_000_000_000_000_000i64, "reason": "max" }),
        None,
    )
    .await
    .assert_problem(422, "validation_failed");

    let wallet = app.get("/api/v1/wallet", Some(&ada_token)).await;
    assert_eq!(wallet.body["balance"]["amount_minor"], 2500);
    assert!(wallet.body["updated_at"].is_string());
    let ledger = app
        .get("/api/v1/wallet/transactions", Some(&ada_token))
        .await;
    assert_eq!(ledger.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(ledger.body["next_cursor"], serde_json::Value::Null);
    app.get("/api/v1/wallet/transactions?cursor=zz", Some(&ada_token))
        .await
        .assert_problem(422, "validation_failed");
    // Another user's wallet is not theirs to see: they see their own, empty.
    let (_, bob) = app.customer("bob@example.com").await;
    assert_eq!(
        app.get("/api/v1/wallet/transactions", Some(&bob))
            .await
            .body["items"],
        json!([])
    );
}

async fn race_charges(payments: Arc<dyn PaymentsApi>, customer: uuid::Uuid) -> TestResult {
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let payments = payments.clone();
        tasks.push(tokio::spawn(async move {
            payments
                .charge(
                    &ordering(),
                    uuid::Uuid::now_v7(),
                    customer,
                    Money::new(100, "EUR"),
                )
                .await
        }));
    }
    let (mut paid, mut refused) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok(_) => paid += 1,
            Err(PaymentsError::InsufficientFunds { balance }) => {
                assert!((0..100).contains(&balance), "refused with {balance} left");
                refused += 1;
            }
            Err(other) => panic!("a charge failed for another reason: {other:?}"),
        }
    }
    assert_eq!((paid, refused), (10, 40));
    Ok(())
}

async fn funded_customer(app: &TestApp, email: &str) -> (uuid::Uuid, String) {
    let admin = app.admin_token().await;
    let (id, token) = app.customer(email).await;
    let r = credit(
        app,
        &admin,
        &id,
        json!({ "amount_minor": 1000, "reason": "race" }),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (uuid::Uuid::parse_str(&id).unwrap_or_default(), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_charges_against_ten_charges_of_credit_take_exactly_ten() -> TestResult {
    let app = spawn_app().await;
    let (customer, token) = funded_customer(&app, "race@example.com").await;
    let payments = app
        .running_modules
        .get::<dyn PaymentsApi>()
        .ok_or("no payments")?;
    race_charges(payments, customer).await?;
    let wallet = app.get("/api/v1/wallet", Some(&token)).await;
    assert_eq!(wallet.body["balance"]["amount_minor"], 0, "never negative");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_charges_over_http_take_exactly_ten() -> TestResult {
    let app = spawn_app().await;
    let (customer, token) = funded_customer(&app, "race-http@example.com").await;
    race_charges(Arc::new(PaymentsClient::new(app.rpc())), customer).await?;
    let wallet = app.get("/api/v1/wallet", Some(&token)).await;
    assert_eq!(wallet.body["balance"]["amount_minor"], 0);
    Ok(())
}
