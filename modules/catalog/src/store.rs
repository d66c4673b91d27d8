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
    #[diesel(deserialize_as = shop_kernel::db::StoredTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = shop_kernel::db::StoredTime)]
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
///
/// Walking it is most of what a search for a rare word costs PostgreSQL (pgbench, 10,000 products, generic
/// plans: 13,100 searches/s with 100, 8,200 with 250). A word held by one product in a hundred is missed by
/// the window a third of the time and then comes from the index, every match of it fetched and sorted (10,000
/// rows at a million products, tens of milliseconds); with 250 that happened from one in 250 down.
const SEARCH_WINDOW: i64 = 100;
/// How many more products a search walks when the needle turned up in the window but did not fill the page.
const SEARCH_STRETCH: i64 = 5_000;

/// Active products after `after` (by id, which is creation order for UUID v7) whose search text holds
/// `needle` (already lowercased, as `search_text` is).
///
/// A needle held by many products fills a page within the first products in listing order; one held by
/// few would make that walk read the whole table, and only a trigram index finds it quickly: a GIN index
/// over `search_text` on PostgreSQL (LIKE uses it), the FTS5 table `catalog_products_search` on SQLite.
/// But the index hands over every match, and the page is the first few in listing order: a colour held by
/// one product in sixteen is 60,000 rows to fetch and sort at a million products (450 ms). Neither
/// planner can tell these cases apart from a pattern, so the search decides from what it meets:
///
/// 1. It walks a window of `SEARCH_WINDOW` products in listing order.
/// 2. If the needle turned up there but did not fill the page, it is common enough that walking on finds the
///    rest sooner than the index would: it walks up to `SEARCH_STRETCH` more products.
/// 3. What is still missing (all of it for a needle the window never met) comes from the index, after the
///    products already walked.
///
/// Every walk stops as soon as the page is full. A needle under three characters has no trigrams; it walks.
pub fn list_active(
    conn: &mut DbConn,
    needle: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    // Every id sorts after the empty string: the first page is the page after "".
    let after = after.unwrap_or("");
    let Some(needle) = needle else {
        // A static shape: on the backend's own connection its statement is cached by type (`on_backend!`).
        let page = p::catalog_products
            .filter(p::active.eq(true))
            .filter(p::id.gt(after))
            .select(COLUMNS)
            .order(p::id.asc())
            .limit(limit);
        return shop_kernel::on_backend!(conn, |c| page.load::<ProductRow>(c));
    };
    let pattern = like_pattern(needle);
    let needle = Needle {
        text: needle,
        pattern: &pattern,
    };
    if needle.text.chars().count() < 3 {
        return walk(conn, &needle, after, limit);
    }
    let mut rows = walk_window(conn, &needle, after, SEARCH_WINDOW, limit)?;
    let missing = |rows: &Vec<ProductRow>| limit - i64::try_from(rows.len()).unwrap_or(limit);
    if missing(&rows) <= 0 {
        return Ok(rows);
    }
    if rows.is_empty() {
        // A rare needle: one more statement, which finds the window's end itself.
        return indexed(conn, &needle, after, SEARCH_WINDOW, limit);
    }
    let Some(walked_to) = nth_after(conn, after, SEARCH_WINDOW)? else {
        // The window reached the last product: nothing is left to look for.
        return Ok(rows);
    };
    rows.extend(walk_window(
        conn,
        &needle,
        &walked_to,
        SEARCH_STRETCH,
        missing(&rows),
    )?);
    if missing(&rows) <= 0 {
        return Ok(rows);
    }
    let left = missing(&rows);
    rows.extend(indexed(conn, &needle, &walked_to, SEARCH_STRETCH, left)?);
    Ok(rows)
}

/// A search needle (lowercased): the text (FTS5's phrase is made from it) and its `LIKE` pattern.
struct Needle<'a> {
    text: &'a str,
    pattern: &'a str,
}

/// The id of the `n`th active product after `after` in listing order, if there are that many.
fn nth_after(conn: &mut DbConn, after: &str, n: i64) -> QueryResult<Option<String>> {
    use catalog_products::dsl as p;
    let query = p::catalog_products
        .filter(p::active.eq(true))
        .filter(p::id.gt(after))
        .select(p::id)
        .order(p::id.asc())
        .offset(n - 1)
        .limit(1);
    shop_kernel::on_backend!(conn, |c| query.first::<String>(c).optional())
}

/// Matching active products after `after` in listing order, among the next `products`; see `WindowWalk`.
fn walk_window(
    conn: &mut DbConn,
    needle: &Needle<'_>,
    after: &str,
    products: i64,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    let query = WindowWalk {
        after,
        products,
        pattern: needle.pattern,
        limit,
    };
    shop_kernel::on_backend!(conn, |c| query.load::<ProductRow>(c))
}

/// Matching active products after `after` in listing order, walking on until the page is full.
///
/// PostgreSQL's LIKE escapes with a backslash unless told otherwise; an `ESCAPE '\'` clause would make its
/// cached plan call `like_escape` on the pattern for every row. SQLite has no escape character by default.
fn walk(
    conn: &mut DbConn,
    needle: &Needle<'_>,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    use catalog_products::dsl as p;
    let query = p::catalog_products
        .filter(p::active.eq(true))
        .filter(p::id.gt(after))
        .select(COLUMNS)
        .order(p::id.asc())
        .limit(limit);
    match conn {
        DbConn::Pg(c) => query.filter(p::search_text.like(needle.pattern)).load(c),
        DbConn::Sqlite(c) => query
            .filter(p::search_text.like(needle.pattern).escape('\\'))
            .load(c),
    }
}

/// Matching active products found through the trigram index, after the `skip`th active product after
/// `after` (the end of what was walked); none when there are not that many.
fn indexed(
    conn: &mut DbConn,
    needle: &Needle<'_>,
    after: &str,
    skip: i64,
    limit: i64,
) -> QueryResult<Vec<ProductRow>> {
    let query = IndexedMatches {
        after,
        offset: skip - 1,
        pattern: needle.pattern,
        phrase: fts_phrase(needle.text),
        limit,
    };
    shop_kernel::on_backend!(conn, |c| query.load::<ProductRow>(c))
}

/// `SELECT` of `COLUMNS`' SQL types, for the statements diesel's query builder cannot write.
type RowSql = (
    diesel::sql_types::Text,
    diesel::sql_types::Text,
    diesel::sql_types::Text,
    diesel::sql_types::Text,
    diesel::sql_types::BigInt,
    diesel::sql_types::Text,
    diesel::sql_types::Bool,
    diesel::sql_types::Timestamp,
    diesel::sql_types::Timestamp,
);

const ROW_SQL: &str =
    "id, sku, name, description, price_minor, currency, active, created_at, updated_at";

/// A statement of static shape written by hand: each connection prepares it once (diesel never caches raw
/// SQL), with the binds `walk_ast` pushes.
macro_rules! static_statement {
    ($ty:ident) => {
        impl diesel::query_builder::QueryId for $ty<'_> {
            type QueryId = $ty<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl diesel::query_builder::Query for $ty<'_> {
            type SqlType = RowSql;
        }
        impl<C> RunQueryDsl<C> for $ty<'_> {}
    };
}

/// Matching products among the next `products` after `after`: a subquery bounds the walk, and the walk stops
/// when the page is full, so a common needle reads a few rows, not the window.
struct WindowWalk<'a> {
    after: &'a str,
    products: i64,
    pattern: &'a str,
    limit: i64,
}

static_statement!(WindowWalk);

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for WindowWalk<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        out.push_sql("SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(" FROM (SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(", search_text FROM catalog_products WHERE active = true AND id > ");
        out.push_bind_param::<Text, str>(self.after)?;
        out.push_sql(" ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.products)?;
        out.push_sql(") AS walked WHERE search_text LIKE ");
        out.push_bind_param::<Text, str>(self.pattern)?;
        out.push_sql(" ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        Ok(())
    }
}

/// On SQLite the walk carries only the key and the search text, and the page's rows are read by rowid
/// afterwards: a subquery hands on every column it selects for every row it walks (half the instructions of
/// a rare word's search went to carrying nine columns of a hundred rows that did not match).
impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for WindowWalk<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        out.push_sql("SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(
            " FROM (SELECT seq AS hit FROM (SELECT seq, id, search_text FROM catalog_products \
             WHERE active = 1 AND id > ",
        );
        out.push_bind_param::<Text, str>(self.after)?;
        out.push_sql(" ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.products)?;
        out.push_sql(") WHERE search_text LIKE ");
        out.push_bind_param::<Text, str>(self.pattern)?;
        out.push_sql(" ESCAPE '\\' ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        out.push_sql(
            ") AS walked CROSS JOIN catalog_products ON catalog_products.seq = walked.hit ORDER BY id",
        );
        Ok(())
    }
}

/// The index part: matching products after the `offset + 1`th active product after `after`, which the
/// statement finds itself (a subquery), so that a rare needle costs two statements, not three.
///
/// PostgreSQL orders by an expression the primary key cannot provide, so that its planner does not walk the
/// table in key order hoping to meet the matches early: it takes them from the GIN index and sorts. SQLite
/// is told to start from the FTS5 table (`CROSS JOIN` fixes the join order): without statistics, which
/// nothing gathers on a shop's own SQLite file, its planner walked the whole listing index instead, testing
/// each row against the matches (7.9 million instructions per search at 10,000 products, against 0.5
/// million).
struct IndexedMatches<'a> {
    after: &'a str,
    offset: i64,
    pattern: &'a str,
    phrase: String,
    limit: i64,
}

static_statement!(IndexedMatches);

impl IndexedMatches<'_> {
    /// `id > (the end of what was walked)`; NULL, and so no rows, when fewer products are left.
    fn after_walked<'b, DB: diesel::backend::Backend>(
        &'b self,
        out: &mut diesel::query_builder::AstPass<'_, 'b, DB>,
        active: &str,
    ) -> QueryResult<()>
    where
        str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    {
        use diesel::sql_types::{BigInt, Text};
        out.push_sql(" AND id > (SELECT id FROM catalog_products WHERE active = ");
        out.push_sql(active);
        out.push_sql(" AND id > ");
        out.push_bind_param::<Text, str>(self.after)?;
        out.push_sql(" ORDER BY id LIMIT 1 OFFSET ");
        out.push_bind_param::<BigInt, i64>(&self.offset)?;
        out.push_sql(")");
        Ok(())
    }
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for IndexedMatches<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        out.push_sql("SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(" FROM catalog_products WHERE active = true AND search_text LIKE ");
        out.push_bind_param::<Text, str>(self.pattern)?;
        self.after_walked(&mut out, "true")?;
        out.push_sql(" ORDER BY id || '' LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        Ok(())
    }
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for IndexedMatches<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        out.push_sql("SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(
            " FROM (SELECT rowid AS seq FROM catalog_products_search \
             WHERE catalog_products_search MATCH ",
        );
        out.push_bind_param::<Text, String>(&self.phrase)?;
        out.push_sql(
            ") AS matched CROSS JOIN catalog_products ON catalog_products.seq = matched.seq \
             WHERE active = 1",
        );
        self.after_walked(&mut out, "1")?;
        out.push_sql(" ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        Ok(())
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
