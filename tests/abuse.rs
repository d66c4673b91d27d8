//! What a hostile client must not be able to do: run the box out of CPU, threads or memory with password
//! hashing, register and sign in without limit, or hold requests open by sending them slowly; and what a
//! request stuck on a dependency or on the database pool gets instead of a wait without end.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn retry_after(r: &Reply) -> u64 {
    r.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn from(app: &TestApp, client: &str, path: &str, body: serde_json::Value) -> Reply {
    app.request_with(
        Method::POST,
        path,
        None,
        Some(body),
        &[("x-forwarded-for", client)],
    )
    .await
}

#[tokio::test]
async fn registrations_and_sign_ins_share_a_per_client_rate_limit() {
    let app = spawn_with(&[
        ("SHOP_RATE_LIMIT_PER_CLIENT", "4"),
        ("SHOP_TRUST_FORWARDED", "true"),
    ])
    .await;
    let register = |n: u32| json!({ "email": format!("u{n}@example.com"), "password": "a-long-password", "display_name": "U" });
    let sign_in = json!({ "email": "u1@example.com", "password": "a-long-password" });
    for n in 1..=2 {
        let r = from(&app, "203.0.113.9", "/api/v1/users", register(n)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    for _ in 0..2 {
        let r = from(&app, "203.0.113.9", "/api/v1/auth/token", sign_in.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "a valid account is limited too");
    }
    for (path, body) in [
        ("/api/v1/auth/token", sign_in.clone()),
        ("/api/v1/users", register(3)),
    ] {
        let r = from(&app, "203.0.113.9", path, body).await;
        r.assert_problem(429, "rate_limited");
        assert!((1..=60).contains(&retry_after(&r)), "{:?}", r.headers);
    }
    // Another address has its own allowance.
    let r = from(&app, "198.51.100.7", "/api/v1/auth/token", sign_in).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_the_hashing_threads_callers_get_503_with_retry_after_never_a_queue() -> TestResult {
    let app = Arc::new(
        spawn_with(&[
            ("SHOP_PASSWORD_HASH_THREADS", "1"),
            ("SHOP_PASSWORD_HASH_WAIT_MS", "1"),
            // Real cost, so that hashes overlap.
            ("SHOP_ARGON2_MEMORY_KIB", "19456"),
            ("SHOP_ARGON2_ITERATIONS", "2"),
            ("SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT", "1000"),
        ])
        .await,
    );
    app.customer("busy@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/api/v1/auth/token",
                None,
                json!({ "email": "busy@example.com", "password": "customer-password-1" }),
            )
            .await
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for task in tasks {
        let r = task.await?;
        match r.status.as_u16() {
            200 => ok += 1,
            503 => {
                r.assert_problem(503, "busy");
                assert!(retry_after(&r) >= 1, "{:?}", r.headers);
                busy += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    // A taken email is refused without a hash: it answers 409 even while hashing is saturated.
    let r = app
        .post(
            "/api/v1/users",
            None,
            json!({ "email": "busy@example.com", "password": "a-long-password", "display_name": "B" }),
        )
        .await;
    r.assert_problem(409, "email_taken");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remote_identitys_busy_answer_reaches_the_client_with_its_retry_after() -> TestResult {
    let identity_port = free_port();
    let identity_addr = format!("127.0.0.1:{identity_port}");
    let identity = spawn_with(&[
        ("SHOP_MODULES", "identity,notifications"),
        ("SHOP_HTTP_ADDR", &identity_addr),
        ("SHOP_PASSWORD_HASH_THREADS", "1"),
        ("SHOP_PASSWORD_HASH_WAIT_MS", "1"),
        ("SHOP_ARGON2_MEMORY_KIB", "19456"),
        ("SHOP_ARGON2_ITERATIONS", "2"),
        ("SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT", "1000"),
    ])
    .await;
    let gateway = Arc::new(
        spawn_with(&[
            ("SHOP_MODULES", "catalog"),
            ("SHOP_IDENTITY_URL", &identity.base),
        ])
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            gateway
                .post(
                    "/api/v1/auth/token",
                    None,
                    json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
                )
                .await
        }));
    }
    let mut busy = 0;
    for task in tasks {
        let r = task.await?;
        if r.status.as_u16() == 503 {
            // The same answer as in-process: `busy` with its Retry-After, not a bare `unavailable`.
            r.assert_problem(503, "busy");
            assert!(retry_after(&r) >= 1, "{:?}", r.headers);
            busy += 1;
        } else {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
    assert!(
        busy >= 1,
        "with one hashing thread some of 16 sign-ins wait too long"
    );
    Ok(())
}

/// Sends `head` on a fresh connection, then one byte of `dribble` every `every` until the server answers
/// or closes (or `give_up` passes); returns what it answered and how long after the head that took.
fn dribble(
    addr: &str,
    head: &str,
    dribble: u8,
    every: Duration,
    give_up: Duration,
) -> std::io::Result<(String, Duration)> {
    use std::io::{ErrorKind, Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.write_all(head.as_bytes())?;
    stream.set_read_timeout(Some(every))?;
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !answer.is_empty() || started.elapsed() > give_up {
                    break;
                }
                // The server may have stopped reading; what matters is what it answers.
                let _ = stream.write_all(&[dribble]);
            }
            // Reset after the answer: the server closed with our dribble unread.
            Err(_) => break,
        }
    }
    Ok((
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    ))
}

fn host_port(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Product reads by `clients` concurrent clients for `window`: (reads, failures, slowest).
async fn reads_for(
    app: &Arc<TestApp>,
    path: &str,
    clients: usize,
    window: Duration,
) -> (usize, usize, Duration) {
    let until = Instant::now() + window;
    let readers: Vec<_> = (0..clients)
        .map(|_| {
            let (app, path) = (app.clone(), path.to_string());
            tokio::spawn(async move {
                let (mut reads, mut failures, mut slowest) = (0, 0, Duration::ZERO);
                while Instant::now() < until {
                    let started = Instant::now();
                    let ok = app
                        .http
                        .get(format!("{}{path}", app.base))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == StatusCode::OK);
                    slowest = slowest.max(started.elapsed());
                    if ok { reads += 1 } else { failures += 1 }
                }
                (reads, failures, slowest)
            })
        })
        .collect();
    let mut total = (0, 0, Duration::ZERO);
    for reader in readers {
        if let Ok((reads, failures, slowest)) = reader.await {
            total = (total.0 + reads, total.1 + failures, total.2.max(slowest));
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_dribbling_their_bodies_get_408_in_time_while_reads_keep_their_pace() -> TestResult
{
    let body_bound = Duration::from_millis(2500);
    let app = Arc::new(spawn_with(&[("SHOP_HTTP_BODY_TIMEOUT_MS", "2500")]).await);
    let admin = app.admin_token().await;
    let product = app.product(&admin, "READ-1", "Read", 100).await;
    let path = format!(
        "/api/v1/products/{}",
        product["id"].as_str().unwrap_or_default()
    );
    let window = Duration::from_millis(1500);
    let (before, failed_before, _) = reads_for(&app, &path, 4, window).await;
    assert!(
        before > 0 && failed_before == 0,
        "{before} reads, {failed_before} failed"
    );

    // Sign-ins, read by an anonymous handler: the classic slowloris target.
    let head = "POST /api/v1/auth/token HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n{";
    let slow: Vec<_> = (0..32)
        .map(|_| {
            let addr = host_port(&app);
            tokio::task::spawn_blocking(move || {
                dribble(
                    &addr,
                    head,
                    b' ',
                    Duration::from_millis(100),
                    Duration::from_secs(15),
                )
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (during, failed_during, slowest) = reads_for(&app, &path, 4, window).await;

    for client in slow {
        let (answer, took) = client.await??;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("application/problem+json") && answer.contains("\"request_timeout\""),
            "{answer}"
        );
        assert!(
            took >= body_bound - Duration::from_millis(300)
                && took < body_bound + Duration::from_secs(3),
            "answered after {took:?}"
        );
    }
    assert_eq!(
        failed_during, 0,
        "every read beside the slow bodies is answered"
    );
    // Loose, for two shared cores: a read that waited behind the slow bodies would take the body bound.
    assert!(slowest < body_bound / 2, "slowest read {slowest:?}");
    assert!(
        during * 4 >= before,
        "reads beside 32 slow bodies: {during} against {before} without"
    );
    Ok(())
}

#[tokio::test]
async fn a_client_dribbling_its_request_head_is_answered_408_or_cut_off_at_the_bound() -> TestResult
{
    let app = spawn_with(&[("SHOP_HTTP_HEAD_TIMEOUT_MS", "500")]).await;
    let addr = host_port(&app);
    let (answer, took) = tokio::task::spawn_blocking(move || {
        dribble(
            &addr,
            "GET /api/v1/products HTTP/1.1\r\nHost: shop\r\nX-Slow: ",
            b'a',
            Duration::from_millis(50),
            Duration::from_secs(10),
        )
    })
    .await??;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "cut off after {took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_request_worked_on_past_the_handler_bound_is_503_with_retry_after() {
    // Inventory is a silent remote whose own timeout (5 s) lies past the handler bound.
    let app = spawn_with(&[
        ("SHOP_MODULES", "identity,catalog,notifications"),
        ("SHOP_INVENTORY_URL", &black_hole()),
        ("SHOP_REMOTE_TIMEOUT_MS", "5000"),
        ("SHOP_HTTP_HANDLER_TIMEOUT_MS", "600"),
        ("SHOP_HTTP_BODY_TIMEOUT_MS", "300"),
    ])
    .await;
    let started = Instant::now();
    let r = app
        .request_with(
            Method::GET,
            "/api/v1/inventory/MUG-1",
            None,
            None,
            &[("x-request-id", "cut-off-1")],
        )
        .await;
    let took = started.elapsed();
    r.assert_problem(503, "unavailable");
    assert!(retry_after(&r) >= 1, "{:?}", r.headers);
    assert_eq!(r.body["request_id"], "cut-off-1", "{}", r.body);
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    // The bound is per request: the rest is served as before.
    assert_eq!(
        app.get("/api/v1/products", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_get_a_database_connection_in_time_is_503_with_retry_after()
-> TestResult {
    let app = spawn_with(&[
        ("SHOP_DB_POOL_SIZE", "1"),
        ("SHOP_DB_ACQUIRE_TIMEOUT_MS", "300"),
    ])
    .await;
    assert_eq!(
        app.get("/api/v1/products", None).await.status,
        StatusCode::OK
    );
    let (_, db) = app
        .running_modules
        .databases
        .first()
        .cloned()
        .ok_or("no database")?;
    let (taken_tx, taken) = std::sync::mpsc::channel::<()>();
    let (release, held) = std::sync::mpsc::channel::<()>();
    // The one connection, held as a long transaction or a stuck query would hold it.
    let holder = tokio::spawn(async move {
        db.run(move |_| {
            let _ = taken_tx.send(());
            let _ = held.recv_timeout(Duration::from_secs(30));
            Ok::<_, shop_kernel::db::DbError>(())
        })
        .await
    });
    tokio::task::spawn_blocking(move || taken.recv_timeout(Duration::from_secs(10))).await??;
    let started = Instant::now();
    let r = app.get("/api/v1/products", None).await;
    let took = started.elapsed();
    r.assert_problem(503, "unavailable");
    assert!(retry_after(&r) >= 1, "{:?}", r.headers);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    let _ = release.send(());
    holder.await??;
    assert_eq!(
        app.get("/api/v1/products", None).await.status,
        StatusCode::OK
    );
    Ok(())
}
