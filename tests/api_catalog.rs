//! Black-box tests of the catalog API.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn new_product(sku: &str) -> serde_json::Value {
    json!({ "sku": sku, "name": "Blue mug", "description": "Holds tea", "price": { "amount_minor": 1299, "currency": "EUR" } })
}

#[tokio::test]
async fn an_admin_creates_a_product_and_anyone_can_read_it() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let r = app
        .post("/api/v1/products", Some(&admin), new_product("MUG-1"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        r.headers["location"],
        format!("/api/v1/products/{id}").as_str()
    );
    assert_eq!(
        r.body["price"],
        json!({ "amount_minor": 1299, "currency": "EUR" })
    );
    assert_eq!(r.body["active"], true);
    let got = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, r.body);
    for field in [
        "id",
        "sku",
        "name",
        "description",
        "price",
        "active",
        "created_at",
        "updated_at",
    ] {
        assert!(got.body.get(field).is_some(), "missing {field}");
    }
}

#[tokio::test]
async fn only_admins_may_create_products() {
    let app = spawn_scenario(&[]).await;
    let (_, customer) = app.customer("c@example.com").await;
    app.post("/api/v1/products", None, new_product("A"))
        .await
        .assert_problem(401, "unauthenticated");
    app.post("/api/v1/products", Some(&customer), new_product("A"))
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn skus_are_unique() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    app.product(&admin, "MUG-1", "Mug", 100).await;
    app.post("/api/v1/products", Some(&admin), new_product("MUG-1"))
        .await
        .assert_problem(409, "sku_taken");
}

#[tokio::test]
async fn product_fields_are_validated_together() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/api/v1/products",
            Some(&admin),
            json!({ "sku": "bad sku!", "name": "", "description": "d".repeat(5001), "price": { "amount_minor": -1, "currency": "USD" } }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(
        r.fields(),
        vec![
            "description",
            "name",
            "price.amount_minor",
            "price.currency",
            "sku"
        ]
    );
    let r = app
        .post("/api/v1/products", Some(&admin), json!({ "sku": "x".repeat(65), "name": "n".repeat(201), "price": { "amount_minor": 0, "currency": "EUR" } }))
        .await;
    assert_eq!(r.fields(), vec!["name", "sku"]);
    // Above the documented bound of 10^15 minor units (and up to i64::MAX): 422, never an overflow later.
    for amount in [1_000_000_000_000_001i64, i64::MAX] {
        let r = app
            .post("/api/v1/products", Some(&admin), json!({ "sku": "BIG", "name": "Big", "price": { "amount_minor": amount, "currency": "EUR" } }))
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.fields(), vec!["price.amount_minor"]);
    }
    let r = app
        .post(
            "/api/v1/products",
            Some(&admin),
            json!({ "sku": "A", "name": "N" }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a missing price is a shape error: {}",
        r.body
    );
}

#[tokio::test]
async fn reading_unknown_or_malformed_ids_is_a_clean_4xx() {
    let app = spawn_scenario(&[]).await;
    app.get(&format!("/api/v1/products/{}", uuid::Uuid::now_v7()), None)
        .await
        .assert_problem(404, "not_found");
    app.get("/api/v1/products/not-a-uuid", None)
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn patching_changes_only_the_given_fields() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let p = app.product(&admin, "MUG-1", "Mug", 100).await;
    let id = p["id"].as_str().unwrap_or_default();
    let r = app
        .patch(
            &format!("/api/v1/products/{id}"),
            Some(&admin),
            json!({ "price": { "amount_minor": 250, "currency": "EUR" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["price"]["amount_minor"], 250);
    assert_eq!(r.body["name"], "Mug");
    assert_eq!(r.body["created_at"], p["created_at"]);
    assert_ne!(r.body["updated_at"], p["updated_at"]);
    let r = app
        .patch(
            &format!("/api/v1/products/{id}"),
            Some(&admin),
            json!({ "name": "" }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    let r = app
        .patch(
            &format!("/api/v1/products/{}", uuid::Uuid::now_v7()),
            Some(&admin),
            json!({ "active": false }),
        )
        .await;
    r.assert_problem(404, "not_found");
    let (_, customer) = app.customer("c@example.com").await;
    app.patch(
        &format!("/api/v1/products/{id}"),
        Some(&customer),
        json!({ "active": false }),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch(
        &format!("/api/v1/products/{id}"),
        None,
        json!({ "active": false }),
    )
    .await
    .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn listing_shows_active_products_and_searches_name_and_sku() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    app.product(&admin, "MUG-BLUE", "Blue mug", 100).await;
    app.product(&admin, "TEA-1", "Green tea", 100).await;
    let hidden = app.product(&admin, "MUG-OLD", "Old mug", 100).await;
    let id = hidden["id"].as_str().unwrap_or_default();
    app.patch(
        &format!("/api/v1/products/{id}"),
        Some(&admin),
        json!({ "active": false }),
    )
    .await;

    let all = app.get("/api/v1/products", None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.skus(), vec!["MUG-BLUE", "TEA-1"]);
    assert_eq!(all.body["next_cursor"], serde_json::Value::Null);
    assert_eq!(
        app.get("/api/v1/products?q=MUG", None).await.skus(),
        vec!["MUG-BLUE"]
    );
    assert_eq!(
        app.get("/api/v1/products?q=green", None).await.skus(),
        vec!["TEA-1"]
    );
    assert_eq!(
        app.get("/api/v1/products?q=tea-", None).await.skus(),
        vec!["TEA-1"]
    );
    assert!(
        app.get("/api/v1/products?q=%25", None)
            .await
            .skus()
            .is_empty(),
        "% is not a wildcard"
    );
}

/// Search by words, on both databases and through every topology: what a word is, prefixes, SKUs, the
/// description, ranking, and following changes.
#[tokio::test]
async fn search_matches_words_prefixes_skus_and_descriptions_and_follows_changes() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let mug = app.product(&admin, "MUG-BLUE", "Blue mug", 100).await;
    app.product(&admin, "TEA-1", "Green tea", 100).await;
    app.product(&admin, "SALE-1", "50% \"off\" mug_cup", 100)
        .await;
    app.product(&admin, "CAY-1", "Çay glass", 100).await;
    for i in 0..3 {
        app.product(&admin, &format!("LAMP-{i}"), &format!("Desk lamp {i}"), 100)
            .await;
    }
    let described = app
        .post(
            "/api/v1/products",
            Some(&admin),
            json!({ "sku": "JUG-9", "name": "Milk jug", "description": "Glazed, holds tea for two.",
                    "price": { "amount_minor": 100, "currency": "EUR" } }),
        )
        .await;
    assert_eq!(described.status, StatusCode::CREATED, "{}", described.body);
    let search = |q: &str| {
        let encoded: String = q
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let path = format!("/api/v1/products?q={encoded}");
        let app = &app;
        async move { app.get(&path, None).await.skus() }
    };
    assert_eq!(search("MUG").await, vec!["MUG-BLUE", "SALE-1"]);
    assert_eq!(
        search("\"off\"").await,
        vec!["SALE-1"],
        "quotes are not words"
    );
    assert_eq!(
        search("mug cup").await,
        vec!["SALE-1"],
        "every word, any order"
    );
    assert_eq!(search("cup mug").await, vec!["SALE-1"]);
    assert_eq!(
        search("% \"").await,
        Vec::<String>::new(),
        "no word, no match"
    );
    assert_eq!(
        search("_c").await,
        vec!["SALE-1", "CAY-1"],
        "_ is no wildcard"
    );
    assert_eq!(search("ÇAY").await, vec!["CAY-1"]);
    assert_eq!(
        search("çay gl").await,
        vec!["CAY-1"],
        "the last word a prefix"
    );
    assert_eq!(search("gl ça").await, vec!["CAY-1"], "every word a prefix");
    assert_eq!(
        search("lass").await,
        Vec::<String>::new(),
        "a word's start only"
    );
    assert_eq!(search("des lamp 1").await, vec!["LAMP-1"]);
    assert_eq!(search("ug-bl").await, vec!["MUG-BLUE"], "anywhere in a SKU");
    assert_eq!(search("amp-2").await, vec!["LAMP-2"]);
    // Names and SKUs first, then descriptions.
    assert_eq!(search("tea").await, vec!["TEA-1", "JUG-9"]);
    assert_eq!(search("glazed").await, vec!["JUG-9"]);
    assert_eq!(
        search("milk two").await,
        vec!["JUG-9"],
        "name and description together"
    );

    // A renamed product is found by its new name, and by its old one only where the SKU still holds it.
    let id = mug["id"].as_str().unwrap_or_default();
    let renamed = app
        .patch(
            &format!("/api/v1/products/{id}"),
            Some(&admin),
            json!({ "name": "Navy cup", "description": "Once sold as a bright mug." }),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(search("navy").await, vec!["MUG-BLUE"]);
    assert_eq!(search("cup").await, vec!["MUG-BLUE", "SALE-1"]);
    assert_eq!(
        search("blue mug").await,
        vec!["MUG-BLUE"],
        "the SKU holds both"
    );
    assert_eq!(search("bright").await, vec!["MUG-BLUE"]);
    let description_only = app
        .patch(
            &format!("/api/v1/products/{id}"),
            Some(&admin),
            json!({ "description": "" }),
        )
        .await;
    assert_eq!(description_only.status, StatusCode::OK);
    assert_eq!(search("bright").await, Vec::<String>::new());
    assert_eq!(search("once sold").await, Vec::<String>::new());

    // Search results page like the listing.
    let first = app.get("/api/v1/products?q=lamp&limit=2", None).await;
    assert_eq!(first.skus(), vec!["LAMP-0", "LAMP-1"]);
    let cursor = first.body["next_cursor"].as_str().unwrap_or_default();
    let rest = app
        .get(
            &format!("/api/v1/products?q=lamp&limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest.skus(), vec!["LAMP-2"]);
    assert_eq!(rest.body["next_cursor"], serde_json::Value::Null);
}

#[tokio::test]
async fn listing_pages_with_an_opaque_cursor() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    for i in 0..5 {
        app.product(&admin, &format!("SKU-{i}"), &format!("Item {i}"), 100)
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/products?limit=2".to_string();
    loop {
        let r = app.get(&path, None).await;
        let skus = r.skus();
        assert!(skus.len() <= 2);
        seen.extend(skus);
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/products?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["SKU-0", "SKU-1", "SKU-2", "SKU-3", "SKU-4"]);
    // Every cursor the documented pattern allows is a position: here, before or past every product.
    let start = app
        .get(
            "/api/v1/products?cursor=00000000000000000000000000000000",
            None,
        )
        .await;
    assert_eq!(start.body["items"].as_array().map(Vec::len), Some(5));
    let end = app
        .get(
            "/api/v1/products?cursor=FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::OK, "{}", end.body);
    assert_eq!(end.body["items"], json!([]));
    app.get("/api/v1/products?limit=0", None)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/products?limit=101", None)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/products?limit=abc", None)
        .await
        .assert_problem(400, "bad_request");
    app.get("/api/v1/products?cursor=%21%21", None)
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn control_characters_are_refused_not_stored() {
    let app = spawn_scenario(&[]).await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/api/v1/products",
            Some(&admin),
            json!({ "sku": "A", "name": "nul\u{0}", "description": "nul\u{0}", "price": { "amount_minor": 1, "currency": "EUR" } }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["description", "name"]);
    let ok = app
        .post(
            "/api/v1/products",
            Some(&admin),
            json!({ "sku": "B", "name": "Mug", "description": "two\nlines", "price": { "amount_minor": 1, "currency": "EUR" } }),
        )
        .await;
    assert_eq!(
        ok.status,
        StatusCode::CREATED,
        "line breaks are fine in descriptions: {}",
        ok.body
    );
    // Every control character the schema's pattern forbids, also those Unicode counts as white space (tab,
    // NEL U+0085), which trimming would otherwise remove before the check and answer 200.
    for bad in ["%00", "%09", "%7F", "%C2%85", "mug%C2%85", "%C2%9F"] {
        app.get(&format!("/api/v1/products?q={bad}"), None)
            .await
            .assert_problem(422, "validation_failed");
    }
    // A cursor is 32 hex digits; anything else is refused, never looked up.
    for bad in [
        "AA",
        "",
        "%00",
        "0123456789abcdef0123456789abcdeg",
        "30123456789abcdef0123456789abcdef",
    ] {
        app.get(&format!("/api/v1/products?cursor={bad}"), None)
            .await
            .assert_problem(422, "validation_failed");
    }
}
