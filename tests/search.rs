//! Search over a catalog larger than what a search walks before it asks the trigram index
//! (`shop_catalog::store`: a window of 100 products, then 5,000 more when the needle turned up in the
//! window): rare needles are found through the index (GIN on PostgreSQL, FTS5 on SQLite), common ones while
//! walking, short ones by walking on, and pages join up across the walks and the index.

mod common;

use common::*;
use diesel::connection::SimpleConnection;

/// 5,400 active products inserted in bulk, with ids that sort before any the API makes. Product 10 is the
/// only zebra among them.
fn seed_bulk(url: &str) {
    let db = shop_kernel::db::Database::connect(url, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = db.get().unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<String> = (1..=5400)
        .map(|n| {
            let colour = if n == 10 {
                "zebra"
            } else {
                ["red", "blue", "green", "oak"][n % 4]
            };
            let name = format!("Bench {colour} chair {n:05}");
            let sku = format!("BULK-{n:05}");
            format!(
                "('00000000-0000-7000-8000-{n:012x}', '{sku}', '{name}', '', 100, 'EUR', TRUE, '{} {}', \
                 '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                name.to_lowercase(),
                sku.to_lowercase()
            )
        })
        .collect();
    conn.batch_execute(&format!(
        "INSERT INTO catalog_products (id, sku, name, description, price_minor, currency, active, \
         search_text, created_at, updated_at) VALUES {}",
        rows.join(",")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn search_finds_rare_and_common_needles_past_the_walked_window() {
    let app = spawn_app().await;
    let url = app.db.as_ref().map(|d| d.url.clone()).unwrap_or_default();
    seed_bulk(&url);
    let admin = app.admin_token().await;
    // Made through the API after the bulk rows: their ids come after all 5,400, past every walk.
    app.product(&admin, "TEAPOT-1", "Rare teapot", 100).await;
    app.product(&admin, "TEAPOT-2", "Another rare teapot", 100)
        .await;
    app.product(&admin, "QX-1", "qx kettle", 100).await;
    app.product(&admin, "ZEBRA-1", "Zebra mug", 100).await;

    // Rare: nothing in the window, two after it (through the index).
    let r = app.get("/api/v1/products?q=teapot", None).await;
    assert_eq!(r.skus(), vec!["TEAPOT-1", "TEAPOT-2"]);
    // Rare and paged: the cursor continues in the index.
    let first = app.get("/api/v1/products?q=teapot&limit=1", None).await;
    assert_eq!(first.skus(), vec!["TEAPOT-1"]);
    let cursor = first.body["next_cursor"].as_str().unwrap_or_default();
    let rest = app
        .get(
            &format!("/api/v1/products?q=teapot&limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest.skus(), vec!["TEAPOT-2"]);
    assert_eq!(rest.body["next_cursor"], serde_json::Value::Null);

    // Common: the window fills the page, in listing order.
    let r = app
        .get("/api/v1/products?q=oak%20chair&limit=3", None)
        .await;
    assert_eq!(r.skus(), vec!["BULK-00003", "BULK-00007", "BULK-00011"]);

    // Few in the window, the rest after it: one page joins both, and the next page goes on from its cursor.
    let bulk = |range: std::ops::RangeInclusive<usize>| range.map(|n| format!("BULK-{n:05}"));
    let first = app
        .get("/api/v1/products?q=chair%20001&limit=60", None)
        .await;
    let expected: Vec<String> = bulk(100..=159).collect();
    assert_eq!(first.skus(), expected, "1 in the window, 59 after it");
    let cursor = first.body["next_cursor"].as_str().unwrap_or_default();
    let rest = app
        .get(
            &format!("/api/v1/products?q=chair%20001&limit=60&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest.skus(), bulk(160..=199).collect::<Vec<_>>());
    assert_eq!(rest.body["next_cursor"], serde_json::Value::Null);

    // Many held by products past the window, none in it: the index finds them all.
    let r = app
        .get("/api/v1/products?q=chair%20002&limit=100", None)
        .await;
    let expected: Vec<String> = bulk(200..=299).collect();
    assert_eq!(r.skus(), expected);
    assert_eq!(r.body["next_cursor"], serde_json::Value::Null);

    // Met in the window, then not for 5,000 products: the rest comes from the index.
    let r = app.get("/api/v1/products?q=zebra", None).await;
    assert_eq!(r.skus(), vec!["BULK-00010", "ZEBRA-1"]);

    // Short needles have no trigrams: the walk goes on past the window.
    let r = app.get("/api/v1/products?q=qx", None).await;
    assert_eq!(r.skus(), vec!["QX-1"]);
}
