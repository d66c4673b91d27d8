//! diesel queries on ordering's own tables. Every function takes the connection, so a service can run
//! several in one transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use shop_kernel::db::DbConn;

diesel::table! {
    ordering_orders (id) {
        id -> Text,
        user_id -> Text,
        status -> Text,
        step -> Text,
        total_minor -> BigInt,
        currency -> Text,
        failure -> Nullable<Text>,
        failure_detail -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        request -> Nullable<Text>,
        attempts -> Integer,
        lease_until -> Timestamp,
        driving_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    ordering_order_lines (order_id, position) {
        order_id -> Text,
        position -> Integer,
        product_id -> Text,
        sku -> Text,
        name -> Text,
        unit_price_minor -> BigInt,
        quantity -> BigInt,
        line_total_minor -> BigInt,
    }
}

diesel::joinable!(ordering_order_lines -> ordering_orders (order_id));
diesel::allow_tables_to_appear_in_same_query!(ordering_orders, ordering_order_lines);

/// What the saga does next with an order.
pub mod step {
    /// Hold the stock.
    pub const RESERVE: &str = "reserve";
    /// Charge the wallet.
    pub const CHARGE: &str = "charge";
    /// Turn the held stock into a sale.
    pub const COMMIT: &str = "commit";
    /// Undo what was done (refund, release), then mark the order failed.
    pub const COMPENSATE: &str = "compensate";
    /// Cancel a confirmed order (refund, release), then mark it cancelled.
    pub const CANCEL: &str = "cancel";
    /// Nothing left to do.
    pub const DONE: &str = "done";
}

/// An order row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ordering_orders)]
pub struct OrderRow {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub step: String,
    pub total_minor: i64,
    pub currency: String,
    pub failure: Option<String>,
    pub failure_detail: Option<String>,
    pub idempotency_key: Option<String>,
    pub request: Option<String>,
    pub attempts: i32,
    pub lease_until: NaiveDateTime,
    pub driving_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An order line row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ordering_order_lines)]
pub struct LineRow {
    pub order_id: String,
    pub position: i32,
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i64,
    pub line_total_minor: i64,
}

/// The columns of [`OrderRow`], in its order (the multi-backend connection cannot use `as_select`).
macro_rules! order_columns {
    () => {
        (
            o::id,
            o::user_id,
            o::status,
            o::step,
            o::total_minor,
            o::currency,
            o::failure,
            o::failure_detail,
            o::idempotency_key,
            o::request,
            o::attempts,
            o::lease_until,
            o::driving_until,
            o::created_at,
            o::updated_at,
        )
    };
}

macro_rules! line_columns {
    () => {
        (
            l::order_id,
            l::position,
            l::product_id,
            l::sku,
            l::name,
            l::unit_price_minor,
            l::quantity,
            l::line_total_minor,
        )
    };
}

pub fn insert(conn: &mut DbConn, order: &OrderRow, lines: &[LineRow]) -> QueryResult<()> {
    diesel::insert_into(ordering_orders::table)
        .values(order)
        .execute(conn)?;
    // One statement per line: the two-backend connection has no batch insert (at most 50 lines).
    for line in lines {
        diesel::insert_into(ordering_order_lines::table)
            .values(line)
            .execute(conn)?;
    }
    Ok(())
}

pub fn order(conn: &mut DbConn, id: &str) -> QueryResult<Option<OrderRow>> {
    use ordering_orders::dsl as o;
    o::ordering_orders
        .filter(o::id.eq(id))
        .select(order_columns!())
        .first(conn)
        .optional()
}

pub fn by_key(conn: &mut DbConn, user_id: &str, key: &str) -> QueryResult<Option<OrderRow>> {
    use ordering_orders::dsl as o;
    o::ordering_orders
        .filter(o::user_id.eq(user_id))
        .filter(o::idempotency_key.eq(key))
        .select(order_columns!())
        .first(conn)
        .optional()
}

/// A user's orders, newest first, from before `before` (an id) when given.
pub fn list(
    conn: &mut DbConn,
    user_id: &str,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<OrderRow>> {
    use ordering_orders::dsl as o;
    let mut query = o::ordering_orders
        .filter(o::user_id.eq(user_id))
        .select(order_columns!())
        .order(o::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(o::id.lt(before.to_string()));
    }
    query.load(conn)
}

/// The lines of the given orders, by order and position.
pub fn lines(conn: &mut DbConn, order_ids: &[String]) -> QueryResult<Vec<LineRow>> {
    use ordering_order_lines::dsl as l;
    l::ordering_order_lines
        .filter(l::order_id.eq_any(order_ids))
        .select(line_columns!())
        .order((l::order_id, l::position))
        .load(conn)
}

/// What an advance of the saga writes.
pub struct Advance<'a> {
    pub to_step: &'a str,
    pub status: &'a str,
    pub failure: Option<(&'a str, Option<&'a str>)>,
    /// Until when a request drives the order afterwards (`None`: none does).
    pub driving_until: Option<NaiveDateTime>,
}

/// Moves an order from `from_step` on; false when it is no longer at `from_step` (another driver moved it).
pub fn advance(
    conn: &mut DbConn,
    id: &str,
    from_step: &str,
    to: Advance<'_>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    use ordering_orders::dsl as o;
    let target = o::ordering_orders
        .filter(o::id.eq(id))
        .filter(o::step.eq(from_step));
    let changed = match to.failure {
        Some((code, detail)) => diesel::update(target)
            .set((
                o::step.eq(to.to_step),
                o::status.eq(to.status),
                o::failure.eq(code),
                o::failure_detail.eq(detail),
                o::driving_until.eq(to.driving_until),
                o::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                o::step.eq(to.to_step),
                o::status.eq(to.status),
                o::driving_until.eq(to.driving_until),
                o::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Sets when the order is next due for the recovery task, and until when a request drives it (`None`:
/// no request does).
pub fn set_lease(
    conn: &mut DbConn,
    id: &str,
    until: NaiveDateTime,
    driving_until: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    use ordering_orders::dsl as o;
    diesel::update(o::ordering_orders.filter(o::id.eq(id)))
        .set((o::lease_until.eq(until), o::driving_until.eq(driving_until)))
        .execute(conn)
}

/// Extends a lease this driver holds: from `held` (the lease it wrote) to `until`. False when the lease
/// is no longer `held`: another driver took the order over, or a request moved it.
pub fn renew_lease(
    conn: &mut DbConn,
    id: &str,
    held: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    use ordering_orders::dsl as o;
    diesel::update(
        o::ordering_orders
            .filter(o::id.eq(id))
            .filter(o::lease_until.eq(held)),
    )
    .set(o::lease_until.eq(until))
    .execute(conn)
    .map(|n| n == 1)
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Claims up to `limit` unfinished orders whose lease ended, leasing them until `until` and counting the
/// attempt; one statement. On PostgreSQL orders another instance is claiming are skipped.
pub fn claim_due(
    conn: &mut DbConn,
    now: NaiveDateTime,
    until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let (lock, p) = match conn {
        DbConn::Pg(_) => (" FOR UPDATE SKIP LOCKED", '$'),
        DbConn::Sqlite(_) => ("", '?'),
    };
    let claim = format!(
        "UPDATE ordering_orders SET lease_until = {p}1, attempts = attempts + 1 WHERE id IN \
         (SELECT id FROM ordering_orders WHERE step <> 'done' AND lease_until <= {p}2 \
         ORDER BY lease_until LIMIT {p}3{lock}) RETURNING id"
    );
    Ok(diesel::sql_query(claim)
        .bind::<Timestamp, _>(until)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load::<Claimed>(conn)?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{claim_due, renew_lease};
    use diesel::connection::SimpleConnection;
    use shop_kernel::db::{self, Database};

    /// The recovery leases a batch at once and renews each order's lease before driving it: the renewal
    /// holds only while the lease is still the one this driver wrote, so an order another driver took over
    /// (or a request moved) is left to it.
    #[test]
    fn a_lease_is_renewed_only_by_the_driver_that_holds_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("shop-ordering-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 1)?;
        let mut conn = db.get()?;
        conn.batch_execute(include_str!(
            "../../../migrations/ordering/sqlite/2026-11-26-000600_create_ordering/up.sql"
        ))?;
        conn.batch_execute(
            "INSERT INTO ordering_orders (id, user_id, status, step, total_minor, currency, lease_until, \
             created_at, updated_at) VALUES ('o1', 'u', 'pending', 'charge', 100, 'EUR', \
             '2000-01-01 00:00:00', '2000-01-01 00:00:00', '2000-01-01 00:00:00')",
        )?;
        let now = db::now();
        let minute = chrono::Duration::minutes(1);
        let held = now + minute;
        assert_eq!(claim_due(&mut conn, now, held, 10)?, vec!["o1".to_string()]);
        assert!(
            claim_due(&mut conn, now, held, 10)?.is_empty(),
            "leased: not due"
        );
        let renewed = held + minute;
        assert!(renew_lease(&mut conn, "o1", held, renewed)?);
        assert!(
            !renew_lease(&mut conn, "o1", held, renewed + minute)?,
            "a lease no longer the one this driver wrote is not renewed"
        );
        assert!(
            claim_due(&mut conn, held, held + minute, 10)?.is_empty(),
            "still leased past the first lease's end"
        );
        assert_eq!(
            claim_due(&mut conn, renewed, renewed + minute, 10)?,
            vec!["o1".to_string()]
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
