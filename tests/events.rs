//! Events end to end: written with their change, delivered after the process is killed before delivery
//! or in the middle of it, applied once (1000 across a kill), and, while a subscriber is down, listed as
//! failing, counted on `/metrics` and resubmitted by an admin.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn registration(i: usize) -> Value {
    json!({ "email": format!("user{i}@example.com"), "password": "customer-password-1",
            "display_name": format!("User {i}") })
}

/// Waits until every identity event is delivered and returns (users, welcome messages, distinct events
/// among them, distinct users among them).
async fn settled(url: &str) -> (i64, i64, i64, i64) {
    for _ in 0..300 {
        if count(
            url,
            "SELECT COUNT(*) AS n FROM identity_outbox WHERE delivered_at IS NULL",
        ) == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (
        count(url, "SELECT COUNT(*) AS n FROM identity_users"),
        count(
            url,
            "SELECT COUNT(*) AS n FROM notifications_messages WHERE kind = 'welcome'",
        ),
        count(
            url,
            "SELECT COUNT(DISTINCT event_id) AS n FROM notifications_messages WHERE kind = 'welcome'",
        ),
        count(
            url,
            "SELECT COUNT(DISTINCT user_id) AS n FROM notifications_messages WHERE kind = 'welcome'",
        ),
    )
}

#[tokio::test]
async fn an_event_committed_but_not_delivered_when_the_process_dies_is_delivered_once_after_restart()
 {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-ev-{}", uuid::Uuid::now_v7().simple()));
    let vars = base_vars(&dir, &db.url);
    // The relay runs once at startup, then not for an hour: what is registered now stays undelivered.
    let idle = [("SHOP_EVENT_RELAY_INTERVAL_MS", "3600000")];
    let mut shop = Binary::start(&vars, &idle).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = shop
        .call(Method::POST, "/api/v1/users", None, Some(registration(1)))
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) AS n FROM identity_outbox WHERE delivered_at IS NULL"
        ),
        1,
        "written with the account, not delivered"
    );
    let _ = shop.child.kill();
    let _ = shop.child.wait();

    let _shop = Binary::start(&vars, &[]).await;
    let (users, welcomes, events, recipients) = settled(&db.url).await;
    assert_eq!(
        (users, welcomes, events, recipients),
        (2, 2, 2, 2),
        "admin and user 1"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_across_a_kill_are_all_applied_exactly_once() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-ev-{}", uuid::Uuid::now_v7().simple()));
    let vars = base_vars(&dir, &db.url);
    // Events the killed relay had claimed are due again when their lease ends.
    let lease = [("SHOP_EVENT_CLAIM_LEASE_MS", "2000")];
    let mut shop = Binary::start(&vars, &lease).await;
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
    let base = shop.base.clone();
    // 16 clients register users 0..1000 while the relay delivers; the process is killed half way.
    let load = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut clients = Vec::new();
        for _ in 0..16 {
            let (http, base, next, sent) =
                (http.clone(), base.clone(), next.clone(), sent_tx.clone());
            clients.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= 1000 {
                        return;
                    }
                    let ok = http
                        .post(format!("{base}/api/v1/users"))
                        .json(&registration(i))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == StatusCode::CREATED);
                    let _ = sent.send((i, ok));
                }
            }));
        }
        for client in clients {
            let _ = client.await;
        }
    });
    let mut done = vec![false; 1000];
    let mut answered = 0;
    while answered < 500 {
        let Some((i, ok)) = sent_rx.recv().await else {
            break;
        };
        done[i] = ok;
        answered += 1;
    }
    let _ = shop.child.kill();
    let _ = shop.child.wait();
    let _ = load.await;
    while let Ok((i, ok)) = sent_rx.try_recv() {
        done[i] = ok;
    }
    let undelivered = count(
        &db.url,
        "SELECT COUNT(*) AS n FROM identity_outbox WHERE delivered_at IS NULL",
    );
    eprintln!("killed with {undelivered} events undelivered");

    // Restarted, the rest register (those the kill cut off may exist already: 409 then).
    let shop = Binary::start(&vars, &lease).await;
    for (i, ok) in done.iter().enumerate() {
        if !ok {
            let (status, _) = shop
                .call(Method::POST, "/api/v1/users", None, Some(registration(i)))
                .await;
            assert!(status == 201 || status == 409, "user {i}: {status}");
        }
    }
    let (users, welcomes, events, recipients) = settled(&db.url).await;
    assert_eq!(users, 1001, "the admin and a thousand users");
    assert_eq!(
        (welcomes, events, recipients),
        (1001, 1001, 1001),
        "one welcome per account: none lost, none twice"
    );
    assert_eq!(
        count(&db.url, "SELECT COUNT(*) AS n FROM identity_outbox"),
        1001
    );
    let _ = std::fs::remove_dir_all(dir);
}

async fn metric(app: &TestApp, line_start: &str) -> Option<String> {
    let text = app.get_text("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .map(str::to_string)
}

#[tokio::test]
async fn while_a_subscriber_is_down_its_deliveries_are_listed_counted_and_resubmitted() {
    let port = free_port();
    let notifications = format!("http://127.0.0.1:{port}");
    let gateway = spawn_with(&[
        (
            "SHOP_MODULES",
            "identity,catalog,inventory,payments,ordering",
        ),
        ("SHOP_NOTIFICATIONS_URL", &notifications),
        ("SHOP_REMOTE_TIMEOUT_MS", "500"),
    ])
    .await;
    let admin = gateway.admin_token().await;
    let (_, token) = gateway.customer("ada@example.com").await;

    // The admin's and ada's welcomes cannot be delivered: after three failures they are listed.
    let failing = poll_until(
        &gateway,
        "/api/v1/admin/events/identity/failing",
        &admin,
        20,
        |b| b["items"].as_array().is_some_and(|items| items.len() == 2),
    )
    .await;
    let items = failing["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{failing}");
    assert!(items.iter().all(|e| {
        e["type"] == "identity.user_registered"
            && e["attempts"].as_u64() >= Some(3)
            && e["last_error"]
                .as_str()
                .is_some_and(|m| m.contains("notifications"))
    }));
    gateway
        .get("/api/v1/admin/events/identity/failing", Some(&token))
        .await
        .assert_problem(403, "forbidden");
    gateway
        .get(
            "/api/v1/admin/events/identity/failing?limit=0",
            Some(&admin),
        )
        .await
        .assert_problem(422, "validation_failed");
    let unknown = uuid::Uuid::now_v7();
    gateway
        .post(
            &format!("/api/v1/admin/events/identity/{unknown}/resubmit"),
            Some(&admin),
            json!({}),
        )
        .await
        .assert_problem(404, "event_not_found");
    let mut backlog = None;
    for _ in 0..150 {
        backlog = metric(
            &gateway,
            "shop_outbox_undelivered_events{module=\"identity\"}",
        )
        .await;
        if backlog.as_deref().is_some_and(|l| l.ends_with(" 2")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        backlog.as_deref(),
        Some("shop_outbox_undelivered_events{module=\"identity\"} 2")
    );
    let age = metric(
        &gateway,
        "shop_outbox_oldest_undelivered_age_seconds{module=\"identity\"}",
    )
    .await
    .unwrap_or_default();
    assert!(!age.ends_with(" 0"), "{age}");

    // The subscriber is back: an admin resubmits, and the welcomes arrive once.
    let identity_url = gateway.base.clone();
    let _service = spawn_with(&[
        ("SHOP_MODULES", "notifications"),
        ("SHOP_HTTP_ADDR", &format!("127.0.0.1:{port}")),
        ("SHOP_IDENTITY_URL", &identity_url),
    ])
    .await;
    for event in &items {
        let id = event["id"].as_str().unwrap_or_default();
        let r = gateway
            .post(
                &format!("/api/v1/admin/events/identity/{id}/resubmit"),
                Some(&admin),
                json!({}),
            )
            .await;
        // Delivered already by a retry that came due, or made due now.
        assert!(
            r.status == StatusCode::OK || r.body["code"] == "event_not_found",
            "{}",
            r.body
        );
    }
    let mine = poll_until(&gateway, "/api/v1/notifications", &token, 15, |b| {
        b["items"].as_array().is_some_and(|items| !items.is_empty())
    })
    .await;
    assert_eq!(mine["items"][0]["kind"], "welcome", "{mine}");
    let empty = poll_until(
        &gateway,
        "/api/v1/admin/events/identity/failing",
        &admin,
        15,
        |b| b["items"].as_array().is_some_and(Vec::is_empty),
    )
    .await;
    assert_eq!(empty["items"], json!([]));
}

#[test]
fn relays_claiming_at_once_never_take_the_same_event() {
    use shop_kernel::events::outbox::Outbox;
    let db = TestDb::new();
    let database = shop_kernel::db::Database::connect(&db.url, 8).unwrap_or_else(|e| panic!("{e}"));
    shop::migrate::run(&database, shop::config::Module::IDENTITY).unwrap_or_else(|e| panic!("{e}"));
    let outbox = Outbox::new(shop_identity::OUTBOX_TABLE);
    let now = shop_kernel::db::now();
    {
        let mut conn = database.get().unwrap_or_else(|e| panic!("{e}"));
        for i in 0..1000 {
            let event = shop_kernel::events::Event {
                id: uuid::Uuid::now_v7(),
                event_type: "identity.user_registered".into(),
                version: 1,
                occurred_at: now.and_utc(),
                payload: json!({ "n": i }),
            };
            outbox
                .publish(&mut conn, &event)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let database = database.clone();
            std::thread::spawn(move || {
                let mut conn = database.get().unwrap_or_else(|e| panic!("{e}"));
                let mut taken = Vec::new();
                loop {
                    let batch = outbox
                        .claim(&mut conn, now, Duration::from_secs(60), 25)
                        .unwrap_or_else(|e| panic!("{e}"));
                    if batch.is_empty() {
                        return taken;
                    }
                    taken.extend(batch.into_iter().map(|e| e.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.join().unwrap_or_default());
    }
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (1000, 1000));
}
