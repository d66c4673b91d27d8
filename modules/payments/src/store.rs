//! diesel queries on payments' own tables. Every function takes the connection, so a service can run
//! several in one transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use shop_kernel::db::DbConn;
use shop_kernel::money::MAX_AMOUNT_MINOR;

diesel::table! {
    payments_wallets (user_id) {
        user_id -> Text,
        balance_minor -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    payments_transactions (id) {
        id -> Text,
        user_id -> Text,
        kind -> Text,
        amount_minor -> BigInt,
        order_id -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    payments_order_payments (order_id) {
        order_id -> Text,
        user_id -> Text,
        amount_minor -> BigInt,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

/// A ledger row: (id, kind, amount_minor, order_id, reason, created_at).
pub type TransactionRow = (
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    NaiveDateTime,
);

/// An order's payment row: (user_id, amount_minor, status).
pub type PaymentRow = (String, i64, String);

/// The stored payment statuses.
pub mod status {
    /// Charged.
    pub const CHARGED: &str = "charged";
    /// A refused charge, kept as the order's first outcome.
    pub const DECLINED: &str = "declined";
    /// Given back, or refunded before any charge.
    pub const REFUNDED: &str = "refunded";
}

pub fn wallet(conn: &mut DbConn, user_id: &str) -> QueryResult<Option<(i64, NaiveDateTime)>> {
    use payments_wallets::dsl as w;
    w::payments_wallets
        .filter(w::user_id.eq(user_id))
        .select((w::balance_minor, w::updated_at))
        .first(conn)
        .optional()
}

/// Creates an empty wallet unless one exists. Two first uses of a wallet race on its insert: the loser's
/// transaction fails with a unique violation and is run again.
pub fn ensure_wallet(conn: &mut DbConn, user_id: &str, now: NaiveDateTime) -> QueryResult<()> {
    use payments_wallets::dsl as w;
    if wallet(conn, user_id)?.is_some() {
        return Ok(());
    }
    diesel::insert_into(w::payments_wallets)
        .values((
            w::user_id.eq(user_id),
            w::balance_minor.eq(0i64),
            w::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// How high a deposit may take a balance.
/// How far a deposit may take the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceiling {
    /// New money (a credit) must leave room, below the money bound, for every refund the wallet may still
    /// get: `MAX_AMOUNT_MINOR` less what is charged and not yet refunded (`refundable`). So the balance and
    /// the charges outstanding never pass the bound together, and a refund always fits.
    Credit { refundable: i64 },
    /// Money given back (a refund) was in the wallet before and its room was kept: the bound itself.
    Refund,
}

/// Adds `amount` unless the balance would pass `ceiling`; returns rows changed (0: it would).
pub fn deposit(
    conn: &mut DbConn,
    user_id: &str,
    amount: i64,
    ceiling: Ceiling,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use payments_wallets::dsl as w;
    let top = match ceiling {
        Ceiling::Credit { refundable } => MAX_AMOUNT_MINOR.saturating_sub(refundable),
        Ceiling::Refund => MAX_AMOUNT_MINOR,
    };
    diesel::update(
        w::payments_wallets
            .filter(w::user_id.eq(user_id))
            .filter(w::balance_minor.le(top.saturating_sub(amount))),
    )
    .set((
        w::balance_minor.eq(w::balance_minor + amount),
        w::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Locks a wallet's row until the transaction ends (a no-op update), so that no charge or refund moves
/// money between the balance and the charges outstanding while a credit weighs both.
pub fn lock_wallet(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    use payments_wallets::dsl as w;
    diesel::update(w::payments_wallets.filter(w::user_id.eq(user_id)))
        .set(w::updated_at.eq(w::updated_at))
        .execute(conn)
}

#[derive(QueryableByName)]
struct Refundable {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
}

/// What refunds may still give back to a wallet: its charges not yet refunded.
pub fn refundable(conn: &mut DbConn, user_id: &str) -> QueryResult<i64> {
    let sql = match conn {
        DbConn::Pg(_) => {
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS total FROM payments_order_payments \
             WHERE user_id = $1 AND status = 'charged'"
        }
        DbConn::Sqlite(_) => {
            "SELECT COALESCE(SUM(amount_minor), 0) AS total FROM payments_order_payments \
             WHERE user_id = ? AND status = 'charged'"
        }
    };
    diesel::sql_query(sql)
        .bind::<diesel::sql_types::Text, _>(user_id)
        .get_result::<Refundable>(conn)
        .map(|r| r.total)
}

/// Takes `amount` if the wallet holds that much; returns rows changed (0: it does not).
pub fn withdraw(
    conn: &mut DbConn,
    user_id: &str,
    amount: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use payments_wallets::dsl as w;
    diesel::update(
        w::payments_wallets
            .filter(w::user_id.eq(user_id))
            .filter(w::balance_minor.ge(amount)),
    )
    .set((
        w::balance_minor.eq(w::balance_minor - amount),
        w::updated_at.eq(now),
    ))
    .execute(conn)
}

#[allow(clippy::too_many_arguments)]
pub fn insert_transaction(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    kind: &str,
    amount: i64,
    order_id: Option<&str>,
    reason: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use payments_transactions::dsl as t;
    diesel::insert_into(t::payments_transactions)
        .values((
            t::id.eq(id),
            t::user_id.eq(user_id),
            t::kind.eq(kind),
            t::amount_minor.eq(amount),
            t::order_id.eq(order_id),
            t::reason.eq(reason),
            t::created_at.eq(now),
        ))
        .execute(conn)
}

/// A user's ledger, newest first, from before `before` (an id) when given.
pub fn transactions(
    conn: &mut DbConn,
    user_id: &str,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<TransactionRow>> {
    use payments_transactions::dsl as t;
    let mut query = t::payments_transactions
        .filter(t::user_id.eq(user_id))
        .select((
            t::id,
            t::kind,
            t::amount_minor,
            t::order_id,
            t::reason,
            t::created_at,
        ))
        .order(t::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(t::id.lt(before.to_string()));
    }
    query.load(conn)
}

/// Locks an order's payment row for the rest of the transaction (a no-op update); 0 when there is none.
pub fn lock_payment(conn: &mut DbConn, order_id: &str) -> QueryResult<usize> {
    use payments_order_payments::dsl as p;
    diesel::update(p::payments_order_payments.filter(p::order_id.eq(order_id)))
        .set(p::updated_at.eq(p::updated_at))
        .execute(conn)
}

pub fn payment(conn: &mut DbConn, order_id: &str) -> QueryResult<Option<PaymentRow>> {
    use payments_order_payments::dsl as p;
    p::payments_order_payments
        .filter(p::order_id.eq(order_id))
        .select((p::user_id, p::amount_minor, p::status))
        .first(conn)
        .optional()
}

pub fn insert_payment(
    conn: &mut DbConn,
    order_id: &str,
    user_id: &str,
    amount: i64,
    status: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use payments_order_payments::dsl as p;
    diesel::insert_into(p::payments_order_payments)
        .values((
            p::order_id.eq(order_id),
            p::user_id.eq(user_id),
            p::amount_minor.eq(amount),
            p::status.eq(status),
            p::created_at.eq(now),
            p::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Writes an order's payment unless it has one; false when it had (nothing is written). On PostgreSQL a
/// concurrent first insert of the same order makes this wait for that transaction.
pub fn insert_payment_if_new(
    conn: &mut DbConn,
    order_id: &str,
    user_id: &str,
    amount: i64,
    status: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    let insert = "INSERT INTO payments_order_payments \
                  (order_id, user_id, amount_minor, status, created_at, updated_at) \
                  VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING";
    let insert = match conn {
        DbConn::Pg(_) => insert.to_string(),
        DbConn::Sqlite(_) => insert.replace('$', "?"),
    };
    diesel::sql_query(insert)
        .bind::<Text, _>(order_id)
        .bind::<Text, _>(user_id)
        .bind::<BigInt, _>(amount)
        .bind::<Text, _>(status)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .execute(conn)
        .map(|inserted| inserted == 1)
}

pub fn set_payment_status(
    conn: &mut DbConn,
    order_id: &str,
    status: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use payments_order_payments::dsl as p;
    diesel::update(p::payments_order_payments.filter(p::order_id.eq(order_id)))
        .set((p::status.eq(status), p::updated_at.eq(now)))
        .execute(conn)
}
