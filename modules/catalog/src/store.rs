//! diesel queries on the catalog's own table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use shop_kernel::db::DbConn;

diesel::table! {
    catalog_products (id) {
        id -> Text,
        sku -> Text,
        name -> Text,
        description -> Text,
        price_minor -> BigInt,
        currency -> Text,
        active -> Bool,
        search_text -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

/// A stored product row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = catalog_products)]
pub struct ProductRow {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

type Columns = (
    catalog_products::id,
    catalog_products::sku,
    catalog_products::name,
    catalog_products::description,
    catalog_products::price_minor,
    catalog_products::currency,
    catalog_products::active,
    catalog_products::created_at,
    catalog_products::updated_at,
);

const COLUMNS: Columns = (
    catalog_products::id,
    catalog_products::sku,
    catalog_products::name,
    catalog_products::description,
    catalog_products::price_minor,
    catalog_products::currency,
    catalog_products::active,
    catalog_products::created_at,
    catalog_products::updated_at,
);

/// What search matches against: name and SKU, lowercased once at write time so that both backends
/// search the same way.
pub fn search_text(name: &str, sku: &str) -> String {
    format!("{} {}", name.to_lowercase(), sku.to_lowercase())
}

pub fn insert(conn: &mut DbConn, row: &ProductRow) -> QueryResult<usize> {
    use catalog_products::dsl as p;
    diesel::insert_into(p::catalog_products)
        .values((
            p::id.eq(&row.id),
            p::sku.eq(&row.sku),
            p::name.eq(&row.name),
            p::description.eq(&row.description),
            p::price_minor.eq(row.price_minor),
            p::currency.eq(&row.currency),
            p::active.eq(row.active),
            p::search_text.eq(search_text(&row.name, &row.sku)),
            p::created_at.eq(row.created_at),
            p::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
}

pub fn update(conn: &mut DbConn, row: &ProductRow) -> QueryResult<usize> {
    use catalog_products::dsl as p;
    diesel::update(p::catalog_products.filter(p::id.eq(&row.id)))
        .set((
            p::name.eq(&row.name),
            p::description.eq(&row.description),
            p::price_minor.eq(row.price_minor),
            p::currency.eq(&row.currency),
            p::active.eq(row.active),
            p::search_text.eq(search_text(&row.name, &row.sku)),
            p::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
}

/// Locks a product's row until the transaction ends (a no-op update: PostgreSQL takes the row lock, SQLite
/// already holds the write lock), so concurrent patches apply one after the other instead of overwriting
/// each other. Returns rows touched (0: no such product).
pub fn lock(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    use catalog_products::dsl as p;
    diesel::update(p::catalog_products.filter(p::id.eq(id)))
        .set(p::updated_at.eq(p::updated_at))
        .execute(conn)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<ProductRow>> {
    use catalog_products::dsl as p;
    p::catalog_products
        .filter(p::id.eq(id))
        .select(COLUMNS)
        .first::<ProductRow>(conn)
        .optional()
}

pub fn by_ids(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    p::catalog_products
        .filter(p::id.eq_any(ids))
        .select(COLUMNS)
        .order(p::id.asc())
        .load::<ProductRow>(conn)
}

/// Active products after `after` (by id, which is creation order for UUID v7), matching `pattern`.
pub fn list_active(
    conn: &mut DbConn,
    pattern: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    let mut query = p::catalog_products
        .filter(p::active.eq(true))
        .select(COLUMNS)
        .order(p::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(pattern) = pattern {
        query = query.filter(p::search_text.like(pattern).escape('\\'));
    }
    if let Some(after) = after {
        query = query.filter(p::id.gt(after));
    }
    query.load::<ProductRow>(conn)
}
