//! diesel queries on notifications' own tables. Every function takes the connection, so a service can
//! run several in one transaction.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use shop_kernel::db::DbConn;

diesel::table! {
    notifications_messages (id) {
        id -> Text,
        user_id -> Text,
        event_id -> Text,
        kind -> Text,
        recipient -> Nullable<Text>,
        subject -> Text,
        body -> Text,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    notifications_inbox (event_id) {
        event_id -> Text,
        event_type -> Text,
        handled_at -> Timestamp,
    }
}

/// A message as its owner lists it: (id, kind, subject, body, created_at, sent_at).
pub type MessageRow = (
    String,
    String,
    String,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

/// A message to record.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub event_id: &'a str,
    pub kind: &'a str,
    pub recipient: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    /// When to mail it; `None`: recorded only.
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// A message claimed for mailing.
#[derive(Debug, Clone, QueryableByName)]
pub struct DueMessage {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub body: String,
    /// Failed attempts before this one.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// The SQL with `$n` placeholders written for the connection's backend (`?n` on SQLite).
fn sql(conn: &DbConn, text: &str) -> String {
    match conn {
        DbConn::Pg(_) => text.to_string(),
        DbConn::Sqlite(_) => text.replace('$', "?"),
    }
}

/// `at + d`, saturating.
pub fn plus(at: NaiveDateTime, d: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(NaiveDateTime::MAX)
}

/// True when the inbox holds this event (it was applied before).
#[cfg(test)]
pub fn handled(conn: &mut DbConn, event_id: &str) -> QueryResult<bool> {
    use notifications_inbox::dsl as i;
    diesel::select(diesel::dsl::exists(
        i::notifications_inbox.filter(i::event_id.eq(event_id)),
    ))
    .get_result(conn)
}

pub fn insert_message(
    conn: &mut DbConn,
    m: &NewMessage<'_>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use notifications_messages::dsl as n;
    diesel::insert_into(n::notifications_messages)
        .values((
            n::id.eq(m.id),
            n::user_id.eq(m.user_id),
            n::event_id.eq(m.event_id),
            n::kind.eq(m.kind),
            n::recipient.eq(m.recipient),
            n::subject.eq(m.subject),
            n::body.eq(m.body),
            n::created_at.eq(now),
            n::attempts.eq(0),
            n::next_attempt_at.eq(m.next_attempt_at),
        ))
        .execute(conn)
}

/// A user's messages, newest first, from before `before` (an id) when given.
pub fn messages(
    conn: &mut DbConn,
    user_id: &str,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    use notifications_messages::dsl as n;
    let mut query = n::notifications_messages
        .filter(n::user_id.eq(user_id))
        .select((
            n::id,
            n::kind,
            n::subject,
            n::body,
            n::created_at,
            n::sent_at,
        ))
        .order(n::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(n::id.lt(before.to_string()));
    }
    query.load(conn)
}

/// Claims up to `limit` unsent messages due at `now` by moving them a `lease` ahead, in one statement, so
/// that concurrent mailers (one per instance) never take the same message: PostgreSQL skips rows another
/// claim holds, SQLite serializes writers. A mailer that dies mid-send leaves its messages due again when
/// the lease ends. Run it outside a longer transaction.
pub fn claim_due(
    conn: &mut DbConn,
    now: NaiveDateTime,
    lease: Duration,
    limit: i64,
) -> QueryResult<Vec<DueMessage>> {
    let lock = match conn {
        DbConn::Pg(_) => " FOR UPDATE SKIP LOCKED",
        DbConn::Sqlite(_) => "",
    };
    let claim = sql(
        conn,
        &format!(
            "UPDATE notifications_messages SET next_attempt_at = $1 WHERE id IN (SELECT id FROM \
             notifications_messages WHERE next_attempt_at <= $2 AND sent_at IS NULL \
             AND recipient IS NOT NULL ORDER BY next_attempt_at, id LIMIT $3{lock}) \
             RETURNING id, event_id, recipient, subject, body, attempts"
        ),
    );
    let mut rows = diesel::sql_query(claim)
        .bind::<Timestamp, _>(plus(now, lease))
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load::<DueMessage>(conn)?;
    // RETURNING gives no order; oldest first keeps the mail in the order it was written.
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

/// Marks a message sent: it is never claimed again.
pub fn mark_sent(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    use notifications_messages::dsl as n;
    diesel::update(n::notifications_messages.filter(n::id.eq(id)))
        .set((
            n::sent_at.eq(Some(now)),
            n::next_attempt_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

/// Records a failed attempt; the message is due again at `next` (`None`: never, it cannot be sent).
pub fn mark_failed(
    conn: &mut DbConn,
    id: &str,
    error: &str,
    next: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    use notifications_messages::dsl as n;
    let error: String = error.chars().take(1000).collect();
    diesel::update(
        n::notifications_messages
            .filter(n::id.eq(id))
            .filter(n::sent_at.is_null()),
    )
    .set((
        n::attempts.eq(n::attempts + 1),
        n::last_error.eq(Some(error)),
        n::next_attempt_at.eq(next),
    ))
    .execute(conn)
}

/// Hands claimed, unsent messages back, due at `now` (no attempt counted).
pub fn release(conn: &mut DbConn, ids: &[String], now: NaiveDateTime) -> QueryResult<usize> {
    use notifications_messages::dsl as n;
    diesel::update(
        n::notifications_messages
            .filter(n::id.eq_any(ids))
            .filter(n::sent_at.is_null()),
    )
    .set(n::next_attempt_at.eq(Some(now)))
    .execute(conn)
}

/// Everything the mailer keeps about a message: (attempts, next_attempt_at, sent_at, last_error).
#[cfg(test)]
pub type DeliveryState = (
    i32,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<String>,
);

/// A message's [`DeliveryState`].
#[cfg(test)]
pub fn delivery_state(conn: &mut DbConn, id: &str) -> QueryResult<DeliveryState> {
    use notifications_messages::dsl as n;
    n::notifications_messages
        .filter(n::id.eq(id))
        .select((n::attempts, n::next_attempt_at, n::sent_at, n::last_error))
        .first(conn)
}
