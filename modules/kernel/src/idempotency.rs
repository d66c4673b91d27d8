//! `Idempotency-Key`, once for every module: the first request with a key runs, a repeat with the same body
//! gets the stored outcome, the same key with another body is refused, and a repeat while the first still
//! runs is told so. Keys are scoped per caller and live in each module's own table, with these columns:
//!
//! ```sql
//! CREATE TABLE <module>_idempotency_keys (
//!     caller TEXT NOT NULL, key TEXT NOT NULL, request TEXT NOT NULL,
//!     response TEXT NOT NULL,   -- '' while running
//!     state TEXT NOT NULL,      -- 'running' or 'done'
//!     created_at TIMESTAMP NOT NULL,
//!     PRIMARY KEY (caller, key));
//! ```
//!
//! Work done in one database transaction claims and completes the key inside it (a concurrent duplicate
//! waits for that transaction, then replays). Work that spans calls to other modules claims in a short
//! transaction of its own, so the `running` record is visible to duplicates (409) until it completes or
//! releases the key.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{DbConn, TxError};
use crate::problem::{ApiError, FieldError, Problem};

/// How long keys are kept, at least.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// What a claim of a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its first owner vanished): run the request, then `complete` or `release`.
    New,
    /// Done before with the same request: this is the stored outcome.
    Replay(String),
    /// Used before with a different request (422).
    Reused,
    /// The first request with this key is still running (409).
    InProgress,
}

/// A module's idempotency-key table.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKeys {
    table: &'static str,
    /// A `running` claim older than this is taken over: its owner crashed before completing it.
    stale_after: Duration,
}

#[derive(QueryableByName)]
struct Entry {
    #[diesel(sql_type = Text)]
    request: String,
    #[diesel(sql_type = Text)]
    response: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
}

const RUNNING: &str = "running";
const DONE: &str = "done";

/// The SQL with `$n` placeholders written for the connection's backend (`?n` on SQLite).
fn sql(conn: &DbConn, text: &str) -> String {
    match conn {
        DbConn::Pg(_) => text.to_string(),
        DbConn::Sqlite(_) => text.replace('$', "?"),
    }
}

impl IdempotencyKeys {
    /// The keys kept in `table` (one of the module's own tables).
    pub const fn new(table: &'static str) -> Self {
        IdempotencyKeys {
            table,
            stale_after: Duration::from_secs(10 * 60),
        }
    }

    /// Claims `key` for `request` (the canonical form of the request: same request, same text).
    pub fn claim(
        &self,
        conn: &mut DbConn,
        caller: &str,
        key: &str,
        request: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Claim> {
        let insert = sql(
            conn,
            &format!(
                "INSERT INTO {} (caller, key, request, response, state, created_at) \
                 VALUES ($1, $2, $3, '', '{RUNNING}', $4) ON CONFLICT (caller, key) DO NOTHING",
                self.table
            ),
        );
        // On PostgreSQL a concurrent first claim makes this wait until that transaction ends.
        let inserted = diesel::sql_query(insert)
            .bind::<Text, _>(caller)
            .bind::<Text, _>(key)
            .bind::<Text, _>(request)
            .bind::<Timestamp, _>(now)
            .execute(conn)?;
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let select = sql(
            conn,
            &format!(
                "SELECT request, response, state, created_at FROM {} WHERE caller = $1 AND key = $2",
                self.table
            ),
        );
        let Some(entry) = diesel::sql_query(select)
            .bind::<Text, _>(caller)
            .bind::<Text, _>(key)
            .get_result::<Entry>(conn)
            .optional()?
        else {
            // Purged between the two statements: claim afresh.
            return self.claim(conn, caller, key, request, now);
        };
        if entry.request != request {
            return Ok(Claim::Reused);
        }
        if entry.state == DONE {
            return Ok(Claim::Replay(entry.response));
        }
        let stale = chrono::Duration::from_std(self.stale_after)
            .map(|d| entry.created_at < now - d)
            .unwrap_or(false);
        if stale {
            let take_over = sql(
                conn,
                &format!(
                    "UPDATE {} SET created_at = $1 WHERE caller = $2 AND key = $3 \
                     AND state = '{RUNNING}' AND created_at = $4",
                    self.table
                ),
            );
            let taken = diesel::sql_query(take_over)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(caller)
                .bind::<Text, _>(key)
                .bind::<Timestamp, _>(entry.created_at)
                .execute(conn)?;
            if taken == 1 {
                return Ok(Claim::New);
            }
        }
        Ok(Claim::InProgress)
    }

    /// Claims `key`, when the request carries one, inside the transaction that does the work. `Some` is the
    /// answer without doing it: the stored outcome replayed, or the refusal of a reused or running key.
    pub fn begin<T: DeserializeOwned, E: ApiError>(
        &self,
        conn: &mut DbConn,
        caller: &str,
        key: Option<&str>,
        request: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Option<Result<T, E>>> {
        let Some(key) = key else {
            return Ok(None);
        };
        Ok(match self.claim(conn, caller, key, request, now)? {
            Claim::New => None,
            Claim::Replay(stored) => Some(replay(&stored)),
            Claim::Reused => Some(Err(E::from_problem(Problem::idempotency_key_reused()))),
            Claim::InProgress => Some(Err(E::from_problem(Problem::idempotency_key_in_use()))),
        })
    }

    /// Ends the work [`begin`](Self::begin) let run: a decided outcome (success or business error) is kept
    /// with the key, when there is one, and returned; a fault becomes the transaction's failure, so
    /// everything rolls back, the key included, and a retry runs afresh.
    pub fn settle<T: Serialize, E: ApiError + From<diesel::result::Error>>(
        &self,
        conn: &mut DbConn,
        caller: &str,
        key: Option<&str>,
        outcome: Result<T, E>,
    ) -> Result<Result<T, E>, TxError<E>> {
        let Some(stored) = record(&outcome) else {
            return Err(TxError::Fail(
                outcome
                    .err()
                    .unwrap_or_else(|| E::from_problem(Problem::internal())),
            ));
        };
        if let Some(key) = key {
            self.complete(conn, caller, key, &stored)?;
        }
        Ok(outcome)
    }

    /// Stores the outcome of a claimed key (see [`record`]).
    pub fn complete(
        &self,
        conn: &mut DbConn,
        caller: &str,
        key: &str,
        response: &str,
    ) -> QueryResult<()> {
        let update = sql(
            conn,
            &format!(
                "UPDATE {} SET response = $1, state = '{DONE}' WHERE caller = $2 AND key = $3",
                self.table
            ),
        );
        diesel::sql_query(update)
            .bind::<Text, _>(response)
            .bind::<Text, _>(caller)
            .bind::<Text, _>(key)
            .execute(conn)
            .map(|_| ())
    }

    /// Gives a claimed key up without an outcome (the request could not be decided, e.g. a module it
    /// needs was unavailable): the next request with the key runs afresh.
    pub fn release(&self, conn: &mut DbConn, caller: &str, key: &str) -> QueryResult<()> {
        let delete = sql(
            conn,
            &format!(
                "DELETE FROM {} WHERE caller = $1 AND key = $2 AND state = '{RUNNING}'",
                self.table
            ),
        );
        diesel::sql_query(delete)
            .bind::<Text, _>(caller)
            .bind::<Text, _>(key)
            .execute(conn)
            .map(|_| ())
    }

    /// Forgets keys created before `cutoff`; returns how many.
    pub fn purge(&self, conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
        let delete = sql(
            conn,
            &format!("DELETE FROM {} WHERE created_at < $1", self.table),
        );
        diesel::sql_query(delete)
            .bind::<Timestamp, _>(cutoff)
            .execute(conn)
    }
}

/// An `Idempotency-Key` as accepted: 1–255 visible ASCII characters.
pub fn check_key(key: &str) -> Result<(), FieldError> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(FieldError::new(
            "Idempotency-Key",
            "must be 1-255 visible ASCII characters",
        ))
    }
}

/// The stored form of an outcome, `{"ok": value}` or `{"problem": {...}}`.
#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stored<T> {
    Ok(T),
    Problem(Problem),
}

/// The stored form of a decided outcome: the value, or the business error's problem. `None` for a fault
/// (5xx): nothing was decided, so the caller rolls back (or releases the key) and a retry runs afresh.
pub fn record<T: Serialize, E: ApiError>(outcome: &Result<T, E>) -> Option<String> {
    let stored = match outcome {
        Ok(value) => Stored::Ok(value),
        Err(e) => {
            let problem = e.to_problem();
            if problem.status >= 500 {
                return None;
            }
            Stored::Problem(problem)
        }
    };
    serde_json::to_string(&stored).ok()
}

/// The outcome a stored record stands for.
pub fn replay<T: DeserializeOwned, E: ApiError>(stored: &str) -> Result<T, E> {
    match serde_json::from_str::<Stored<T>>(stored) {
        Ok(Stored::Ok(value)) => Ok(value),
        Ok(Stored::Problem(p)) => Err(E::from_problem(p)),
        Err(_) => Err(E::from_problem(Problem::internal())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, DbError, write_transaction};
    use diesel::connection::SimpleConnection;

    const KEYS: IdempotencyKeys = IdempotencyKeys::new("test_idempotency_keys");

    fn database() -> Result<(Database, std::path::PathBuf), DbError> {
        let dir = std::env::temp_dir().join(format!("shop-idem-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 2)?;
        db.get()?.batch_execute(
            "CREATE TABLE test_idempotency_keys (caller TEXT NOT NULL, key TEXT NOT NULL, \
             request TEXT NOT NULL, response TEXT NOT NULL, state TEXT NOT NULL, \
             created_at TIMESTAMP NOT NULL, PRIMARY KEY (caller, key))",
        )?;
        Ok((db, dir))
    }

    #[test]
    fn a_key_runs_once_replays_refuses_another_body_and_says_when_still_running()
    -> Result<(), DbError> {
        let (db, dir) = database()?;
        let mut conn = db.get()?;
        let now = crate::db::now();
        let claim = |c: &mut DbConn, caller: &str, request: &str| {
            write_transaction(c, |c| KEYS.claim(c, caller, "k1", request, now))
        };
        assert_eq!(claim(&mut conn, "alice", "{\"n\":1}")?, Claim::New);
        assert_eq!(claim(&mut conn, "alice", "{\"n\":1}")?, Claim::InProgress);
        assert_eq!(claim(&mut conn, "alice", "{\"n\":2}")?, Claim::Reused);
        assert_eq!(
            claim(&mut conn, "bob", "{\"n\":1}")?,
            Claim::New,
            "keys are per caller"
        );
        write_transaction(&mut conn, |c| KEYS.complete(c, "alice", "k1", "stored"))?;
        assert_eq!(
            claim(&mut conn, "alice", "{\"n\":1}")?,
            Claim::Replay("stored".into())
        );
        write_transaction(&mut conn, |c| KEYS.release(c, "bob", "k1"))?;
        assert_eq!(
            claim(&mut conn, "bob", "{\"n\":3}")?,
            Claim::New,
            "released"
        );
        assert_eq!(
            KEYS.purge(&mut conn, now + chrono::Duration::seconds(1))?,
            2
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn a_claim_whose_owner_vanished_is_taken_over() -> Result<(), DbError> {
        let (db, dir) = database()?;
        let mut conn = db.get()?;
        let then = crate::db::now() - chrono::Duration::hours(1);
        assert_eq!(KEYS.claim(&mut conn, "a", "k", "r", then)?, Claim::New);
        assert_eq!(
            KEYS.claim(&mut conn, "a", "k", "r", crate::db::now())?,
            Claim::New
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[derive(Debug, thiserror::Error, PartialEq)]
    #[error("x")]
    struct E(String);

    impl From<diesel::result::Error> for E {
        fn from(e: diesel::result::Error) -> Self {
            E(e.to_string())
        }
    }

    impl From<crate::AccessDenied> for E {
        fn from(_: crate::AccessDenied) -> Self {
            E("denied".into())
        }
    }

    impl ApiError for E {
        fn to_problem(&self) -> Problem {
            let status = if self.0 == "boom" { 500 } else { 409 };
            Problem::new(status, &self.0, "t", "")
        }
        fn from_problem(p: Problem) -> Self {
            E(p.code)
        }
        fn unavailable(d: String) -> Self {
            E(d)
        }
    }

    #[test]
    fn begin_and_settle_keep_decided_outcomes_and_leave_faults_undecided() -> Result<(), DbError> {
        let (db, dir) = database()?;
        let mut conn = db.get()?;
        let now = crate::db::now();
        let key = Some("k");
        let begin =
            |c: &mut DbConn, request: &str| KEYS.begin::<u32, E>(c, "alice", key, request, now);
        assert_eq!(begin(&mut conn, "r")?, None, "a new key runs");
        let settled = KEYS.settle(&mut conn, "alice", key, Ok::<u32, E>(7));
        assert!(matches!(settled, Ok(Ok(7))));
        assert_eq!(begin(&mut conn, "r")?, Some(Ok(7)), "replayed");
        assert_eq!(
            begin(&mut conn, "other")?,
            Some(Err(E("idempotency_key_reused".into())))
        );
        // A fault is the transaction's failure and is not kept.
        assert_eq!(KEYS.begin::<u32, E>(&mut conn, "bob", key, "r", now)?, None);
        let fault = KEYS.settle(&mut conn, "bob", key, Err::<u32, E>(E("boom".into())));
        assert!(matches!(fault, Err(TxError::Fail(E(code))) if code == "boom"));
        assert_eq!(
            KEYS.begin::<u32, E>(&mut conn, "bob", key, "r", now)?,
            Some(Err(E("idempotency_key_in_use".into()))),
            "still only claimed: the caller's rollback removes the claim"
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn outcomes_round_trip_through_their_record() {
        let stored = |outcome| record(&outcome).unwrap_or_default();
        assert_eq!(replay::<u32, E>(&stored(Ok::<u32, E>(7))), Ok(7));
        assert_eq!(
            replay::<u32, E>(&stored(Err(E("sold_out".into())))),
            Err(E("sold_out".into()))
        );
        let fault: Result<u32, E> = Err(E("boom".into()));
        assert_eq!(
            record(&fault),
            None,
            "a fault decides nothing and is not kept"
        );
        let unit: Result<(), E> = Ok(());
        assert_eq!(replay::<(), E>(&record(&unit).unwrap_or_default()), Ok(()));
        let none: Result<Option<u32>, E> = Ok(None);
        assert_eq!(
            replay::<Option<u32>, E>(&record(&none).unwrap_or_default()),
            Ok(None)
        );
    }
}
