//! A subscriber's inbox: the ids of the events it applied, written in the transaction that applies each
//! one, so a redelivered event is recognised and skipped (exactly-once effect over at-least-once delivery).
//! Each subscribing module has its own table:
//!
//! ```sql
//! CREATE TABLE <module>_inbox (
//!     event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, handled_at TIMESTAMP NOT NULL);
//! ```

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};

use super::Event;
use crate::db::DbConn;

/// A module's inbox table.
#[derive(Debug, Clone, Copy)]
pub struct Inbox {
    table: &'static str,
}

fn sql(conn: &DbConn, text: &str) -> String {
    match conn {
        DbConn::Pg(_) => text.to_string(),
        DbConn::Sqlite(_) => text.replace('$', "?"),
    }
}

impl Inbox {
    /// The inbox kept in `table` (one of the module's own tables).
    pub const fn new(table: &'static str) -> Self {
        Inbox { table }
    }

    /// Records `event` as handled; `false` when it was handled before (skip it). Call it first in the
    /// transaction that applies the event: a concurrent delivery of the same event waits here for that
    /// transaction, then sees it handled.
    pub fn first_time(
        &self,
        conn: &mut DbConn,
        event: &Event,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let insert = sql(
            conn,
            &format!(
                "INSERT INTO {} (event_id, event_type, handled_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (event_id) DO NOTHING",
                self.table
            ),
        );
        diesel::sql_query(insert)
            .bind::<Text, _>(event.id.to_string())
            .bind::<Text, _>(&event.event_type)
            .bind::<Timestamp, _>(now)
            .execute(conn)
            .map(|inserted| inserted == 1)
    }

    /// Forgets events handled before `cutoff` (older than any redelivery); returns how many.
    pub fn purge(&self, conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
        let delete = sql(
            conn,
            &format!("DELETE FROM {} WHERE handled_at < $1", self.table),
        );
        diesel::sql_query(delete)
            .bind::<Timestamp, _>(cutoff)
            .execute(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, DbError, write_transaction};
    use diesel::connection::SimpleConnection;

    #[test]
    fn an_event_is_handled_once_and_a_rolled_back_handling_does_not_count() -> Result<(), DbError> {
        let dir = std::env::temp_dir().join(format!("shop-inbox-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 2)?;
        let mut conn = db.get()?;
        conn.batch_execute(
            "CREATE TABLE test_inbox (event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, \
             handled_at TIMESTAMP NOT NULL)",
        )?;
        let inbox = Inbox::new("test_inbox");
        let now = crate::db::now();
        let event = Event {
            id: uuid::Uuid::now_v7(),
            event_type: "test.ping".into(),
            version: 1,
            occurred_at: now.and_utc(),
            payload: serde_json::json!({}),
        };
        let failed: Result<bool, DbError> = write_transaction(&mut conn, |c| {
            inbox.first_time(c, &event, now)?;
            Err(DbError::Task("the handling failed".into()))
        });
        assert!(failed.is_err());
        assert!(
            inbox.first_time(&mut conn, &event, now)?,
            "rolled back: not handled"
        );
        assert!(
            !inbox.first_time(&mut conn, &event, now)?,
            "a repeat is skipped"
        );
        assert_eq!(
            inbox.purge(&mut conn, now + chrono::Duration::seconds(1))?,
            1
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
