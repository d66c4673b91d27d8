//! The statements behind a search (`q`): which products hold every word of it, best first.
//!
//! A word of `q` matches a product when it begins one of the product's words (`words::words`), or appears
//! anywhere inside its SKU. Products that hold every word in their title (name or SKU) come first (tier 1),
//! then those that need their description for some word (tier 2); each tier in listing order.
//!
//! Both databases index the words the catalog cut (`words.rs`): PostgreSQL through GIN indexes over
//! `array_to_tsvector` of the stored words, SQLite through two FTS5 tables (title words, all words). The
//! vocabulary (`catalog_search_words`) turns each word of `q` into the stored words it begins, and says how
//! many products hold them:
//!
//! - SQLite's FTS5 hands over matches in rowid order and stops when the page is full, whether the words are
//!   common or rare, as long as each is an exact term (a prefix query gathers every match first: 48 ms for
//!   `chair*` at a million products against 0.1 ms for `chair`); so each word becomes an OR of the words it
//!   begins.
//! - PostgreSQL's GIN index hands over every match at once, to be sorted: fine for rare words (mixed with
//!   common ones too: GIN skips through the common word's list), slow for a word held by a large share of
//!   the products, which walking the listing in id order finds sooner. The counts decide which.

use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, SmallInt, Text, Timestamp};
use shop_kernel::db::DbConn;

use crate::store::{ProductRow, catalog_products, catalog_search_words};

/// Where a page of results starts: after the product `after` (empty: from the start) of `tier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub tier: i16,
    pub after: String,
}

/// Most words of `q` a search uses; the rest are ignored.
pub const MAX_WORDS: usize = 16;
/// Most stored words one word of `q` is expanded into; a word that begins more is matched as a prefix.
const EXPANSION: i64 = 64;
/// Products a walk reads in listing order before it asks the index for the rest.
const WINDOW: i64 = 5_000;

/// One word of `q` against the vocabulary: the stored words it begins (`None`: more than `EXPANSION`,
/// matched as a prefix) and how many products hold one of them in their title and anywhere (an upper
/// bound: a product may hold several).
struct Group {
    word: String,
    terms: Option<Vec<String>>,
    titles: i64,
    products: i64,
}

/// The matching active products from `from` on, best first, at most `limit`, each with its tier.
pub fn search(
    conn: &mut DbConn,
    total: &Total,
    q: &str,
    from: &Position,
    limit: i64,
) -> QueryResult<Vec<(ProductRow, i16)>> {
    let mut seen = std::collections::BTreeSet::new();
    let words: Vec<String> = crate::words::words(q)
        .filter(|w| seen.insert(w.clone()))
        .take(MAX_WORDS)
        .collect();
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let groups = expand(conn, words)?;
    let titles = groups.iter().map(|g| g.titles).min().unwrap_or(0);
    let products = groups.iter().map(|g| g.products).min().unwrap_or(0);
    if products == 0 {
        return Ok(Vec::new());
    }
    // When every product that holds a word holds it in its title, for every word, the second tier is empty:
    // no need to look through all the first tier's matches again to find so (a common word's last page).
    let tiers = Tiers {
        titles,
        products,
        second: groups.iter().any(|g| g.products != g.titles),
    };
    match conn {
        DbConn::Pg(_) => pg_search(conn, total, &groups, from, limit, &tiers),
        DbConn::Sqlite(_) => sqlite_search(conn, &groups, from, limit, &tiers),
    }
}

/// What the counts say of a search's tiers: at most how many products match in the title, and in all, and
/// whether any can be in the second tier.
struct Tiers {
    titles: i64,
    products: i64,
    second: bool,
}

/// Each word with the stored words it begins, and their counts.
fn expand(conn: &mut DbConn, words: Vec<String>) -> QueryResult<Vec<Group>> {
    let found: Vec<Vec<(String, i64, i64)>> = match conn {
        // One statement for every word of the search.
        DbConn::Pg(c) => {
            let (starts, ends): (Vec<String>, Vec<String>) = words
                .iter()
                .map(|w| (w.clone(), format!("{w}{}", char::MAX)))
                .unzip();
            let rows = PgVocabulary {
                starts: &starts,
                ends: &ends,
            }
            .load::<(i64, String, i64, i64)>(c)?;
            let mut found = vec![Vec::new(); words.len()];
            for (i, word, titles, products) in rows {
                if let Some(f) = usize::try_from(i - 1).ok().and_then(|i| found.get_mut(i)) {
                    f.push((word, titles, products));
                }
            }
            found
        }
        // In-process statements: one per word costs little.
        DbConn::Sqlite(c) => {
            use catalog_search_words::dsl as w;
            let mut found = Vec::with_capacity(words.len());
            for word in &words {
                let end = format!("{word}{}", char::MAX);
                found.push(
                    w::catalog_search_words
                        .filter(w::word.ge(word.as_str()))
                        .filter(w::word.lt(end.as_str()))
                        .select((w::word, w::titles, w::products))
                        .order(w::word.asc())
                        .limit(EXPANSION + 1)
                        .load::<(String, i64, i64)>(c)?,
                );
            }
            found
        }
    };
    Ok(words
        .into_iter()
        .zip(found)
        .map(|(word, found)| {
            if found.len() as i64 > EXPANSION {
                // Counted in part only: taken as held by every product (a search walks for it on
                // PostgreSQL), and matched as a prefix.
                return Group {
                    word,
                    terms: None,
                    titles: i64::MAX,
                    products: i64::MAX,
                };
            }
            Group {
                word,
                titles: found.iter().map(|f| f.1).sum(),
                products: found.iter().map(|f| f.2).sum(),
                terms: Some(found.into_iter().map(|f| f.0).collect()),
            }
        })
        .collect())
}

/// How many products the catalog holds (the empty word's count), read at most once a second: it only
/// moves the line between walking and the index, and a common word's search would otherwise spend a
/// statement on it every time.
#[derive(Debug, Default)]
pub struct Total {
    /// The count and when it was read.
    read: std::sync::Mutex<Option<(std::time::Instant, i64)>>,
}

impl Total {
    fn get(&self, conn: &mut DbConn) -> QueryResult<i64> {
        let fresh = |read: &Option<(std::time::Instant, i64)>| {
            read.filter(|(at, _)| at.elapsed() < std::time::Duration::from_secs(1))
                .map(|(_, total)| total)
        };
        if let Some(total) = self.read.lock().ok().and_then(|r| fresh(&r)) {
            return Ok(total);
        }
        use catalog_search_words::dsl as w;
        let query = w::catalog_search_words
            .filter(w::word.eq(""))
            .select(w::products);
        let total =
            shop_kernel::on_backend!(conn, |c| query.first::<i64>(c).optional())?.unwrap_or(0);
        if let Ok(mut read) = self.read.lock() {
            *read = Some((std::time::Instant::now(), total));
        }
        Ok(total)
    }
}

/// A query language: how a term is quoted, how a group's terms are joined (any), how a word is written as a
/// prefix, how groups are joined (all), and the length of the words it matches as prefixes through an index
/// of its own.
struct Syntax {
    quote: char,
    any: &'static str,
    prefix: &'static str,
    all: &'static str,
    indexed_prefix: Option<usize>,
}

const TSQUERY: Syntax = Syntax {
    quote: '\'',
    any: " | ",
    prefix: ":*",
    all: " & ",
    indexed_prefix: None,
};

const FTS5: Syntax = Syntax {
    quote: '"',
    any: " OR ",
    prefix: "*",
    all: " AND ",
    // The FTS5 tables keep a prefix index of three characters (the migration's `prefix = '3'`): a short word
    // that begins many stored words ("red": redwood, reduced...) reads one list in order, not an OR of
    // each (three times slower at 50 of them).
    indexed_prefix: Some(3),
};

/// The groups as a query in `syntax`: every group required, each an OR of the stored words it expanded into
/// or its word as a prefix. Words hold letters and digits only: no quote can be among them.
fn expression(groups: &[Group], syntax: &Syntax) -> String {
    let q = syntax.quote;
    groups
        .iter()
        .map(|g| match &g.terms {
            Some(terms)
                if terms.len() > 1 && syntax.indexed_prefix == Some(g.word.chars().count()) =>
            {
                format!("{q}{}{q}{}", g.word, syntax.prefix)
            }
            Some(terms) => {
                let any: Vec<String> = terms.iter().map(|t| format!("{q}{t}{q}")).collect();
                format!("({})", any.join(syntax.any))
            }
            None => format!("{q}{}{q}{}", g.word, syntax.prefix),
        })
        .collect::<Vec<_>>()
        .join(syntax.all)
}

fn missing(rows: &[(ProductRow, i16)], limit: i64) -> i64 {
    limit - i64::try_from(rows.len()).unwrap_or(limit)
}

// ---------------------------------------------------------------------------------------------- PostgreSQL

/// A word held by at most this many products is always found through the index; above it, the index wins
/// while fetching and sorting its matches (about three times the work of a walked row each) costs less than
/// walking the `limit × total / matches` products a walk expects to read.
const ALWAYS_INDEX: i64 = 200;

fn index_wins(matches: i64, limit: i64, total: i64) -> bool {
    matches <= ALWAYS_INDEX
        || matches.saturating_mul(matches).saturating_mul(3) <= limit.saturating_mul(total)
}

fn pg_search(
    conn: &mut DbConn,
    total: &Total,
    groups: &[Group],
    from: &Position,
    limit: i64,
    tiers: &Tiers,
) -> QueryResult<Vec<(ProductRow, i16)>> {
    let tsquery = expression(groups, &TSQUERY);
    // `' ' || words LIKE '% word%'`: the word begins a stored word (words hold letters and digits only, so no
    // LIKE wildcard can be among them).
    let patterns: Vec<String> = groups.iter().map(|g| format!("% {}%", g.word)).collect();
    let total = if tiers.products <= ALWAYS_INDEX {
        0
    } else {
        total.get(conn)?
    };
    if index_wins(tiers.products, limit, total) {
        // Few matches in all: one statement ranks them all.
        let query = PgRanked {
            tsquery: &tsquery,
            tier: from.tier,
            after: &from.after,
            limit,
        };
        return match conn {
            DbConn::Pg(c) => query.load(c),
            DbConn::Sqlite(_) => Ok(Vec::new()),
        };
    }
    let mut rows = Vec::new();
    if from.tier == 1 && tiers.titles > 0 {
        let plan = if index_wins(tiers.titles, limit, total) {
            Plan::Index
        } else {
            Plan::Walk
        };
        rows = pg_tier::<1>(conn, plan, &tsquery, &patterns, &from.after, limit)?;
    }
    if tiers.second && missing(&rows, limit) > 0 {
        let after = if from.tier == 2 {
            from.after.as_str()
        } else {
            ""
        };
        let more = pg_tier::<2>(
            conn,
            Plan::Walk,
            &tsquery,
            &patterns,
            after,
            missing(&rows, limit),
        )?;
        rows.extend(more);
    }
    Ok(rows)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    Index,
    Walk,
}

/// One tier's matches after `after`: through its index, or walking `WINDOW` products in listing order and
/// asking the index for the rest when the walk did not fill the page.
fn pg_tier<const TIER: i16>(
    conn: &mut DbConn,
    plan: Plan,
    tsquery: &str,
    patterns: &[String],
    after: &str,
    limit: i64,
) -> QueryResult<Vec<(ProductRow, i16)>> {
    let DbConn::Pg(c) = conn else {
        return Ok(Vec::new());
    };
    let tiered = |rows: Vec<ProductRow>| rows.into_iter().map(|r| (r, TIER)).collect::<Vec<_>>();
    let index = |c: &mut diesel::PgConnection, after: &str, limit: i64| {
        PgIndexed::<TIER> {
            tsquery,
            after,
            limit,
        }
        .load::<ProductRow>(c)
        .map(tiered)
    };
    if plan == Plan::Index {
        return index(c, after, limit);
    }
    let mut rows = tiered(
        PgWalk::<TIER> {
            after,
            window: WINDOW,
            patterns,
            limit,
        }
        .load::<ProductRow>(c)?,
    );
    if missing(&rows, limit) <= 0 {
        return Ok(rows);
    }
    let Some(walked_to) = nth_after(conn, after, WINDOW)? else {
        // The walk reached the last product: nothing is left to look for.
        return Ok(rows);
    };
    let left = missing(&rows, limit);
    let DbConn::Pg(c) = conn else {
        return Ok(rows);
    };
    rows.extend(index(c, &walked_to, left)?);
    Ok(rows)
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

// -------------------------------------------------------------------------------------------------- SQLite

fn sqlite_search(
    conn: &mut DbConn,
    groups: &[Group],
    from: &Position,
    limit: i64,
    tiers: &Tiers,
) -> QueryResult<Vec<(ProductRow, i16)>> {
    let DbConn::Sqlite(c) = conn else {
        return Ok(Vec::new());
    };
    let fts = expression(groups, &FTS5);
    // The cursor's product by its place in the FTS5 tables (its rowid); one that does not exist ends the
    // results rather than starting them over.
    let after_seq = if from.after.is_empty() {
        0
    } else {
        SqliteSeqOf { id: &from.after }
            .get_result::<i64>(c)
            .optional()?
            .unwrap_or(i64::MAX)
    };
    let mut rows = Vec::new();
    if from.tier == 1 && tiers.titles > 0 {
        rows = SqliteStream::<1> {
            fts: &fts,
            after: after_seq,
            limit,
        }
        .load::<ProductRow>(c)?
        .into_iter()
        .map(|r| (r, 1))
        .collect();
    }
    if tiers.second && missing(&rows, limit) > 0 {
        let after = if from.tier == 2 { after_seq } else { 0 };
        let more = SqliteStream::<2> {
            fts: &fts,
            after,
            limit: missing(&rows, limit),
        }
        .load::<ProductRow>(c)?;
        rows.extend(more.into_iter().map(|r| (r, 2)));
    }
    Ok(rows)
}

// ------------------------------------------------------------------------------------------ the statements

/// `SELECT` of `store::COLUMNS`' SQL types, for the statements diesel's query builder cannot write.
type RowSql = (
    Text,
    Text,
    Text,
    Text,
    BigInt,
    Text,
    Bool,
    Timestamp,
    Timestamp,
);

const ROW_SQL: &str =
    "id, sku, name, description, price_minor, currency, active, created_at, updated_at";
const QUALIFIED_ROW_SQL: &str = "catalog_products.id, catalog_products.sku, catalog_products.name, \
     catalog_products.description, catalog_products.price_minor, catalog_products.currency, \
     catalog_products.active, catalog_products.created_at, catalog_products.updated_at";

/// A statement of static shape written by hand: each connection prepares it once (diesel never caches raw
/// SQL), with the binds `walk_ast` pushes. One type per SQL text: the cache knows a statement by its type.
macro_rules! static_statement {
    ($ty:ident $(<$tier:ident>)?, $sql:ty) => {
        impl<$(const $tier: i16)?> QueryId for $ty<'_, $($tier)?> {
            type QueryId = $ty<'static, $($tier)?>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl<$(const $tier: i16)?> Query for $ty<'_, $($tier)?> {
            type SqlType = $sql;
        }
        impl<C, $(const $tier: i16)?> RunQueryDsl<C> for $ty<'_, $($tier)?> {}
    };
}

/// PostgreSQL, the vocabulary's words in each range [`starts[i]`, `ends[i]`), at most `EXPANSION + 1` each,
/// with the range's number (from 1), in one statement for every word of a search. Byte order (`C`), as the
/// column's.
struct PgVocabulary<'a> {
    starts: &'a [String],
    ends: &'a [String],
}

static_statement!(PgVocabulary, (BigInt, Text, BigInt, BigInt));

impl QueryFragment<diesel::pg::Pg> for PgVocabulary<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("SELECT q.i, w.word, w.titles, w.products FROM unnest(");
        out.push_bind_param::<Array<Text>, [String]>(self.starts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, [String]>(self.ends)?;
        out.push_sql(
            ") WITH ORDINALITY AS q(first, beyond, i) CROSS JOIN LATERAL (SELECT word, titles, products \
             FROM catalog_search_words WHERE word >= q.first COLLATE \"C\" AND word < q.beyond COLLATE \"C\" \
             ORDER BY word LIMIT ",
        );
        out.push_sql(&(EXPANSION + 1).to_string());
        out.push_sql(") AS w ORDER BY q.i, w.word");
        Ok(())
    }
}

/// The words' tsvectors, as the GIN indexes compute them (the planner matches the expressions).
const PG_TITLE: &str = "array_to_tsvector(string_to_array(title_words, ' '))";
const PG_ALL: &str = "array_to_tsvector(string_to_array(all_words, ' '))";

/// PostgreSQL, few matches: all of them from the all-words index, ranked by tier, from a position.
struct PgRanked<'a> {
    tsquery: &'a str,
    tier: i16,
    after: &'a str,
    limit: i64,
}

static_statement!(PgRanked, (RowSql, SmallInt));

impl QueryFragment<diesel::pg::Pg> for PgRanked<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(", tier FROM (SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(", CASE WHEN ");
        out.push_sql(PG_TITLE);
        out.push_sql(" @@ ");
        out.push_bind_param::<Text, str>(self.tsquery)?;
        out.push_sql("::tsquery THEN 1 ELSE 2 END::smallint AS tier FROM catalog_products WHERE active = true AND ");
        out.push_sql(PG_ALL);
        out.push_sql(" @@ ");
        out.push_bind_param::<Text, str>(self.tsquery)?;
        out.push_sql("::tsquery) AS matched WHERE tier > ");
        out.push_bind_param::<SmallInt, i16>(&self.tier)?;
        out.push_sql(" OR (tier = ");
        out.push_bind_param::<SmallInt, i16>(&self.tier)?;
        out.push_sql(" AND id > ");
        out.push_bind_param::<Text, str>(self.after)?;
        out.push_sql(") ORDER BY tier, id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        Ok(())
    }
}

/// The condition of a tier on PostgreSQL, through the index: tier 1 holds every word in the title, tier 2
/// holds them all only with the description.
fn pg_tier_condition<'b>(
    tier: i16,
    tsquery: &'b str,
    out: &mut AstPass<'_, 'b, diesel::pg::Pg>,
) -> QueryResult<()> {
    if tier == 1 {
        out.push_sql(PG_TITLE);
        out.push_sql(" @@ ");
        out.push_bind_param::<Text, str>(tsquery)?;
        out.push_sql("::tsquery");
    } else {
        out.push_sql(PG_ALL);
        out.push_sql(" @@ ");
        out.push_bind_param::<Text, str>(tsquery)?;
        out.push_sql("::tsquery AND NOT ");
        out.push_sql(PG_TITLE);
        out.push_sql(" @@ ");
        out.push_bind_param::<Text, str>(tsquery)?;
        out.push_sql("::tsquery");
    }
    Ok(())
}

/// PostgreSQL, one tier through its index after `after`. It orders by an expression the primary key
/// cannot provide, so that the planner does not walk the table in key order hoping to meet the matches
/// early (measured: 1.2 s at a million products for a rare word): it takes them from the GIN index and sorts.
struct PgIndexed<'a, const TIER: i16> {
    tsquery: &'a str,
    after: &'a str,
    limit: i64,
}

static_statement!(PgIndexed<TIER>, RowSql);

impl<const TIER: i16> QueryFragment<diesel::pg::Pg> for PgIndexed<'_, TIER> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(" FROM catalog_products WHERE active = true AND ");
        pg_tier_condition(TIER, self.tsquery, &mut out)?;
        out.push_sql(" AND id > ");
        out.push_bind_param::<Text, str>(self.after)?;
        out.push_sql(" ORDER BY id || '' LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        Ok(())
    }
}

/// PostgreSQL, one tier walking the next `window` products in listing order; the walk stops when the page
/// is full, so a common word reads a few rows, not the window. Each row is tested with LIKE on its stored
/// words, which costs less per row than building its tsvector.
struct PgWalk<'a, const TIER: i16> {
    after: &'a str,
    window: i64,
    patterns: &'a [String],
    limit: i64,
}

static_statement!(PgWalk<TIER>, RowSql);

impl<const TIER: i16> QueryFragment<diesel::pg::Pg> for PgWalk<'_, TIER> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(" FROM (SELECT ");
        out.push_sql(ROW_SQL);
        out.push_sql(
            ", title_words, all_words FROM catalog_products WHERE active = true AND id > ",
        );
        out.push_bind_param::<Text, str>(self.after)?;
        out.push_sql(" ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.window)?;
        out.push_sql(") AS walked WHERE ");
        if TIER == 1 {
            out.push_sql("' ' || title_words LIKE ALL (");
            out.push_bind_param::<Array<Text>, [String]>(self.patterns)?;
            out.push_sql(")");
        } else {
            out.push_sql("' ' || all_words LIKE ALL (");
            out.push_bind_param::<Array<Text>, [String]>(self.patterns)?;
            out.push_sql(") AND NOT (' ' || title_words LIKE ALL (");
            out.push_bind_param::<Array<Text>, [String]>(self.patterns)?;
            out.push_sql("))");
        }
        out.push_sql(" ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        Ok(())
    }
}

/// SQLite, the place of a product in the FTS5 tables (its `seq`, their rowid).
struct SqliteSeqOf<'a> {
    id: &'a str,
}

static_statement!(SqliteSeqOf, BigInt);

impl QueryFragment<diesel::sqlite::Sqlite> for SqliteSeqOf<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::sqlite::Sqlite>) -> QueryResult<()> {
        out.push_sql("SELECT seq FROM catalog_products WHERE id = ");
        out.push_bind_param::<Text, str>(self.id)?;
        Ok(())
    }
}

/// SQLite, one tier's matches after rowid `after`, in rowid order, from its FTS5 table: FTS5 drives (`CROSS
/// JOIN` fixes the order) and stops when the page is full. Tier 2 leaves out, row by row, what the title
/// table matches (a lookup by rowid).
struct SqliteStream<'a, const TIER: i16> {
    fts: &'a str,
    after: i64,
    limit: i64,
}

static_statement!(SqliteStream<TIER>, RowSql);

impl<const TIER: i16> QueryFragment<diesel::sqlite::Sqlite> for SqliteStream<'_, TIER> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::sqlite::Sqlite>) -> QueryResult<()> {
        let table = if TIER == 1 {
            "catalog_title_words"
        } else {
            "catalog_all_words"
        };
        out.push_sql("SELECT ");
        out.push_sql(QUALIFIED_ROW_SQL);
        out.push_sql(" FROM ");
        out.push_sql(table);
        out.push_sql(" CROSS JOIN catalog_products ON catalog_products.seq = ");
        out.push_sql(table);
        out.push_sql(".rowid WHERE ");
        out.push_sql(table);
        out.push_sql(" MATCH ");
        out.push_bind_param::<Text, str>(self.fts)?;
        out.push_sql(" AND ");
        out.push_sql(table);
        out.push_sql(".rowid > ");
        out.push_bind_param::<BigInt, i64>(&self.after)?;
        out.push_sql(" AND catalog_products.active = 1");
        if TIER == 2 {
            out.push_sql(
                " AND NOT EXISTS (SELECT 1 FROM catalog_title_words WHERE catalog_title_words MATCH ",
            );
            out.push_bind_param::<Text, str>(self.fts)?;
            out.push_sql(" AND catalog_title_words.rowid = catalog_all_words.rowid)");
        }
        out.push_sql(" ORDER BY ");
        out.push_sql(table);
        out.push_sql(".rowid LIMIT ");
        out.push_bind_param::<BigInt, i64>(&self.limit)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{FTS5, Group, TSQUERY, expression, index_wins};

    #[test]
    fn groups_become_an_and_of_ors_or_a_prefix() {
        let groups = [
            Group {
                word: "chai".into(),
                terms: Some(vec!["chair".into(), "chairs".into()]),
                titles: 2,
                products: 2,
            },
            Group {
                word: "4".into(),
                terms: None,
                titles: 65,
                products: 65,
            },
        ];
        assert_eq!(
            expression(&groups, &TSQUERY),
            "('chair' | 'chairs') & '4':*"
        );
        assert_eq!(
            expression(&groups, &FTS5),
            "(\"chair\" OR \"chairs\") AND \"4\"*"
        );
        let short = [Group {
            word: "red".into(),
            terms: Some(vec!["red".into(), "redwood".into()]),
            titles: 2,
            products: 2,
        }];
        assert_eq!(expression(&short, &TSQUERY), "('red' | 'redwood')");
        assert_eq!(expression(&short, &FTS5), "\"red\"*", "the prefix index");
    }

    #[test]
    fn the_index_wins_for_rare_words_and_walking_for_common_ones() {
        assert!(index_wins(1, 21, 1_000_000));
        assert!(index_wins(200, 21, 10_000));
        assert!(index_wins(2_000, 21, 1_000_000));
        assert!(!index_wins(62_500, 21, 1_000_000), "one product in 16");
        assert!(!index_wins(625, 21, 10_000), "one product in 16");
    }
}
