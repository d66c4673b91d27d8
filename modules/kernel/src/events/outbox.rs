//! A module's transactional outbox: events are written in the transaction of the change that causes them,
//! and a relay claims, delivers and marks them. Each publishing module has its own table, with these
//! columns:
//!
//! ```sql
//! CREATE TABLE <module>_outbox (
//!     id TEXT PRIMARY KEY,            -- the event id (UUID v7)
//!     event_type TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL,
//!     occurred_at TIMESTAMP NOT NULL,
//!     attempts INTEGER NOT NULL,      -- failed deliveries so far
//!     next_attempt_at TIMESTAMP NULL, -- due time; NULL once delivered or parked
//!     last_error TEXT NULL,
//!     delivered_at TIMESTAMP NULL);
//! CREATE INDEX <module>_outbox_due ON <module>_outbox (next_attempt_at);
//! ```
//!
//! A claim moves `next_attempt_at` a lease ahead, so a relay that dies mid-delivery leaves the event due
//! again when the lease ends. On PostgreSQL the claim skips rows another relay is claiming
//! (`FOR UPDATE SKIP LOCKED`); on SQLite claims are serialized by the write lock.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use uuid::Uuid;

use super::{Event, FailingQuery, PendingEvent};
use crate::db::{Database, DbConn, DbError};
use crate::page::checked_id_page;
use crate::{FieldError, Page};

/// After this many failed deliveries an event is parked: no more automatic attempts until an operator
/// resubmits it.
pub const MAX_ATTEMPTS: i32 = 12;

/// Failures after which an event is listed as failing (it is still retried until [`MAX_ATTEMPTS`]).
pub const FAILING_AFTER: i32 = 3;

/// A module's outbox table.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    table: &'static str,
}

/// The backlog of an outbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Events not delivered yet (parked ones included).
    pub undelivered: i64,
    /// When the oldest of them happened.
    pub oldest: Option<NaiveDateTime>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Timestamp)]
    occurred_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct PendingRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Timestamp)]
    occurred_at: NaiveDateTime,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Timestamp>)]
    next_attempt_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

#[derive(QueryableByName)]
struct BacklogRow {
    #[diesel(sql_type = BigInt)]
    undelivered: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    oldest: Option<NaiveDateTime>,
}

/// The SQL with `$n` placeholders written for the connection's backend (`?n` on SQLite).
fn sql(conn: &DbConn, text: &str) -> String {
    match conn {
        DbConn::Pg(_) => text.to_string(),
        DbConn::Sqlite(_) => text.replace('$', "?"),
    }
}

fn stored_id(id: &str) -> Result<Uuid, diesel::result::Error> {
    Uuid::parse_str(id).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
}

/// The wait before attempt `attempts + 1`: 1 s doubling per failure, at most 10 min.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 10) as u32;
    Duration::from_secs((1u64 << exponent).min(600))
}

fn plus(at: NaiveDateTime, d: Duration) -> NaiveDateTime {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Outbox {
    /// The outbox kept in `table` (one of the module's own tables).
    pub const fn new(table: &'static str) -> Self {
        Outbox { table }
    }

    /// The table's name.
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// Writes `event`, due at once. Call it inside the transaction of the change it announces.
    pub fn publish(&self, conn: &mut DbConn, event: &Event) -> QueryResult<()> {
        let insert = sql(
            conn,
            &format!(
                "INSERT INTO {} (id, event_type, version, payload, occurred_at, attempts, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, 0, $6)",
                self.table
            ),
        );
        let payload = serde_json::to_string(&event.payload)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        let occurred_at = event.occurred_at.naive_utc();
        diesel::sql_query(insert)
            .bind::<Text, _>(event.id.to_string())
            .bind::<Text, _>(&event.event_type)
            .bind::<Integer, _>(i32::try_from(event.version).unwrap_or(i32::MAX))
            .bind::<Text, _>(payload)
            .bind::<Timestamp, _>(occurred_at)
            .bind::<Timestamp, _>(occurred_at)
            .execute(conn)
            .map(|_| ())
    }

    /// Claims up to `limit` due events for `lease` (one statement; run it outside a longer transaction).
    pub fn claim(
        &self,
        conn: &mut DbConn,
        now: NaiveDateTime,
        lease: Duration,
        limit: i64,
    ) -> QueryResult<Vec<Event>> {
        let lock = match conn {
            DbConn::Pg(_) => " FOR UPDATE SKIP LOCKED",
            DbConn::Sqlite(_) => "",
        };
        let claim = sql(
            conn,
            &format!(
                "UPDATE {t} SET next_attempt_at = $1 WHERE id IN (SELECT id FROM {t} \
                 WHERE next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3{lock}) \
                 RETURNING id, event_type, version, payload, occurred_at",
                t = self.table
            ),
        );
        let mut rows = diesel::sql_query(claim)
            .bind::<Timestamp, _>(plus(now, lease))
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load::<Row>(conn)?;
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows.into_iter()
            .map(|row| {
                Ok(Event {
                    id: stored_id(&row.id)?,
                    event_type: row.event_type,
                    version: u32::try_from(row.version).unwrap_or_default(),
                    occurred_at: row.occurred_at.and_utc(),
                    payload: serde_json::from_str(&row.payload)
                        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?,
                })
            })
            .collect()
    }

    /// Hands claimed events back undelivered, due at `now` (no attempt counted).
    pub fn release(&self, conn: &mut DbConn, ids: &[Uuid], now: NaiveDateTime) -> QueryResult<()> {
        let update = sql(
            conn,
            &format!(
                "UPDATE {} SET next_attempt_at = $1 WHERE id = $2 AND delivered_at IS NULL",
                self.table
            ),
        );
        for id in ids {
            diesel::sql_query(&update)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(id.to_string())
                .execute(conn)?;
        }
        Ok(())
    }

    /// Marks an event delivered.
    pub fn delivered(&self, conn: &mut DbConn, id: Uuid, now: NaiveDateTime) -> QueryResult<()> {
        let update = sql(
            conn,
            &format!(
                "UPDATE {} SET delivered_at = $1, next_attempt_at = NULL WHERE id = $2",
                self.table
            ),
        );
        diesel::sql_query(update)
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(id.to_string())
            .execute(conn)
            .map(|_| ())
    }

    /// Records a failed delivery: due again after a backoff, or parked after [`MAX_ATTEMPTS`].
    pub fn failed(
        &self,
        conn: &mut DbConn,
        id: Uuid,
        error: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        let select = sql(
            conn,
            &format!("SELECT attempts FROM {} WHERE id = $1", self.table),
        );
        #[derive(QueryableByName)]
        struct Attempts {
            #[diesel(sql_type = Integer)]
            attempts: i32,
        }
        let Some(Attempts { attempts }) = diesel::sql_query(select)
            .bind::<Text, _>(id.to_string())
            .get_result::<Attempts>(conn)
            .optional()?
        else {
            return Ok(());
        };
        let attempts = attempts.saturating_add(1);
        let next = (attempts < MAX_ATTEMPTS).then(|| plus(now, backoff(attempts - 1)));
        let update = sql(
            conn,
            &format!(
                "UPDATE {} SET attempts = $1, next_attempt_at = $2, last_error = $3 \
                 WHERE id = $4 AND delivered_at IS NULL",
                self.table
            ),
        );
        let error: String = error.chars().take(1000).collect();
        diesel::sql_query(update)
            .bind::<Integer, _>(attempts)
            .bind::<Nullable<Timestamp>, _>(next)
            .bind::<Text, _>(error)
            .bind::<Text, _>(id.to_string())
            .execute(conn)
            .map(|_| ())
    }

    /// Undelivered events that failed at least [`FAILING_AFTER`] times, oldest first, after `after` (an id).
    pub fn failing(
        &self,
        conn: &mut DbConn,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<PendingEvent>> {
        let select = sql(
            conn,
            &format!(
                "SELECT id, event_type, version, occurred_at, attempts, next_attempt_at, last_error \
                 FROM {} WHERE delivered_at IS NULL AND attempts >= $1 AND id > $2 \
                 ORDER BY id LIMIT $3",
                self.table
            ),
        );
        diesel::sql_query(select)
            .bind::<Integer, _>(FAILING_AFTER)
            .bind::<Text, _>(after.unwrap_or(""))
            .bind::<BigInt, _>(limit)
            .load::<PendingRow>(conn)?
            .into_iter()
            .map(pending)
            .collect()
    }

    /// Makes an undelivered event due now with a fresh count of attempts; `None` when there is no such
    /// undelivered event.
    pub fn resubmit(
        &self,
        conn: &mut DbConn,
        id: Uuid,
        now: NaiveDateTime,
    ) -> QueryResult<Option<PendingEvent>> {
        let update = sql(
            conn,
            &format!(
                "UPDATE {} SET attempts = 0, next_attempt_at = $1 WHERE id = $2 \
                 AND delivered_at IS NULL RETURNING id, event_type, version, occurred_at, attempts, \
                 next_attempt_at, last_error",
                self.table
            ),
        );
        diesel::sql_query(update)
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(id.to_string())
            .get_result::<PendingRow>(conn)
            .optional()?
            .map(pending)
            .transpose()
    }

    /// How many events wait, and since when.
    pub fn backlog(&self, conn: &mut DbConn) -> QueryResult<Backlog> {
        let select = format!(
            "SELECT COUNT(*) AS undelivered, MIN(occurred_at) AS oldest FROM {} \
             WHERE delivered_at IS NULL",
            self.table
        );
        let row = diesel::sql_query(select).get_result::<BacklogRow>(conn)?;
        Ok(Backlog {
            undelivered: row.undelivered,
            oldest: row.oldest,
        })
    }

    /// Deletes events delivered before `cutoff`; returns how many. Undelivered events are kept.
    pub fn purge(&self, conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
        let delete = sql(
            conn,
            &format!(
                "DELETE FROM {} WHERE delivered_at IS NOT NULL AND delivered_at < $1",
                self.table
            ),
        );
        diesel::sql_query(delete)
            .bind::<Timestamp, _>(cutoff)
            .execute(conn)
    }
}

impl Outbox {
    /// A page of the failing events (the operator's view, served by each publishing module's contract);
    /// `invalid` makes the module's validation error.
    pub async fn failing_page<E>(
        &self,
        db: &Database,
        query: FailingQuery,
        invalid: fn(Vec<FieldError>) -> E,
    ) -> Result<Page<PendingEvent>, E>
    where
        E: From<DbError> + Send + 'static,
    {
        let mut errors = Vec::new();
        let (limit, after) = checked_id_page(query.limit, query.cursor.as_deref(), &mut errors);
        let (Some(limit), true) = (limit, errors.is_empty()) else {
            return Err(invalid(errors));
        };
        let outbox = *self;
        let rows = db
            .run(move |conn| {
                outbox
                    .failing(conn, after.as_deref(), i64::from(limit) + 1)
                    .map_err(|e| E::from(DbError::from(e)))
            })
            .await?;
        Ok(Page::from_rows(rows, limit, |e| e.id.simple().to_string()))
    }

    /// Resubmits an undelivered event now (see [`resubmit`](Self::resubmit)).
    pub async fn resubmit_now(
        &self,
        db: &Database,
        id: Uuid,
    ) -> Result<Option<PendingEvent>, DbError> {
        let outbox = *self;
        db.run(move |conn| {
            outbox
                .resubmit(conn, id, crate::db::now())
                .map_err(DbError::from)
        })
        .await
    }
}

fn pending(row: PendingRow) -> QueryResult<PendingEvent> {
    Ok(PendingEvent {
        id: stored_id(&row.id)?,
        event_type: row.event_type,
        version: u32::try_from(row.version).unwrap_or_default(),
        occurred_at: row.occurred_at.and_utc(),
        attempts: u32::try_from(row.attempts).unwrap_or_default(),
        next_attempt_at: row.next_attempt_at.map(|at| at.and_utc()),
        last_error: row.last_error,
    })
}

/// The outbox table of the tests (modules create theirs in their migrations).
#[cfg(test)]
pub(crate) const TEST_TABLE_SQL: &str = "CREATE TABLE test_outbox (id TEXT PRIMARY KEY, \
    event_type TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL, \
    occurred_at TIMESTAMP NOT NULL, attempts INTEGER NOT NULL, next_attempt_at TIMESTAMP NULL, \
    last_error TEXT NULL, delivered_at TIMESTAMP NULL); \
    CREATE INDEX test_outbox_due ON test_outbox (next_attempt_at)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, DbError};
    use diesel::connection::SimpleConnection;
    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    const OUTBOX: Outbox = Outbox::new("test_outbox");

    #[derive(Debug, PartialEq, Serialize, Deserialize, ToSchema)]
    struct Ping {
        n: u32,
    }

    impl super::super::DomainEvent for Ping {
        const TYPE: &'static str = "test.ping";
        const VERSION: u32 = 1;
        const SUMMARY: &'static str = "ping";
    }

    fn database() -> Result<(Database, std::path::PathBuf), DbError> {
        let dir = std::env::temp_dir().join(format!("shop-outbox-{}", Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 2)?;
        db.get()?.batch_execute(TEST_TABLE_SQL)?;
        Ok((db, dir))
    }

    #[test]
    fn claimed_events_are_leased_retried_with_backoff_parked_and_resubmitted() -> Result<(), DbError>
    {
        let (db, dir) = database()?;
        let mut conn = db.get()?;
        let now = crate::db::now();
        let event = Event::new(&Ping { n: 1 }, now.and_utc())
            .map_err(|e| DbError::Connection(e.to_string()))?;
        OUTBOX.publish(&mut conn, &event)?;
        let lease = Duration::from_secs(30);
        let claimed = OUTBOX.claim(&mut conn, now, lease, 10)?;
        assert_eq!(claimed, vec![event.clone()]);
        assert!(
            OUTBOX.claim(&mut conn, now, lease, 10)?.is_empty(),
            "leased"
        );
        let after_lease = plus(now, lease);
        assert_eq!(
            OUTBOX.claim(&mut conn, after_lease, lease, 10)?.len(),
            1,
            "due again when the lease ends"
        );
        for attempt in 0..MAX_ATTEMPTS {
            OUTBOX.failed(&mut conn, event.id, "subscriber down", now)?;
            if attempt + 1 == FAILING_AFTER {
                assert_eq!(OUTBOX.failing(&mut conn, None, 10)?.len(), 1);
            }
        }
        let parked = OUTBOX.failing(&mut conn, None, 10)?;
        assert_eq!(parked[0].next_attempt_at, None, "parked");
        assert_eq!(parked[0].attempts, MAX_ATTEMPTS as u32);
        let far = plus(now, Duration::from_secs(365 * 86_400));
        assert!(OUTBOX.claim(&mut conn, far, lease, 10)?.is_empty());
        assert_eq!(
            OUTBOX.backlog(&mut conn)?,
            Backlog {
                undelivered: 1,
                oldest: Some(now)
            }
        );
        let resubmitted = OUTBOX.resubmit(&mut conn, event.id, now)?;
        assert_eq!(resubmitted.map(|p| p.attempts), Some(0));
        assert_eq!(OUTBOX.claim(&mut conn, now, lease, 10)?.len(), 1);
        OUTBOX.delivered(&mut conn, event.id, now)?;
        assert_eq!(OUTBOX.backlog(&mut conn)?.undelivered, 0);
        assert_eq!(OUTBOX.resubmit(&mut conn, event.id, now)?, None);
        assert_eq!(OUTBOX.purge(&mut conn, plus(now, lease))?, 1);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(600));
    }
}
