//! `GET /api/v1/products/{id}` as a plain actix-web + diesel server writes it: `web::block`, an r2d2 pool of
//! the size shop uses by default without the ping on checkout (as shop), the row serialised as it is stored.
//! Settings: `DATABASE_URL`, `ADDR` (127.0.0.1:19303), `POOL` (twice the cores, at least 4).

use actix_web::{App, HttpResponse, HttpServer, get, web};
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};

diesel::table! {
    catalog_products (id) {
        id -> Text,
        sku -> Text,
        name -> Text,
        description -> Text,
        price_minor -> BigInt,
        currency -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

#[derive(Queryable, serde::Serialize)]
struct Product {
    id: String,
    sku: String,
    name: String,
    description: String,
    price_minor: i64,
    currency: String,
    active: bool,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

type DbPool = Pool<ConnectionManager<PgConnection>>;

#[get("/api/v1/products/{id}")]
async fn product(pool: web::Data<DbPool>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let row = web::block(move || {
        use catalog_products::dsl as p;
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        p::catalog_products
            .filter(p::id.eq(id))
            .first::<Product>(&mut conn)
            .optional()
            .map_err(|e| e.to_string())
    })
    .await;
    match row {
        Ok(Ok(Some(product))) => HttpResponse::Ok().json(product),
        Ok(Ok(None)) => HttpResponse::NotFound().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| std::io::Error::other("DATABASE_URL is unset"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = std::env::var("POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((cores as u32 * 2).max(4));
    let pool = Pool::builder()
        .max_size(size)
        .test_on_check_out(false)
        .build(ConnectionManager::<PgConnection>::new(url))
        .map_err(std::io::Error::other)?;
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:19303".into());
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(pool.clone()))
            .service(product)
    })
    .bind(addr)?
    .run()
    .await
}
