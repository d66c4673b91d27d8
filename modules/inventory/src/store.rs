//! diesel queries on inventory's own tables. Every function takes the connection, so a service can run
//! several in one transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use shop_kernel::db::DbConn;

use crate::api::ReservationStatus;

diesel::table! {
    inventory_stock (sku) {
        sku -> Text,
        on_hand -> BigInt,
        reserved -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    inventory_reservations (order_id) {
        order_id -> Text,
        status -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    inventory_reservation_lines (order_id, sku) {
        order_id -> Text,
        sku -> Text,
        quantity -> BigInt,
    }
}

diesel::table! {
    inventory_adjustments (id) {
        id -> Text,
        sku -> Text,
        delta -> BigInt,
        reason -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

/// A stock row: (sku, on_hand, reserved).
pub type StockRow = (String, i64, i64);

/// A reservation header: (status, expires_at).
pub type ReservationRow = (ReservationStatus, NaiveDateTime);

pub fn stock(conn: &mut DbConn, sku: &str) -> QueryResult<Option<StockRow>> {
    use inventory_stock::dsl as s;
    let query = s::inventory_stock
        .filter(s::sku.eq(sku))
        .select((s::sku, s::on_hand, s::reserved));
    shop_kernel::on_backend!(conn, |c| query.first(c).optional())
}

/// Sets on hand unless that would fall below reserved; returns rows changed (0: missing or below).
pub fn set_on_hand(
    conn: &mut DbConn,
    sku: &str,
    on_hand: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use inventory_stock::dsl as s;
    diesel::update(
        s::inventory_stock
            .filter(s::sku.eq(sku))
            .filter(s::reserved.le(on_hand)),
    )
    .set((s::on_hand.eq(on_hand), s::updated_at.eq(now)))
    .execute(conn)
}

pub fn insert_stock(
    conn: &mut DbConn,
    sku: &str,
    on_hand: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use inventory_stock::dsl as s;
    diesel::insert_into(s::inventory_stock)
        .values((
            s::sku.eq(sku),
            s::on_hand.eq(on_hand),
            s::reserved.eq(0i64),
            s::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Adds `delta` to on hand if available stays non-negative; returns rows changed.
pub fn add_on_hand(
    conn: &mut DbConn,
    sku: &str,
    delta: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use inventory_stock::dsl as s;
    diesel::update(
        s::inventory_stock
            .filter(s::sku.eq(sku))
            .filter((s::on_hand + delta).ge(s::reserved)),
    )
    .set((s::on_hand.eq(s::on_hand + delta), s::updated_at.eq(now)))
    .execute(conn)
}

/// Holds `quantity` units if that many are available; returns rows changed.
pub fn hold(conn: &mut DbConn, sku: &str, quantity: i64, now: NaiveDateTime) -> QueryResult<usize> {
    use inventory_stock::dsl as s;
    diesel::update(
        s::inventory_stock
            .filter(s::sku.eq(sku))
            .filter((s::on_hand - s::reserved).ge(quantity)),
    )
    .set((
        s::reserved.eq(s::reserved + quantity),
        s::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Stops holding `quantity` units.
pub fn unhold(
    conn: &mut DbConn,
    sku: &str,
    quantity: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use inventory_stock::dsl as s;
    diesel::update(s::inventory_stock.filter(s::sku.eq(sku)))
        .set((
            s::reserved.eq(s::reserved - quantity),
            s::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Held units leave the warehouse: both on hand and reserved drop.
pub fn ship(conn: &mut DbConn, sku: &str, quantity: i64, now: NaiveDateTime) -> QueryResult<usize> {
    use inventory_stock::dsl as s;
    diesel::update(s::inventory_stock.filter(s::sku.eq(sku)))
        .set((
            s::on_hand.eq(s::on_hand - quantity),
            s::reserved.eq(s::reserved - quantity),
            s::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Shipped units come back (a confirmed order was cancelled).
pub fn restock(
    conn: &mut DbConn,
    sku: &str,
    quantity: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use inventory_stock::dsl as s;
    diesel::update(s::inventory_stock.filter(s::sku.eq(sku)))
        .set((s::on_hand.eq(s::on_hand + quantity), s::updated_at.eq(now)))
        .execute(conn)
}

pub fn insert_adjustment(
    conn: &mut DbConn,
    sku: &str,
    delta: i64,
    reason: &str,
    created_by: Option<String>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use inventory_adjustments::dsl as a;
    diesel::insert_into(a::inventory_adjustments)
        .values((
            a::id.eq(uuid::Uuid::now_v7().to_string()),
            a::sku.eq(sku),
            a::delta.eq(delta),
            a::reason.eq(reason),
            a::created_by.eq(created_by),
            a::created_at.eq(now),
        ))
        .execute(conn)
}

pub fn reservation(conn: &mut DbConn, order_id: &str) -> QueryResult<Option<ReservationRow>> {
    use inventory_reservations::dsl as r;
    let row: Option<(String, NaiveDateTime)> = r::inventory_reservations
        .filter(r::order_id.eq(order_id))
        .select((r::status, r::expires_at))
        .first(conn)
        .optional()?;
    row.map(|(status, expires_at)| {
        ReservationStatus::parse(&status)
            .map(|s| (s, expires_at))
            .ok_or_else(|| {
                diesel::result::Error::DeserializationError(
                    format!("unknown reservation status {status}").into(),
                )
            })
    })
    .transpose()
}

/// The reservation's lines as (sku, quantity), sorted by the SKUs' bytes.
///
/// Sorted here, not with `ORDER BY sku`: PostgreSQL orders text by the database's collation (`B-1` before
/// `a-1` in C, after it in en-US), while a reserve sorts its lines by bytes. One order everywhere keeps a
/// retried reserve equal to the stored one and has every transaction lock stock rows in the same order.
pub fn reservation_lines(conn: &mut DbConn, order_id: &str) -> QueryResult<Vec<(String, i64)>> {
    use inventory_reservation_lines::dsl as l;
    let mut lines: Vec<(String, i64)> = l::inventory_reservation_lines
        .filter(l::order_id.eq(order_id))
        .select((l::sku, l::quantity))
        .load(conn)?;
    lines.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(lines)
}

/// Writes a reservation and its lines unless the order has one already; false when it had (nothing is
/// written). On PostgreSQL a concurrent first insert of the same order makes this wait for that transaction.
pub fn insert_reservation(
    conn: &mut DbConn,
    order_id: &str,
    status: ReservationStatus,
    lines: &[(String, i64)],
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    use diesel::sql_types::{Text, Timestamp};
    use inventory_reservation_lines::dsl as l;
    let insert = "INSERT INTO inventory_reservations (order_id, status, expires_at, created_at, updated_at) \
                  VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING";
    let insert = match conn {
        DbConn::Pg(_) => insert.to_string(),
        DbConn::Sqlite(_) => insert.replace('$', "?"),
    };
    let inserted = diesel::sql_query(insert)
        .bind::<Text, _>(order_id)
        .bind::<Text, _>(status.as_str())
        .bind::<Timestamp, _>(expires_at)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .execute(conn)?;
    if inserted == 0 {
        return Ok(false);
    }
    for (sku, quantity) in lines {
        diesel::insert_into(l::inventory_reservation_lines)
            .values((
                l::order_id.eq(order_id),
                l::sku.eq(sku),
                l::quantity.eq(quantity),
            ))
            .execute(conn)?;
    }
    Ok(true)
}

/// Locks a reservation's row until the transaction ends (a no-op update: PostgreSQL takes the row lock,
/// SQLite already holds the database write lock), so concurrent commit, release and expiry of one order
/// take turns. Returns rows touched (0: no such reservation yet).
pub fn lock_reservation(conn: &mut DbConn, order_id: &str) -> QueryResult<usize> {
    use inventory_reservations::dsl as r;
    diesel::update(r::inventory_reservations.filter(r::order_id.eq(order_id)))
        .set(r::updated_at.eq(r::updated_at))
        .execute(conn)
}

/// Moves a reservation from one status to another; returns rows changed (0: it was not in `from`).
pub fn transition(
    conn: &mut DbConn,
    order_id: &str,
    from: ReservationStatus,
    to: ReservationStatus,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use inventory_reservations::dsl as r;
    diesel::update(
        r::inventory_reservations
            .filter(r::order_id.eq(order_id))
            .filter(r::status.eq(from.as_str())),
    )
    .set((r::status.eq(to.as_str()), r::updated_at.eq(now)))
    .execute(conn)
}

/// `status = 'held'` written into the SQL, not bound: plans here do not depend on bound values (PostgreSQL's
/// generic plans, SQLite's planner stability guarantee), so only a literal lets the partial index
/// `inventory_reservations_held_expiry` (`WHERE status = 'held'`) serve the sweep; with a bound value every
/// sweep read and sorted all reservations. Tested below on SQLite; `tests/plans.rs` shows both backends.
const HELD_SQL: &str = "status = 'held'";

/// Held reservations whose time is up, oldest first.
pub fn expired_holds(
    conn: &mut DbConn,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<String>> {
    use inventory_reservations::dsl as r;
    r::inventory_reservations
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(HELD_SQL))
        .filter(r::expires_at.lt(now))
        .order(r::expires_at.asc())
        .select(r::order_id)
        .limit(limit)
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::{InstrumentationEvent, SimpleConnection};
    use std::sync::{Arc, Mutex};

    #[derive(QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    #[test]
    fn held_is_the_status_the_sweep_writes() {
        assert_eq!(
            HELD_SQL,
            format!("status = '{}'", ReservationStatus::Held.as_str())
        );
    }

    /// The statement `expired_holds` sends, as it sends it, planned by SQLite on the module's own schema.
    #[test]
    fn the_expiry_sweep_is_served_by_its_partial_index() -> Result<(), Box<dyn std::error::Error>> {
        let mut sqlite = diesel::sqlite::SqliteConnection::establish(":memory:")?;
        sqlite.batch_execute(include_str!(
            "../../../migrations/inventory/sqlite/2026-11-25-000300_create_inventory/up.sql"
        ))?;
        let sent = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = Arc::clone(&sent);
        sqlite.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event
                && let Ok(mut log) = log.lock()
            {
                log.push(query.to_string());
            }
        });
        let mut conn = DbConn::Sqlite(sqlite);
        let now = shop_kernel::db::now();
        expired_holds(&mut conn, now, 10)?;
        let sql = sent
            .lock()
            .map_err(|e| e.to_string())?
            .last()
            .and_then(|q| q.split(" -- binds").next().map(str::to_owned))
            .ok_or("the sweep sent no statement")?;
        let DbConn::Sqlite(c) = &mut conn else {
            return Err("a SQLite connection".into());
        };
        let plan: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .bind::<diesel::sql_types::Timestamp, _>(now)
            .bind::<diesel::sql_types::BigInt, _>(10_i64)
            .load(c)?;
        let plan: Vec<String> = plan.into_iter().map(|p| p.detail).collect();
        assert!(
            plan.iter()
                .any(|l| l.contains("inventory_reservations_held_expiry")),
            "{sql}\n{plan:?}"
        );
        Ok(())
    }
}
