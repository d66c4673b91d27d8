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

/// `%text%` for LIKE, with the wildcards in the text escaped.
fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// An FTS5 phrase: with the trigram tokenizer it matches the rows holding `needle` as a substring.
fn fts_phrase(needle: &str) -> String {
    format!("\"{}\"", needle.replace('"', "\"\""))
}

/// How many products, in listing order, a search reads before it asks the trigram index.
const SEARCH_WINDOW: i64 = 250;

/// Active products after `after` (by id, which is creation order for UUID v7) whose search text holds
/// `needle` (already lowercased, as `search_text` is).
///
/// A needle held by many products fills a page within the first products in listing order; one held by
/// few would make that walk read the whole table, and only a trigram index finds it quickly: a GIN index
/// over `search_text` on PostgreSQL (LIKE uses it), the FTS5 table `catalog_products_search` on SQLite.
/// PostgreSQL's planner cannot tell the two apart from a LIKE pattern (it guessed that a word held by one
/// product of a million matched 1 %, walked the table and took 300 ms), so the search decides itself: it
/// reads a window of `SEARCH_WINDOW` products first, and only when that does not fill the page asks the
/// index for what comes after the window. A needle under three characters has no trigrams; it keeps
/// walking.
pub fn list_active(
    conn: &mut DbConn,
    needle: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    // The listing without a search has a static shape: on the backend's own connection its statement is
    // cached by type (see `on_backend!`).
    let Some(needle) = needle else {
        let page = p::catalog_products
            .filter(p::active.eq(true))
            .select(COLUMNS)
            .order(p::id.asc())
            .limit(limit);
        return match after {
            None => shop_kernel::on_backend!(conn, |c| page.load::<ProductRow>(c)),
            Some(after) => {
                let page = page.filter(p::id.gt(after));
                shop_kernel::on_backend!(conn, |c| page.load::<ProductRow>(c))
            }
        };
    };
    let pattern = like_pattern(needle);
    let mut window_end = p::catalog_products
        .filter(p::active.eq(true))
        .select(p::id)
        .order(p::id.asc())
        .offset(SEARCH_WINDOW - 1)
        .limit(1)
        .into_boxed();
    if let Some(after) = after {
        window_end = window_end.filter(p::id.gt(after));
    }
    let window_end: Option<String> = window_end.first(conn).optional()?;
    let mut rows = walking(conn, &pattern, after, window_end.as_deref(), limit)?;
    let Some(window_end) = window_end else {
        // The window reached the last product: nothing is left to look for.
        return Ok(rows);
    };
    let missing = limit - i64::try_from(rows.len()).unwrap_or(limit);
    if missing <= 0 {
        return Ok(rows);
    }
    rows.extend(if needle.chars().count() >= 3 {
        indexed(conn, needle, &pattern, &window_end, missing)?
    } else {
        walking(conn, &pattern, Some(&window_end), None, missing)?
    });
    Ok(rows)
}

/// Matching active products in `(after, upto]`, walking the listing's order.
fn walking(
    conn: &mut DbConn,
    pattern: &str,
    after: Option<&str>,
    upto: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    let mut query = p::catalog_products
        .filter(p::active.eq(true))
        .filter(p::search_text.like(pattern).escape('\\'))
        .select(COLUMNS)
        .order(p::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(p::id.gt(after));
    }
    if let Some(upto) = upto {
        query = query.filter(p::id.le(upto));
    }
    query.load(conn)
}

/// Matching active products after `after`, found through the trigram index.
fn indexed(
    conn: &mut DbConn,
    needle: &str,
    pattern: &str,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    let query = p::catalog_products
        .filter(p::active.eq(true))
        .filter(p::id.gt(after))
        .select(COLUMNS)
        .limit(limit)
        .into_boxed();
    if matches!(conn, DbConn::Sqlite(_)) {
        query
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "catalog_products.rowid IN (SELECT rowid FROM catalog_products_search \
                     WHERE catalog_products_search MATCH ",
                )
                .bind::<diesel::sql_types::Text, _>(fts_phrase(needle))
                .sql(")"),
            )
            .order(p::id.asc())
            .load(conn)
    } else {
        // Ordered by an expression the primary key cannot provide, so that the planner does not walk the
        // table in key order hoping to meet the matches early: it takes them from the GIN index and sorts.
        query
            .filter(p::search_text.like(pattern).escape('\\'))
            .order(p::id.concat("").asc())
            .load(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::{fts_phrase, like_pattern};

    #[test]
    fn search_needles_escape_like_wildcards_and_fts_quotes() {
        assert_eq!(like_pattern("mug"), "%mug%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(fts_phrase("mug"), "\"mug\"");
        assert_eq!(fts_phrase("a \"big\" mug"), "\"a \"\"big\"\" mug\"");
    }
}
