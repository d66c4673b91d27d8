//! Split deployment: catalog and inventory run as their own services, the monolith serves identity (with
//! notifications, the subscriber of its events) and mounts the other modules' public routes over their HTTP
//! clients. Clients see the same API.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

struct Deployment {
    gateway: TestApp,
    catalog: TestApp,
    inventory: TestApp,
}

async fn deploy() -> Deployment {
    let (catalog_port, inventory_port) = (free_port(), free_port());
    let catalog_url = format!("http://127.0.0.1:{catalog_port}");
    let inventory_url = format!("http://127.0.0.1:{inventory_port}");
    let gateway = spawn_with(&[
        ("SHOP_MODULES", "identity,notifications"),
        ("SHOP_CATALOG_URL", &catalog_url),
        ("SHOP_INVENTORY_URL", &inventory_url),
        ("SHOP_REMOTE_TIMEOUT_MS", "2000"),
        ("SHOP_REMOTE_PROBE_INTERVAL_MS", "200"),
    ])
    .await;
    let service = |module: &'static str, port: u16| {
        let identity = gateway.base.clone();
        async move {
            let addr = format!("127.0.0.1:{port}");
            spawn_with(&[
                ("SHOP_MODULES", module),
                ("SHOP_HTTP_ADDR", &addr),
                ("SHOP_IDENTITY_URL", &identity),
            ])
            .await
        }
    };
    let catalog = service("catalog", catalog_port).await;
    let inventory = service("inventory", inventory_port).await;
    Deployment {
        gateway,
        catalog,
        inventory,
    }
}

#[tokio::test]
async fn the_public_api_works_the_same_through_a_split_deployment() {
    let d = deploy().await;
    let g = &d.gateway;
    let admin = g.admin_token().await;
    let (_, customer) = g.customer("split@example.com").await;

    // Catalog, served by its own process, reached through the gateway.
    let product = g.product(&admin, "MUG-1", "Blue mug", 1299).await;
    let id = product["id"].as_str().unwrap_or_default();
    assert_eq!(
        g.get(&format!("/api/v1/products/{id}"), None).await.body,
        product
    );
    assert_eq!(
        g.get("/api/v1/products?q=blue", None).await.body["items"][0]["sku"],
        "MUG-1"
    );
    g.post(
        "/api/v1/products",
        Some(&admin),
        json!({ "sku": "MUG-1", "name": "x", "price": { "amount_minor": 1, "currency": "EUR" } }),
    )
    .await
    .assert_problem(409, "sku_taken");
    // Authorization is decided by the catalog service from the forwarded token.
    g.post(
        "/api/v1/products",
        Some(&customer),
        json!({ "sku": "X", "name": "x", "price": { "amount_minor": 1, "currency": "EUR" } }),
    )
    .await
    .assert_problem(403, "forbidden");
    g.post(
        "/api/v1/products",
        None,
        json!({ "sku": "X", "name": "x", "price": { "amount_minor": 1, "currency": "EUR" } }),
    )
    .await
    .assert_problem(401, "unauthenticated");
    let r = g
        .post("/api/v1/products", Some(&admin), json!({ "sku": "bad sku", "name": "", "price": { "amount_minor": 1, "currency": "EUR" } }))
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["name", "sku"]);

    // Inventory, likewise.
    g.get("/api/v1/inventory/MUG-1", None)
        .await
        .assert_problem(404, "not_found");
    let r = g.set_stock(&admin, "MUG-1", 4).await;
    assert_eq!(
        r.body,
        json!({ "sku": "MUG-1", "on_hand": 4, "reserved": 0, "available": 4 })
    );
    g.set_stock(&customer, "MUG-1", 1)
        .await
        .assert_problem(403, "forbidden");
    let adjust =
        |key: &'static str, delta: i64| g.adjust(&admin, "MUG-1", delta, "recount", Some(key));
    assert_eq!(adjust("k1", -1).await.body["on_hand"], 3);
    assert_eq!(adjust("k1", -1).await.body["on_hand"], 3);
    adjust("k1", -2)
        .await
        .assert_problem(422, "idempotency_key_reused");
    adjust("k2", -9)
        .await
        .assert_problem(409, "insufficient_stock");

    // The same answers straight from the inventory service.
    assert_eq!(
        d.inventory.get("/api/v1/inventory/MUG-1", None).await.body["on_hand"],
        3
    );

    let ready = g.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    let names: Vec<&str> = ready.body["checks"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        vec![
            "database:identity",
            "database:notifications",
            "remote:catalog",
            "remote:inventory"
        ]
    );
}

#[tokio::test]
async fn each_service_holds_only_its_own_tables() {
    let d = deploy().await;
    let tables =
        |app: &TestApp| table_names(&app.db.as_ref().map(|db| db.url.clone()).unwrap_or_default());
    let mut gateway = [shop_identity::TABLES, shop_notifications::TABLES].concat();
    gateway.sort();
    assert_eq!(tables(&d.gateway), gateway);
    assert_eq!(tables(&d.catalog), shop_catalog::TABLES.to_vec());
    let mut inventory = shop_inventory::TABLES.to_vec();
    inventory.sort();
    assert_eq!(tables(&d.inventory), inventory);
}

#[tokio::test]
async fn a_module_that_is_down_becomes_a_fast_503_while_the_rest_keeps_working_and_stays_ready() {
    let d = deploy().await;
    let g = &d.gateway;
    let admin = g.admin_token().await;
    g.set_stock(&admin, "MUG-1", 1).await;
    d.inventory.stop().await;
    let started = std::time::Instant::now();
    g.get("/api/v1/inventory/MUG-1", None)
        .await
        .assert_problem(503, "unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        g.get("/api/v1/products", None).await.status,
        StatusCode::OK,
        "catalog is unaffected"
    );
    assert_eq!(
        g.get("/api/v1/users/me", Some(&admin)).await.status,
        StatusCode::OK
    );
    // The gateway still serves everything else, so it stays in rotation; the outage shows in the checks
    // and in the metrics.
    let (status, ready) = readiness_showing(&g.base, "remote:inventory", "down", 10).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(
        ready["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "remote:inventory" && c["status"] == "down"),
        "{ready}"
    );
    let metrics = g.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "shop_remote_module_up{module=\"inventory\"}"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "shop_remote_module_up{module=\"catalog\"}"),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_module_that_hangs_is_a_503_after_a_bounded_timeout() {
    // A "service" that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        listener.set_nonblocking(true).unwrap_or_default();
        while std::time::Instant::now() < deadline {
            if let Ok((socket, _)) = listener.accept() {
                held.push(socket);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let g = spawn_with(&[
        ("SHOP_MODULES", "identity,catalog,notifications"),
        ("SHOP_INVENTORY_URL", &url),
        ("SHOP_REMOTE_TIMEOUT_MS", "300"),
    ])
    .await;
    let started = std::time::Instant::now();
    let r = g.get("/api/v1/inventory/MUG-1", None).await;
    let took = started.elapsed();
    r.assert_problem(503, "unavailable");
    assert!(
        took < std::time::Duration::from_millis(1500),
        "took {took:?}"
    );
    assert!(
        took >= std::time::Duration::from_millis(300),
        "gave up before the timeout: {took:?}"
    );
}
