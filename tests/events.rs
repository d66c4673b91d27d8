//! Events end to end: written with their change, delivered after the process is killed before delivery
//! or in the middle of it, applied once (1000 across a kill); while a subscriber is down, listed as failing,
//! counted on `/metrics` and retried until it is back, however many attempts that takes; refused by a
//! subscriber, parked and resubmitted in bulk by an admin; never taken as delivered when the process cannot
//! reach a subscriber; parked under the old rule, due again after the upgrade.

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

/// Retries fast enough that a test sees many failed deliveries in seconds: 10 ms doubling to 200 ms, a relay
/// round every 50 ms.
const FAST_RETRIES: [(&str, &str); 3] = [
    ("SHOP_EVENT_RETRY_BASE_MS", "10"),
    ("SHOP_EVENT_RETRY_MAX_MS", "200"),
    ("SHOP_EVENT_RELAY_INTERVAL_MS", "50"),
];

/// A gateway serving every module but notifications, whose URL points at `port`, with fast retries.
async fn gateway_without_notifications(port: u16) -> TestApp {
    let notifications = format!("http://127.0.0.1:{port}");
    let mut vars = vec![
        (
            "SHOP_MODULES",
            "identity,catalog,inventory,payments,ordering",
        ),
        ("SHOP_NOTIFICATIONS_URL", notifications.as_str()),
        ("SHOP_REMOTE_TIMEOUT_MS", "500"),
    ];
    vars.extend(FAST_RETRIES);
    spawn_with(&vars).await
}

/// Notifications in its own process on `port`, using `gateway`'s identity.
async fn notifications_on(port: u16, gateway: &TestApp) -> TestApp {
    spawn_with(&[
        ("SHOP_MODULES", "notifications"),
        ("SHOP_HTTP_ADDR", &format!("127.0.0.1:{port}")),
        ("SHOP_IDENTITY_URL", &gateway.base),
    ])
    .await
}

/// Polls identity's failing events until `done` holds for the list (up to `secs`); returns the last list.
async fn failing_until(
    gateway: &TestApp,
    admin: &str,
    secs: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let body = poll_until(
        gateway,
        "/api/v1/admin/events/identity/failing",
        admin,
        secs,
        |b| b["items"].as_array().is_some_and(|items| done(items)),
    )
    .await;
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Polls `/metrics` until the line starting with `line_start` ends with ` value` (up to 15 s: the gauges are
/// refreshed every 5 s); returns the last such line.
async fn gauge_until(app: &TestApp, line_start: &str, value: &str) -> Option<String> {
    let mut line = None;
    for _ in 0..150 {
        line = metric(app, line_start).await;
        if line
            .as_deref()
            .is_some_and(|l| l.ends_with(&format!(" {value}")))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    line
}

/// The welcome messages in a notifications database: (messages, distinct events among them).
fn welcomes(url: &str) -> (i64, i64) {
    (
        count(
            url,
            "SELECT COUNT(*) AS n FROM notifications_messages WHERE kind = 'welcome'",
        ),
        count(
            url,
            "SELECT COUNT(DISTINCT event_id) AS n FROM notifications_messages WHERE kind = 'welcome'",
        ),
    )
}

fn database_url(app: &TestApp) -> String {
    app.db.as_ref().map(|d| d.url.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_down_past_the_attempt_count_gets_every_event_once_it_is_back() {
    let port = free_port();
    let gateway = gateway_without_notifications(port).await;
    let admin = gateway.admin_token().await;
    let (_, token) = gateway.customer("ada@example.com").await;

    // The admin's and ada's welcomes cannot be delivered. Failing well past MAX_ATTEMPTS, they are listed,
    // still due again (an outage is not a reason to give up), with the transport failure as their error.
    let past = u64::try_from(shop_kernel::events::outbox::MAX_ATTEMPTS).unwrap_or_default() + 3;
    let items = failing_until(&gateway, &admin, 30, |items| {
        items.len() == 2
            && items
                .iter()
                .all(|e| e["attempts"].as_u64().is_some_and(|n| n >= past))
    })
    .await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        items.iter().all(|e| {
            e["type"] == "identity.user_registered"
                && e["attempts"].as_u64() >= Some(past)
                && e["next_attempt_at"].is_string()
                && e["last_error"]
                    .as_str()
                    .is_some_and(|m| m.contains("notifications: 503 unavailable"))
        }),
        "{items:?}"
    );
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
    assert_eq!(
        gauge_until(
            &gateway,
            "shop_outbox_undelivered_events{module=\"identity\"}",
            "2"
        )
        .await
        .as_deref(),
        Some("shop_outbox_undelivered_events{module=\"identity\"} 2")
    );
    let age = metric(
        &gateway,
        "shop_outbox_oldest_undelivered_age_seconds{module=\"identity\"}",
    )
    .await
    .unwrap_or_default();
    assert!(!age.ends_with(" 0"), "{age}");

    // The subscriber is back: with nobody resubmitting, the relay's next retry delivers, once each.
    let service = notifications_on(port, &gateway).await;
    let mine = poll_until(&gateway, "/api/v1/notifications", &token, 30, |b| {
        b["items"].as_array().is_some_and(|items| !items.is_empty())
    })
    .await;
    assert_eq!(mine["items"][0]["kind"], "welcome", "{mine}");
    let empty = failing_until(&gateway, &admin, 15, <[Value]>::is_empty).await;
    assert_eq!(empty, Vec::<Value>::new());
    let gateway_db = database_url(&gateway);
    assert_eq!(
        count(
            &gateway_db,
            "SELECT COUNT(*) AS n FROM identity_outbox WHERE delivered_at IS NULL"
        ),
        0
    );
    assert_eq!(welcomes(&database_url(&service)), (2, 2), "once each");
}

/// A stand-in for notifications that refuses every call with 422 `validation_failed`, as a subscriber does
/// with an event it will never take; stopped (and its port freed) when dropped.
struct RefusingSubscriber {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RefusingSubscriber {
    fn start(port: u16) -> RefusingSubscriber {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let problem = json!({
                "type": "/problems/validation_failed", "title": "Validation failed", "status": 422,
                "code": "validation_failed", "detail": "this subscriber will never take it",
                "errors": [{ "field": "payload", "message": "not for me" }],
            })
            .to_string();
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((socket, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = socket.set_nonblocking(false);
                let mut reader = BufReader::new(socket);
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = write!(
                    reader.get_mut(),
                    "HTTP/1.1 422 Unprocessable Entity\r\ncontent-type: application/problem+json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{problem}",
                    problem.len()
                );
            }
        });
        RefusingSubscriber {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RefusingSubscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_its_subscriber_refuses_is_parked_after_the_attempt_count_and_revived_in_bulk() {
    let port = free_port();
    let refusing = RefusingSubscriber::start(port);
    let gateway = gateway_without_notifications(port).await;
    let admin = gateway.admin_token().await;
    let (_, token) = gateway.customer("ada@example.com").await;

    // Refused every time: parked at the MAX_ATTEMPTS-th refusal, no attempt after that.
    let max = u64::try_from(shop_kernel::events::outbox::MAX_ATTEMPTS).unwrap_or_default();
    let parked = failing_until(&gateway, &admin, 30, |items| {
        items.len() == 2 && items.iter().all(|e| e["next_attempt_at"].is_null())
    })
    .await;
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert!(
        parked.iter().all(|e| {
            e["attempts"].as_u64() == Some(max)
                && e["last_error"]
                    .as_str()
                    .is_some_and(|m| m.contains("notifications: 422 validation_failed"))
        }),
        "{parked:?}"
    );
    drop(refusing);

    // Bulk resubmit: admins only; a type identity does not publish matches nothing.
    let resubmit = |token: &str, body: Value| {
        let (gateway, token) = (&gateway, token.to_string());
        async move {
            gateway
                .post("/api/v1/admin/events/identity/resubmit", Some(&token), body)
                .await
        }
    };
    resubmit(&token, json!({}))
        .await
        .assert_problem(403, "forbidden");
    // A type identity does not publish matches nothing.
    for other in ["ordering.order_confirmed", ""] {
        let r = resubmit(&admin, json!({ "event_type": other })).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::OK, &json!({ "resubmitted": 0 }))
        );
    }
    resubmit(&admin, json!({ "parked_only": "yes" }))
        .await
        .assert_problem(422, "validation_failed");

    // The subscriber is fixed: an admin revives the parked events in one call, and they arrive once each.
    let service = notifications_on(port, &gateway).await;
    let r = resubmit(
        &admin,
        json!({ "event_type": "identity.user_registered", "parked_only": true }),
    )
    .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::OK, &json!({ "resubmitted": 2 }))
    );
    let mine = poll_until(&gateway, "/api/v1/notifications", &token, 30, |b| {
        b["items"].as_array().is_some_and(|items| !items.is_empty())
    })
    .await;
    assert_eq!(mine["items"][0]["kind"], "welcome", "{mine}");
    let empty = failing_until(&gateway, &admin, 15, <[Value]>::is_empty).await;
    assert_eq!(empty, Vec::<Value>::new());
    assert_eq!(welcomes(&database_url(&service)), (2, 2), "once each");
    let again = resubmit(&admin, json!({})).await;
    assert_eq!(
        again.body,
        json!({ "resubmitted": 0 }),
        "nothing left to resubmit"
    );
}

#[tokio::test]
async fn an_event_whose_subscriber_this_process_cannot_reach_stays_undelivered_and_visible() {
    // Configuration refuses a publisher without its subscriber (tests/startup.rs); this takes notifications
    // away after that check, as a future path around it would, to show that delivery does not take its
    // absence for "nobody wants the event".
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("shop-ev-{}", uuid::Uuid::now_v7().simple()));
    let mut vars = base_vars(&dir, &db.url);
    for (k, v) in FAST_RETRIES {
        vars.insert(k.into(), v.into());
    }
    let mut config = shop::config::Config::from_lookup(|k| vars.get(k).cloned())
        .unwrap_or_else(|e| panic!("{e}"));
    config.local_modules.retain(|m| m.name() != "notifications");
    let app = spawn_config(config, dir.clone()).await;
    assert!(
        app.running_modules.apis.by_name("notifications").is_none(),
        "no notifications in this process"
    );
    let admin = app.admin_token().await;
    app.customer("ada@example.com").await;

    let items = failing_until(&app, &admin, 30, |items| items.len() == 2).await;
    assert!(
        items.len() == 2
            && items.iter().all(|e| {
                e["next_attempt_at"].is_string()
                    && e["last_error"].as_str().is_some_and(|m| {
                        m.contains(
                            "notifications: takes identity.user_registered but is not reachable",
                        )
                    })
            }),
        "{items:?}"
    );
    assert_eq!(
        gauge_until(
            &app,
            "shop_outbox_undelivered_events{module=\"identity\"}",
            "2"
        )
        .await
        .as_deref(),
        Some("shop_outbox_undelivered_events{module=\"identity\"} 2")
    );
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) AS n FROM identity_outbox WHERE delivered_at IS NULL"
        ),
        2,
        "neither welcome marked delivered"
    );
    let _ = std::fs::remove_dir_all(dir);
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

#[test]
fn events_parked_under_the_old_rule_are_given_another_round_by_the_upgrade() {
    use diesel_migrations::MigrationHarness;
    let db = TestDb::new();
    let database = shop_kernel::db::Database::connect(&db.url, 1).unwrap_or_else(|e| panic!("{e}"));
    let backend = database.backend();
    let migrations = || {
        (shop::modules::identity::DEF.migrations)(backend)
            .unwrap_or_else(|| panic!("identity is compiled in"))
    };
    let mut conn = database.get().unwrap_or_else(|e| panic!("{e}"));
    // The schema as it was: the accounts, then the outbox.
    for _ in 0..2 {
        conn.run_next_migration(migrations())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    execute(
        &db.url,
        "INSERT INTO identity_outbox (id, event_type, version, payload, occurred_at, attempts, \
         next_attempt_at, last_error, delivered_at) VALUES \
         ('01900000-0000-7000-8000-000000000001', 'identity.user_registered', 1, '{}', \
          '2026-11-30 10:00:00', 12, NULL, 'notifications: 503 unavailable', NULL), \
         ('01900000-0000-7000-8000-000000000002', 'identity.user_registered', 1, '{}', \
          '2026-11-30 10:00:00', 1, NULL, NULL, '2026-11-30 10:00:05')",
    );
    conn.run_pending_migrations(migrations())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) AS n FROM identity_outbox WHERE id LIKE '%1' AND attempts = 0 \
             AND refusals = 0 AND next_attempt_at = occurred_at AND delivered_at IS NULL"
        ),
        1,
        "the parked event is due again, with fresh counts"
    );
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) AS n FROM identity_outbox WHERE id LIKE '%2' AND attempts = 1 \
             AND next_attempt_at IS NULL AND delivered_at IS NOT NULL"
        ),
        1,
        "a delivered event is left alone"
    );
}
