//! The relay: claims due events from one module's outbox, hands them to the [`EventDelivery`], and marks
//! each delivered or failed. Several relays (one per instance of the module) may run at once.

use std::sync::Arc;
use std::time::Duration;

use super::EventDelivery;
use super::outbox::{Backlog, Backoff, Outbox};
use crate::db::{Database, DbError};

/// Events claimed per round.
const BATCH: i64 = 100;

/// Delivers one module's outbox.
#[derive(Clone)]
pub struct Relay {
    module: &'static str,
    db: Database,
    outbox: Outbox,
    delivery: Arc<dyn EventDelivery>,
    /// How long a claim holds an event; a relay that dies mid-delivery leaves it due again after this.
    lease: Duration,
    /// The wait after a failed delivery.
    backoff: Backoff,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Events handed to every subscriber.
    pub delivered: usize,
    /// Events that some subscriber refused or did not answer (retried later; parked after repeated
    /// refusals).
    pub failed: usize,
}

impl Round {
    /// True when the round claimed a full batch: more may be due at once.
    pub fn was_full(&self) -> bool {
        (self.delivered + self.failed) as i64 >= BATCH
    }
}

impl Relay {
    /// The relay of `module`'s `outbox` on `db` through `delivery`, claiming events for `lease` and
    /// waiting `backoff` after a failure.
    pub fn new(
        module: &'static str,
        db: Database,
        outbox: Outbox,
        delivery: Arc<dyn EventDelivery>,
        lease: Duration,
        backoff: Backoff,
    ) -> Self {
        Relay {
            module,
            db,
            outbox,
            delivery,
            lease,
            backoff,
        }
    }

    /// The module whose outbox this is.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// Claims a batch of due events and delivers them, one after the other. Past half the lease the rest
    /// are handed back, due at once, so that no claim outlives its lease while this relay still works on it.
    pub async fn round(&self) -> Result<Round, DbError> {
        let (outbox, lease, backoff) = (self.outbox, self.lease, self.backoff);
        let started = std::time::Instant::now();
        let events = self
            .db
            .run(move |conn| {
                outbox
                    .claim(conn, crate::db::now(), lease, BATCH)
                    .map_err(DbError::from)
            })
            .await?;
        let mut round = Round::default();
        let mut outcomes = Vec::new();
        let mut rest = Vec::new();
        let mut events = events.into_iter();
        while let Some(event) = events.next() {
            if started.elapsed() > lease / 2 {
                rest = std::iter::once(event.id)
                    .chain(events.map(|e| e.id))
                    .collect();
                break;
            }
            let outcome = self.delivery.deliver(&event).await;
            let id = event.id;
            match &outcome {
                Ok(()) => round.delivered += 1,
                Err(error) => {
                    round.failed += 1;
                    tracing::warn!(
                        module = self.module,
                        event_id = %id,
                        event_type = %event.event_type,
                        permanent = error.is_permanent(),
                        %error,
                        "event delivery failed; retrying later"
                    );
                }
            }
            outcomes.push((id, outcome));
        }
        // One commit for the whole round: a relay that dies before it redelivers the round, which the
        // subscribers' inboxes absorb.
        self.db
            .run(move |conn| {
                crate::db::write_transaction(conn, |c| {
                    let now = crate::db::now();
                    for (id, outcome) in outcomes {
                        match outcome {
                            Ok(()) => outbox.delivered(c, id, now)?,
                            Err(error) => outbox.failed(c, id, &error, backoff, now)?,
                        }
                    }
                    outbox.release(c, &rest, now)
                })
                .map_err(DbError::from)
            })
            .await?;
        Ok(round)
    }

    /// The outbox's backlog, for metrics.
    pub async fn backlog(&self) -> Result<Backlog, DbError> {
        let outbox = self.outbox;
        self.db
            .run(move |conn| outbox.backlog(conn).map_err(DbError::from))
            .await
    }

    /// Deletes events delivered more than `retention` ago; returns how many.
    pub async fn purge(&self, retention: Duration) -> Result<usize, DbError> {
        let outbox = self.outbox;
        self.db
            .run(move |conn| {
                let cutoff = crate::db::now()
                    - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
                outbox.purge(conn, cutoff).map_err(DbError::from)
            })
            .await
    }
}
