//! Black-box tests of notifications: a message per event (registration, confirmed order, cancelled
//! order), delivered through the outbox and relay, visible to its owner only, and mailed once over real
//! SMTP, also when the mail server was down at first.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn kinds(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|n| n["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A customer who bought and then cancelled one order; returns (token, order id).
async fn buy_and_cancel(app: &TestApp, email: &str) -> (String, String) {
    let admin = app.admin_token().await;
    let product = app.product(&admin, "NOTE-1", "Notebook", 350).await;
    assert_eq!(
        app.set_stock(&admin, "NOTE-1", 5).await.status,
        StatusCode::OK
    );
    let (user, token) = app.customer(email).await;
    app.fund(&admin, &user, 1000).await;
    let order = app
        .post(
            "/api/v1/orders",
            Some(&token),
            json!({ "lines": [{ "product_id": product["id"], "quantity": 2 }] }),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let id = order.body["id"].as_str().unwrap_or_default().to_string();
    let cancelled = app
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    (token, id)
}

#[tokio::test]
async fn registration_confirmation_and_cancellation_each_leave_one_message() {
    let app = spawn_scenario(&[]).await;
    let (token, order) = buy_and_cancel(&app, "ada@example.com").await;
    let page = poll_until(&app, "/api/v1/notifications", &token, 15, |b| {
        kinds(b).len() >= 3
    })
    .await;
    // Events of different modules arrive in any order; messages are listed newest first as recorded.
    let mut all = kinds(&page);
    all.sort();
    assert_eq!(
        all,
        vec!["order_cancelled", "order_confirmed", "welcome"],
        "{page}"
    );
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let of = |kind: &str| {
        items
            .iter()
            .find(|n| n["kind"] == kind)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of("welcome")["subject"], "Welcome to the shop, Customer");
    assert_eq!(
        of("order_confirmed")["subject"],
        format!("Your order {order} is confirmed")
    );
    let body = of("order_confirmed")["body"].clone();
    assert!(
        body.as_str().unwrap_or_default().contains("Notebook"),
        "{body}"
    );
    assert_eq!(
        of("order_cancelled")["subject"],
        format!("Your order {order} is cancelled")
    );
    let ids: Vec<&str> = items.iter().filter_map(|n| n["id"].as_str()).collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);
    assert!(
        items.iter().all(|n| n["sent_at"].is_null()),
        "no SMTP configured"
    );
    // Nothing more arrives: each event made one message.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let again = app.get("/api/v1/notifications", Some(&token)).await;
    assert_eq!(kinds(&again.body).len(), 3);

    // Each user sees their own messages only.
    let (_, bob) = app.customer("bob@example.com").await;
    let bobs = poll_until(&app, "/api/v1/notifications", &bob, 15, |b| {
        !kinds(b).is_empty()
    })
    .await;
    assert_eq!(kinds(&bobs), vec!["welcome"]);

    let paged = app.get("/api/v1/notifications?limit=2", Some(&token)).await;
    assert_eq!(kinds(&paged.body), kinds(&page)[..2].to_vec());
    let cursor = paged.body["next_cursor"].as_str().unwrap_or_default();
    let rest = app
        .get(
            &format!("/api/v1/notifications?limit=2&cursor={cursor}"),
            Some(&token),
        )
        .await;
    assert_eq!(kinds(&rest.body), kinds(&page)[2..].to_vec());
    app.get("/api/v1/notifications", None)
        .await
        .assert_problem(401, "unauthenticated");
    app.get("/api/v1/notifications?limit=101", Some(&token))
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn mails_are_sent_once_and_retried_until_the_smtp_server_answers() {
    if !SmtpSink::available() {
        return;
    }
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_scenario(&[("SHOP_SMTP_URL", &url)]).await;
    // The mail server is down: the welcome is recorded, not sent, and retried.
    let (_, token) = app.customer("grace@example.com").await;
    let waiting = poll_until(&app, "/api/v1/notifications", &token, 15, |b| {
        !kinds(b).is_empty()
    })
    .await;
    assert_eq!(waiting["items"][0]["sent_at"], Value::Null);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let sink = SmtpSink::start(port).await;
    let sent = poll_until(&app, "/api/v1/notifications", &token, 30, |b| {
        !b["items"][0]["sent_at"].is_null()
    })
    .await;
    assert!(!sent["items"][0]["sent_at"].is_null(), "{sent}");
    assert_eq!(
        sink.wait_for("Subject: Welcome to the shop, Customer", 1, 5)
            .await,
        1
    );
    let received = sink.received();
    assert!(received.contains("To: grace@example.com"), "{received}");

    // A confirmation goes out at once now that the server is up, once.
    let (_, order) = buy_and_cancel(&app, "linus@example.com").await;
    let subject = format!("Subject: Your order {order} is confirmed");
    assert_eq!(sink.wait_for(&subject, 1, 15).await, 1);
    let cancelled = format!("Subject: Your order {order} is cancelled");
    assert_eq!(sink.wait_for(&cancelled, 1, 15).await, 1);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let received = sink.received();
    assert_eq!(
        received
            .matches("Subject: Welcome to the shop, Customer")
            .count(),
        2,
        "one welcome each for grace and linus"
    );
    assert_eq!(received.matches(&subject).count(), 1, "sent once");
    assert_eq!(received.matches(&cancelled).count(), 1, "sent once");
    assert!(received.contains("To: linus@example.com"));
}
