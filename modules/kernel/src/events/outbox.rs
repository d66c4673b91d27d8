//! A module's transactional outbox: events are written in the transaction of the change that causes them,
//! and a relay claims, delivers and marks them. Each publishing module has its own table, with these
//! columns and indexes:
//!
//! ```sql
//! CREATE TABLE <module>_outbox (
//!     id TEXT PRIMARY KEY,            -- the event id (UUID v7)
//!     event_type TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL,
//!     occurred_at TIMESTAMP NOT NULL,
//!     attempts INTEGER NOT NULL,      -- failed deliveries so far (since the last resubmit)
//!     refusals INTEGER NOT NULL,      -- of which permanent refusals: parked at MAX_ATTEMPTS
//!     next_attempt_at TIMESTAMP NULL, -- due time; NULL once delivered or parked
//!     last_error TEXT NULL,
//!     delivered_at TIMESTAMP NULL);
//! -- the relay's claim, in due order
//! CREATE INDEX <module>_outbox_due ON <module>_outbox (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;
//! -- the backlog gauge, the failing list and bulk resubmits read only undelivered events
//! CREATE INDEX <module>_outbox_undelivered ON <module>_outbox (id) WHERE delivered_at IS NULL;
//! -- the purge of old delivered events
//! CREATE INDEX <module>_outbox_delivered ON <module>_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
//! ```
//!
//! A claim moves `next_attempt_at` a lease ahead, so a relay that dies mid-delivery leaves the event due
//! again when the lease ends. On PostgreSQL the claim skips rows another relay is claiming
//! (`FOR UPDATE SKIP LOCKED`); on SQLite claims are serialized by the write lock.
//!
//! Partial indexes serve a statement only when it writes their condition (or a comparison that implies
//! `IS NOT NULL`) as a literal: plans do not depend on bound values here (`tests/plans.rs` plans every
//! statement below among a million delivered events).

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use uuid::Uuid;

use super::{
    DeliveryError, Event, EventInfo, FailingQuery, PendingEvent, ResubmitEvents, Resubmitted,
};
use crate::db::{Database, DbConn, DbError};
use crate::page::checked_id_page;
use crate::{FieldError, Page};

/// After this many permanent refusals (a subscriber answered that it will not take the event) an event is
/// parked: no more automatic attempts until an operator resubmits it. Transient failures (a subscriber that
/// is down) never park: those events wait, with capped backoff, until the subscriber is back.
pub const MAX_ATTEMPTS: i32 = 12;

/// Failures after which an event is listed as failing (it is still retried).
pub const FAILING_AFTER: i32 = 3;

/// The wait before the next attempt of a failed delivery: `base` doubling per failure, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub base: Duration,
    /// The longest wait, however many failures.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling to 10 min.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The wait after `failures` failed deliveries (1 or more).
    pub fn after(&self, failures: i32) -> Duration {
        let doublings = failures.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

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
    ///
    /// The limit is written into the statement: bound, PostgreSQL's generic plan guesses a tenth of a
    /// third of the table and hashes the whole outbox to find those rows again; written, it looks each of
    /// the few up by id (tests/plans.rs).
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
                 WHERE next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT {limit}{lock}) \
                 RETURNING id, event_type, version, payload, occurred_at",
                t = self.table,
                limit = limit.max(0),
            ),
        );
        let mut rows = diesel::sql_query(claim)
            .bind::<Timestamp, _>(plus(now, lease))
            .bind::<Timestamp, _>(now)
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

    /// Records a failed delivery: due again after `backoff`, or, on the [`MAX_ATTEMPTS`]th permanent refusal,
    /// parked. A transient failure never parks.
    pub fn failed(
        &self,
        conn: &mut DbConn,
        id: Uuid,
        error: &DeliveryError,
        backoff: Backoff,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        let select = sql(
            conn,
            &format!(
                "SELECT attempts, refusals FROM {} WHERE id = $1",
                self.table
            ),
        );
        #[derive(QueryableByName)]
        struct Counts {
            #[diesel(sql_type = Integer)]
            attempts: i32,
            #[diesel(sql_type = Integer)]
            refusals: i32,
        }
        let Some(Counts { attempts, refusals }) = diesel::sql_query(select)
            .bind::<Text, _>(id.to_string())
            .get_result::<Counts>(conn)
            .optional()?
        else {
            return Ok(());
        };
        let attempts = attempts.saturating_add(1);
        let refusals = refusals.saturating_add(i32::from(error.is_permanent()));
        let next = (refusals < MAX_ATTEMPTS).then(|| plus(now, backoff.after(attempts)));
        let update = sql(
            conn,
            &format!(
                "UPDATE {} SET attempts = $1, refusals = $2, next_attempt_at = $3, last_error = $4 \
                 WHERE id = $5 AND delivered_at IS NULL",
                self.table
            ),
        );
        let error: String = error.to_string().chars().take(1000).collect();
        diesel::sql_query(update)
            .bind::<Integer, _>(attempts)
            .bind::<Integer, _>(refusals)
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
                "UPDATE {} SET attempts = 0, refusals = 0, next_attempt_at = $1 WHERE id = $2 \
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

    /// Makes every undelivered event that failed at least once due now with a fresh count of attempts: only
    /// those of `event_type` when given, only parked ones when `parked_only`. Returns how many.
    pub fn resubmit_failed(
        &self,
        conn: &mut DbConn,
        event_type: Option<&str>,
        parked_only: bool,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let update = sql(
            conn,
            &format!(
                "UPDATE {} SET attempts = 0, refusals = 0, next_attempt_at = $1 \
                 WHERE delivered_at IS NULL AND attempts > 0{}{}",
                self.table,
                if event_type.is_some() {
                    " AND event_type = $2"
                } else {
                    ""
                },
                if parked_only {
                    " AND next_attempt_at IS NULL"
                } else {
                    ""
                },
            ),
        );
        let query = diesel::sql_query(update).bind::<Timestamp, _>(now);
        match event_type {
            Some(event_type) => query.bind::<Text, _>(event_type).execute(conn),
            None => query.execute(conn),
        }
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
    ///
    /// A thousand at a time, oldest first, each batch a statement of its own: a purge that finds a week of
    /// events to delete (the first after a long stop) holds no lock for long, and SQLite's writers wait
    /// for a batch, not for the whole purge. The batch is written into the statement, so that PostgreSQL's
    /// generic plan looks up that many rows by id rather than hashing the table (tests/plans.rs).
    pub fn purge(&self, conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
        const BATCH: usize = 1000;
        let delete = sql(
            conn,
            &format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE delivered_at IS NOT NULL \
                 AND delivered_at < $1 ORDER BY delivered_at LIMIT {BATCH})",
                t = self.table
            ),
        );
        let mut purged = 0;
        loop {
            let deleted = diesel::sql_query(&delete)
                .bind::<Timestamp, _>(cutoff)
                .execute(conn)?;
            purged += deleted;
            if deleted < BATCH {
                return Ok(purged);
            }
        }
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

    /// Resubmits failed events in bulk (see [`resubmit_failed`](Self::resubmit_failed)), for the operator's
    /// `POST /api/v1/admin/events/<module>/resubmit`. `published` is the module's `EVENTS`: any other
    /// `event_type` matches nothing.
    pub async fn resubmit_in_bulk<E>(
        &self,
        db: &Database,
        request: ResubmitEvents,
        published: &[EventInfo],
    ) -> Result<Resubmitted, E>
    where
        E: From<DbError> + Send + 'static,
    {
        // A type this module does not publish is a filter that matches nothing (`resubmitted: 0`), not an
        // error: the schema cannot list one module's types per path, and every string it allows is accepted.
        if let Some(event_type) = &request.event_type
            && !published.iter().any(|info| info.name == event_type)
        {
            return Ok(Resubmitted { resubmitted: 0 });
        }
        let outbox = *self;
        let parked_only = request.parked_only.unwrap_or(false);
        let resubmitted = db
            .run(move |conn| {
                outbox
                    .resubmit_failed(
                        conn,
                        request.event_type.as_deref(),
                        parked_only,
                        crate::db::now(),
                    )
                    .map_err(|e| E::from(DbError::from(e)))
            })
            .await?;
        Ok(Resubmitted {
            resubmitted: u64::try_from(resubmitted).unwrap_or(u64::MAX),
        })
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
    occurred_at TIMESTAMP NOT NULL, attempts INTEGER NOT NULL, refusals INTEGER NOT NULL DEFAULT 0, \
    next_attempt_at TIMESTAMP NULL, last_error TEXT NULL, delivered_at TIMESTAMP NULL); \
    CREATE INDEX test_outbox_due ON test_outbox (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL; \
    CREATE INDEX test_outbox_undelivered ON test_outbox (id) WHERE delivered_at IS NULL; \
    CREATE INDEX test_outbox_delivered ON test_outbox (delivered_at) WHERE delivered_at IS NOT NULL";

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

    fn ping(n: u32, now: NaiveDateTime) -> Result<Event, DbError> {
        Event::new(&Ping { n }, now.and_utc()).map_err(|e| DbError::Connection(e.to_string()))
    }

    fn down() -> DeliveryError {
        DeliveryError::Transient("subscriber: 503 unavailable".into())
    }

    fn refused() -> DeliveryError {
        DeliveryError::Permanent("subscriber: 422 validation_failed".into())
    }

    #[test]
    fn claimed_events_are_leased_retried_with_backoff_parked_and_resubmitted() -> Result<(), DbError>
    {
        let (db, dir) = database()?;
        let mut conn = db.get()?;
        let now = crate::db::now();
        let backoff = Backoff::default();
        let event = ping(1, now)?;
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
            OUTBOX.failed(&mut conn, event.id, &refused(), backoff, now)?;
            if attempt + 1 == FAILING_AFTER {
                assert_eq!(OUTBOX.failing(&mut conn, None, 10)?.len(), 1);
            }
        }
        let parked = OUTBOX.failing(&mut conn, None, 10)?;
        assert_eq!(parked[0].next_attempt_at, None, "parked");
        assert_eq!(parked[0].attempts, MAX_ATTEMPTS as u32);
        assert_eq!(
            parked[0].last_error.as_deref(),
            Some("subscriber: 422 validation_failed")
        );
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
    fn an_outage_never_parks_and_only_repeated_refusals_do() -> Result<(), DbError> {
        let (db, dir) = database()?;
        let mut conn = db.get()?;
        let now = crate::db::now();
        let backoff = Backoff::default();
        let event = ping(1, now)?;
        OUTBOX.publish(&mut conn, &event)?;
        // Hours of outage: far more failures than MAX_ATTEMPTS, each due again after at most the cap.
        for _ in 0..5 * MAX_ATTEMPTS {
            OUTBOX.failed(&mut conn, event.id, &down(), backoff, now)?;
        }
        let waiting = OUTBOX.failing(&mut conn, None, 10)?;
        assert_eq!(waiting[0].attempts, 5 * MAX_ATTEMPTS as u32);
        assert_eq!(
            waiting[0].next_attempt_at.map(|at| at.naive_utc()),
            Some(plus(now, backoff.max)),
            "due again after the cap, not parked"
        );
        // The subscriber is back but refuses this event: parked after MAX_ATTEMPTS refusals, not at once.
        for refusal in 1..=MAX_ATTEMPTS {
            OUTBOX.failed(&mut conn, event.id, &refused(), backoff, now)?;
            let next = OUTBOX.failing(&mut conn, None, 10)?[0].next_attempt_at;
            assert_eq!(next.is_none(), refusal == MAX_ATTEMPTS, "refusal {refusal}");
        }
        OUTBOX.failed(&mut conn, event.id, &down(), backoff, now)?;
        let parked = OUTBOX.failing(&mut conn, None, 10)?;
        assert_eq!(parked[0].next_attempt_at, None, "stays parked");
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn failed_events_are_resubmitted_in_bulk_by_type_and_parked_or_not() -> Result<(), DbError> {
        let (db, dir) = database()?;
        let mut conn = db.get()?;
        let now = crate::db::now();
        let backoff = Backoff::default();
        let (waiting, parked, fresh, delivered) =
            (ping(1, now)?, ping(2, now)?, ping(3, now)?, ping(4, now)?);
        let mut other = ping(5, now)?;
        other.event_type = "test.pong".into();
        for event in [&waiting, &parked, &fresh, &delivered, &other] {
            OUTBOX.publish(&mut conn, event)?;
        }
        OUTBOX.failed(&mut conn, waiting.id, &down(), backoff, now)?;
        OUTBOX.failed(&mut conn, other.id, &down(), backoff, now)?;
        for _ in 0..MAX_ATTEMPTS {
            OUTBOX.failed(&mut conn, parked.id, &refused(), backoff, now)?;
        }
        OUTBOX.failed(&mut conn, delivered.id, &down(), backoff, now)?;
        OUTBOX.delivered(&mut conn, delivered.id, now)?;

        let later = plus(now, Duration::from_secs(1));
        assert_eq!(
            OUTBOX.resubmit_failed(&mut conn, Some("test.ping"), true, later)?,
            1,
            "the parked one"
        );
        assert_eq!(
            OUTBOX.resubmit_failed(&mut conn, Some("test.ping"), false, later)?,
            1,
            "the waiting one; the revived one has no failure left, the fresh one none yet"
        );
        assert_eq!(
            OUTBOX.resubmit_failed(&mut conn, None, false, later)?,
            1,
            "test.pong"
        );
        assert!(
            OUTBOX.failing(&mut conn, None, 10)?.is_empty(),
            "fresh counts"
        );
        let due: Vec<Uuid> = OUTBOX
            .claim(&mut conn, later, Duration::from_secs(30), 10)?
            .into_iter()
            .map(|e| e.id)
            .collect();
        let mut expected = vec![waiting.id, parked.id, fresh.id, other.id];
        expected.sort();
        assert_eq!(
            due, expected,
            "every undelivered event due now, none delivered twice"
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let backoff = Backoff::default();
        assert_eq!(backoff.after(1), Duration::from_secs(1));
        assert_eq!(backoff.after(4), Duration::from_secs(8));
        assert_eq!(backoff.after(50), Duration::from_secs(600));
        assert_eq!(backoff.after(i32::MAX), Duration::from_secs(600));
        let fast = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        assert_eq!(fast.after(2), Duration::from_millis(20));
        assert_eq!(fast.after(13), Duration::from_millis(50));
    }
}
