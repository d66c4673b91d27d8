//! Search over a catalog larger than what a search walks before it asks the index
//! (`shop_catalog::search`: 5,000 products on PostgreSQL when a word is common): rare words through the index,
//! common ones while walking, words that begin many stored words as prefixes, both tiers (title, then
//! description) in one result, and pages joining up across walks, index and tiers. The bulk rows are written
//! straight into the table, as an import or an upgrade from substring search leaves them: the catalog cuts
//! their words in the background, which this also proves.

mod common;

use common::*;
use diesel::connection::SimpleConnection;
use serde_json::json;

/// 10,400 active products inserted in bulk, without words, with ids that sort before any the API makes.
/// Product 10 is the only zebra among them; products 1–1,000 are red.
fn seed_bulk(url: &str) {
    let db = shop_kernel::db::Database::connect(url, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = db.get().unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<String> = (1..=BULK)
        .map(|n| {
            let name = format!("Bench {} chair {n:05}", colour(n));
            format!(
                "('00000000-0000-7000-8000-{n:012x}', 'BULK-{n:05}', '{name}', '', 100, 'EUR', TRUE, \
                 '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        })
        .collect();
    conn.batch_execute(&format!(
        "INSERT INTO catalog_products (id, sku, name, description, price_minor, currency, active, \
         created_at, updated_at) VALUES {}",
        rows.join(",")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

const BULK: usize = 10_400;

fn colour(n: usize) -> &'static str {
    match n {
        10 => "zebra",
        1..=1000 => "red",
        _ => ["blue", "green", "oak"][n % 3],
    }
}

fn bulk(n: usize) -> String {
    format!("BULK-{n:05}")
}

/// Every SKU of a search, following `next_cursor` to the end with pages of `limit`.
async fn every_page(app: &TestApp, q: &str, limit: u32) -> (Vec<String>, usize) {
    let (mut skus, mut pages, mut cursor) = (Vec::new(), 0, String::new());
    loop {
        let path = if cursor.is_empty() {
            format!("/api/v1/products?q={q}&limit={limit}")
        } else {
            format!("/api/v1/products?q={q}&limit={limit}&cursor={cursor}")
        };
        let page = app.get(&path, None).await;
        assert_eq!(page.status.as_u16(), 200, "{path}: {}", page.body);
        skus.extend(page.skus());
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return (skus, pages),
        }
        assert!(pages < 1000, "{q}: the cursor does not advance");
    }
}

#[tokio::test]
async fn search_finds_rare_common_and_mixed_words_across_walks_index_and_tiers() {
    let app = spawn_app().await;
    let url = app.db.as_ref().map(|d| d.url.clone()).unwrap_or_default();
    seed_bulk(&url);
    let admin = app.admin_token().await;
    // Made through the API after the bulk rows: their ids come after all 10,400, past every walk.
    app.product(&admin, "TEAPOT-1", "Rare teapot", 100).await;
    app.product(&admin, "TEAPOT-2", "Another rare teapot", 100)
        .await;
    app.product(&admin, "QX-1", "qx kettle", 100).await;
    app.product(&admin, "ZEBRA-1", "Zebra mug", 100).await;
    app.product(&admin, "RED-1", "Red kettle", 100).await;
    app.product(&admin, "REDWOOD-1", "Redwood stool", 100).await;
    for (sku, description) in [
        ("STOOL-1", "Sits like a chair, stores like a box."),
        ("RUG-1", "Striped like a zebra."),
        ("RUG-2", "Zebra stripes."),
    ] {
        let r = app
            .post(
                "/api/v1/products",
                Some(&admin),
                json!({ "sku": sku, "name": "Plain thing", "description": description,
                        "price": { "amount_minor": 100, "currency": "EUR" } }),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    }

    // The bulk rows are found once the catalog has cut their words, in the background, in id order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while app.get("/api/v1/products?q=10400", None).await.skus() != [bulk(BULK)] {
        assert!(
            std::time::Instant::now() < deadline,
            "the bulk rows were never indexed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Rare, in the title and in descriptions: names first, then descriptions, each oldest first; a page
    // boundary inside the second tier carries on in it.
    let (skus, pages) = every_page(&app, "zebra", 3).await;
    assert_eq!(skus, [bulk(10).as_str(), "ZEBRA-1", "RUG-1", "RUG-2"]);
    assert_eq!(pages, 2);
    let first = app.get("/api/v1/products?q=zebra&limit=3", None).await;
    let cursor = first.body["next_cursor"].as_str().unwrap_or_default();
    assert!(
        cursor.len() == 33 && cursor.starts_with('2'),
        "a second-tier cursor: {cursor}"
    );
    // The listing, given it, goes on after the product it names: every cursor the pattern allows is a place.
    let listed = app
        .get(&format!("/api/v1/products?cursor={cursor}&limit=1"), None)
        .await;
    assert_eq!(listed.skus(), ["RUG-2"], "{}", listed.body);

    // Rare and paged one at a time.
    let (skus, _) = every_page(&app, "teapot", 1).await;
    assert_eq!(skus, ["TEAPOT-1", "TEAPOT-2"]);

    // Common: the walk fills the page, in listing order.
    let r = app
        .get("/api/v1/products?q=oak%20chair&limit=3", None)
        .await;
    assert_eq!(r.skus(), [bulk(1001), bulk(1004), bulk(1007)]);

    // Common, then nothing for thousands of products: the walk gives way to the index for the rest. "red"
    // begins two stored words (red, redwood): SQLite reads them through its prefix index.
    let mut red: Vec<String> = (1..=1000).filter(|n| *n != 10).map(bulk).collect();
    red.extend(["RED-1".to_string(), "REDWOOD-1".to_string()]);
    assert_eq!(every_page(&app, "red", 100).await.0, red);
    assert_eq!(
        every_page(&app, "RE", 100).await.0,
        red,
        "a prefix, any case"
    );

    // A common word with one held anywhere inside the SKUs: more stored words begin with "001" than a word
    // is expanded into, so it is matched as a prefix.
    let expected: Vec<String> = (1..=BULK)
        .filter(|n| format!("{n:05}").contains("001"))
        .map(bulk)
        .collect();
    assert_eq!(every_page(&app, "chair%20001", 60).await.0, expected);

    // Every product has a chair in its name but one, which has it in its description: it comes last.
    let (chairs, _) = every_page(&app, "chair", 100).await;
    assert_eq!(chairs.len(), BULK + 1);
    assert_eq!(chairs.last().map(String::as_str), Some("STOOL-1"));
    assert_eq!(chairs[..BULK], (1..=BULK).map(bulk).collect::<Vec<_>>()[..]);

    // Short words, and a word of one SKU.
    assert_eq!(every_page(&app, "qx", 20).await.0, ["QX-1"]);
    assert_eq!(every_page(&app, "x", 20).await.0, ["QX-1"]);
    assert_eq!(every_page(&app, "04817", 20).await.0, [bulk(4817)]);
    assert_eq!(every_page(&app, "4817", 20).await.0, [bulk(4817)]);
    assert_eq!(every_page(&app, "BULK-4817", 20).await.0, [bulk(4817)]);
    assert_eq!(every_page(&app, "99999", 20).await.0, Vec::<String>::new());
}
