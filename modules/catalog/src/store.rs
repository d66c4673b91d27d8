//! diesel queries on the catalog's own table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use shop_kernel::db::DbConn;

use crate::words::{Indexed, VERSION, count_changes};

diesel::table! {
    catalog_products (id) {
        id -> Text,
        sku -> Text,
        name -> Text,
        description -> Text,
        price_minor -> BigInt,
        currency -> Text,
        active -> Bool,
        title_words -> Text,
        all_words -> Text,
        words_version -> SmallInt,
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
    #[diesel(deserialize_as = shop_kernel::db::StoredTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = shop_kernel::db::StoredTime)]
    pub updated_at: NaiveDateTime,
}

pub(crate) type Columns = (
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

pub(crate) const COLUMNS: Columns = (
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

/// Stores a new product, its words and their counts.
pub fn insert(conn: &mut DbConn, row: &ProductRow) -> QueryResult<usize> {
    use catalog_products::dsl as p;
    let words = Indexed::of(&row.name, &row.sku, &row.description);
    let inserted = diesel::insert_into(p::catalog_products)
        .values((
            p::id.eq(&row.id),
            p::sku.eq(&row.sku),
            p::name.eq(&row.name),
            p::description.eq(&row.description),
            p::price_minor.eq(row.price_minor),
            p::currency.eq(&row.currency),
            p::active.eq(row.active),
            p::title_words.eq(Indexed::joined(&words.title)),
            p::all_words.eq(Indexed::joined(&words.all)),
            p::words_version.eq(VERSION),
            p::created_at.eq(row.created_at),
            p::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    count(conn, &count_changes(None, Some(&words)))?;
    Ok(inserted)
}

/// Stores a product's new state, its words and the change in their counts; `old` is the state it replaces.
pub fn update(conn: &mut DbConn, old: &ProductRow, row: &ProductRow) -> QueryResult<usize> {
    use catalog_products::dsl as p;
    let words = Indexed::of(&row.name, &row.sku, &row.description);
    // A row indexed under an older `VERSION` has no words counted yet.
    let counted = p::catalog_products
        .filter(p::id.eq(&row.id))
        .select(p::words_version)
        .first::<i16>(conn)?
        == VERSION;
    let before = counted.then(|| Indexed::of(&old.name, &old.sku, &old.description));
    let updated = diesel::update(p::catalog_products.filter(p::id.eq(&row.id)))
        .set((
            p::name.eq(&row.name),
            p::description.eq(&row.description),
            p::price_minor.eq(row.price_minor),
            p::currency.eq(&row.currency),
            p::active.eq(row.active),
            p::title_words.eq(Indexed::joined(&words.title)),
            p::all_words.eq(Indexed::joined(&words.all)),
            p::words_version.eq(VERSION),
            p::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    count(conn, &count_changes(before.as_ref(), Some(&words)))?;
    Ok(updated)
}

diesel::table! {
    /// Every word some product holds, with how many products hold it in their title (name and SKU) and
    /// anywhere; the empty word counts the products. Search expands a word's prefix into the words here and
    /// decides from the counts whether to walk the listing or ask the index.
    catalog_search_words (word) {
        word -> Text,
        titles -> BigInt,
        products -> BigInt,
    }
}

/// Applies count changes (from `count_changes`, in byte order: every writer locks the rows in one order)
/// and forgets words no product holds any more.
fn count(conn: &mut DbConn, changes: &[(String, i64, i64)]) -> QueryResult<()> {
    use catalog_search_words::dsl as w;
    use diesel::upsert::excluded;
    for (word, titles, products) in changes {
        let values = (
            w::word.eq(word),
            w::titles.eq(titles),
            w::products.eq(products),
        );
        let upsert = diesel::insert_into(w::catalog_search_words)
            .values(values)
            .on_conflict(w::word)
            .do_update()
            .set((
                w::titles.eq(w::titles + excluded(w::titles)),
                w::products.eq(w::products + excluded(w::products)),
            ));
        shop_kernel::on_backend!(conn, |c| upsert.execute(c))?;
        if *products < 0 {
            diesel::delete(
                w::catalog_search_words
                    .filter(w::word.eq(word))
                    .filter(w::products.le(0)),
            )
            .execute(conn)?;
        }
    }
    Ok(())
}

/// The rows whose words were cut under an older `VERSION`: the predicate of the migrations' partial index
/// `catalog_products_stale_words`, which a bump of `VERSION` recreates with this.
const STALE: &str = "words_version < 1";

/// Indexes up to `batch` products whose words were cut under an older `VERSION` (or never, as rows from
/// before word search); returns how many it indexed.
pub fn index_stale(conn: &mut DbConn, batch: i64) -> QueryResult<usize> {
    use catalog_products::dsl as p;
    let stale: Vec<(String, String, String, String)> = p::catalog_products
        // A literal, the partial index's own predicate: with a bound parameter SQLite never uses a partial
        // index and this would read the whole table at every tick.
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(STALE))
        .select((p::id, p::name, p::sku, p::description))
        .order(p::id.asc())
        .limit(batch)
        .load(conn)?;
    let mut changes: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (id, name, sku, description) in &stale {
        let words = Indexed::of(name, sku, description);
        diesel::update(p::catalog_products.filter(p::id.eq(id)))
            .set((
                p::title_words.eq(Indexed::joined(&words.title)),
                p::all_words.eq(Indexed::joined(&words.all)),
                p::words_version.eq(VERSION),
            ))
            .execute(conn)?;
        for (word, titles, products) in count_changes(None, Some(&words)) {
            let entry = changes.entry(word).or_default();
            entry.0 += titles;
            entry.1 += products;
        }
    }
    let changes: Vec<(String, i64, i64)> = changes
        .into_iter()
        .map(|(word, (titles, products))| (word, titles, products))
        .collect();
    count(conn, &changes)?;
    Ok(stale.len())
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
    let query = p::catalog_products.filter(p::id.eq(id)).select(COLUMNS);
    shop_kernel::on_backend!(conn, |c| query.first::<ProductRow>(c).optional())
}

pub fn by_ids(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    p::catalog_products
        .filter(p::id.eq_any(ids))
        .select(COLUMNS)
        .order(p::id.asc())
        .load::<ProductRow>(conn)
}

/// Active products after `after` (by id, which is creation order for UUID v7), in listing order.
pub fn list_active(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    // Every id sorts after the empty string: the first page is the page after "".
    let after = after.unwrap_or("");
    // A static shape: on the backend's own connection its statement is cached by type (`on_backend!`).
    let page = p::catalog_products
        .filter(p::active.eq(true))
        .filter(p::id.gt(after))
        .select(COLUMNS)
        .order(p::id.asc())
        .limit(limit);
    shop_kernel::on_backend!(conn, |c| page.load::<ProductRow>(c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stale_predicate_follows_the_version() {
        assert_eq!(super::STALE, format!("words_version < {}", super::VERSION));
    }
}
