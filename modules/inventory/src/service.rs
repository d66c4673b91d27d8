//! Inventory's business rules: who may do what, and how stock moves without ever overselling.

use std::time::Duration;

use chrono::NaiveDateTime;
use shop_kernel::db::{self, Database, DbConn, TxError, retry_lost_races, write_transaction};
use shop_kernel::idempotency::{self, IdempotencyKeys};
use shop_kernel::validation::{check, is_valid_sku};
use shop_kernel::{FieldError, RequestContext};
use uuid::Uuid;

use crate::api::{
    Adjustment, InventoryApi, Reservation, ReservationLine, ReservationStatus, SetStock,
    StockLevels,
};
use crate::error::InventoryError;
use crate::store;

/// Settings of the inventory implementation.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    /// How long a held reservation lasts if neither committed nor released.
    pub reservation_ttl: Duration,
    /// How long idempotency keys are kept (at least 24 hours).
    pub idempotency_retention: Duration,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            reservation_ttl: Duration::from_secs(15 * 60),
            idempotency_retention: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The local implementation of [`InventoryApi`].
#[derive(Debug, Clone)]
pub struct InventoryService {
    db: Database,
    config: InventoryConfig,
}

type Outcome<T> = Result<T, InventoryError>;

/// `Idempotency-Key`s of stock adjustments, per admin.
const IDEMPOTENCY_KEYS: IdempotencyKeys = IdempotencyKeys::new("inventory_idempotency_keys");

fn sku_checked(sku: &str) -> Outcome<()> {
    if is_valid_sku(sku) {
        Ok(())
    } else {
        Err(InventoryError::Validation(vec![FieldError::new(
            "sku",
            "must be 1-64 characters of A-Z a-z 0-9 - _ .",
        )]))
    }
}

fn levels((sku, on_hand, reserved): store::StockRow) -> StockLevels {
    StockLevels {
        sku,
        on_hand,
        reserved,
        available: on_hand - reserved,
    }
}

fn current_levels(conn: &mut DbConn, sku: &str) -> Outcome<StockLevels> {
    store::stock(conn, sku)?
        .map(levels)
        .ok_or_else(|| InventoryError::SkuNotFound {
            sku: sku.to_string(),
        })
}

fn load_reservation(conn: &mut DbConn, order_id: Uuid) -> Outcome<Option<Reservation>> {
    let id = order_id.to_string();
    let Some((status, expires_at)) = store::reservation(conn, &id)? else {
        return Ok(None);
    };
    let lines = store::reservation_lines(conn, &id)?
        .into_iter()
        .map(|(sku, quantity)| ReservationLine { sku, quantity })
        .collect();
    Ok(Some(Reservation {
        order_id,
        status,
        lines,
        expires_at: expires_at.and_utc(),
    }))
}

/// The reservation for an order, its row locked for the rest of the transaction.
fn load_locked(conn: &mut DbConn, order_id: Uuid) -> Outcome<Option<Reservation>> {
    store::lock_reservation(conn, &order_id.to_string())?;
    load_reservation(conn, order_id)
}

/// Gives back what a held reservation holds and marks it `to`.
fn close_hold(
    conn: &mut DbConn,
    reservation: &Reservation,
    to: ReservationStatus,
    now: NaiveDateTime,
) -> Outcome<()> {
    let id = reservation.order_id.to_string();
    if store::transition(conn, &id, ReservationStatus::Held, to, now)? == 1 {
        for line in &reservation.lines {
            store::unhold(conn, &line.sku, line.quantity, now)?;
        }
    }
    Ok(())
}

impl InventoryService {
    /// An inventory on `db` (its migrations already applied).
    pub fn new(db: Database, config: InventoryConfig) -> Self {
        InventoryService { db, config }
    }

    /// Expires held reservations whose time is up and forgets old idempotency keys; returns how many
    /// reservations expired. Run periodically by the host process; safe to run concurrently.
    pub async fn sweep(&self) -> Outcome<usize> {
        let retention = chrono::Duration::from_std(self.config.idempotency_retention)
            .unwrap_or(chrono::Duration::days(1));
        self.db
            .run(move |conn| {
                let now = db::now();
                let mut expired = 0;
                for id in store::expired_holds(conn, now, 500)? {
                    let Ok(order_id) = Uuid::parse_str(&id) else {
                        continue;
                    };
                    expired += write_transaction(conn, |c| -> Outcome<usize> {
                        match load_locked(c, order_id)? {
                            Some(r) if r.status == ReservationStatus::Held => {
                                close_hold(c, &r, ReservationStatus::Expired, now)?;
                                Ok(1)
                            }
                            _ => Ok(0),
                        }
                    })?;
                }
                IDEMPOTENCY_KEYS.purge(conn, now - retention)?;
                Ok(expired)
            })
            .await
    }

    async fn try_reserve(
        &self,
        order_id: Uuid,
        lines: Vec<ReservationLine>,
    ) -> Outcome<Reservation> {
        let ttl = chrono::Duration::from_std(self.config.reservation_ttl)
            .unwrap_or(chrono::Duration::minutes(15));
        self.db
            .run(move |conn| {
                // Two first reserves of one order race on the insert; the loser sees the winner's reservation.
                retry_lost_races(conn, |c| {
                    // The reservation row is written before any stock is held: a concurrent duplicate (the
                    // caller's own retry) then waits on this row's key instead of racing for the units, and
                    // sees this reservation once it commits.
                    let now = db::now();
                    let rows: Vec<(String, i64)> =
                        lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
                    let written = store::insert_reservation(
                        c,
                        &order_id.to_string(),
                        ReservationStatus::Held,
                        &rows,
                        now + ttl,
                        now,
                    )?;
                    if !written {
                        let existing = load_locked(c, order_id)?.ok_or_else(|| {
                            InventoryError::Internal("reservation vanished".into())
                        })?;
                        return if existing.lines == lines {
                            Ok(existing)
                        } else {
                            Err(InventoryError::ReservationConflict.into())
                        };
                    }
                    for line in &lines {
                        if store::hold(c, &line.sku, line.quantity, now)? == 0 {
                            // Rolls the whole transaction back: all lines or none, and no reservation row.
                            return Err(InventoryError::InsufficientStock {
                                sku: line.sku.clone(),
                            }
                            .into());
                        }
                    }
                    // Exactly what was written (the lines arrive normalized, sorted by SKU).
                    Ok(Reservation {
                        order_id,
                        status: ReservationStatus::Held,
                        lines: lines.clone(),
                        expires_at: (now + ttl).and_utc(),
                    })
                })
            })
            .await
    }
}

#[async_trait::async_trait]
impl InventoryApi for InventoryService {
    async fn get_stock(&self, _ctx: &RequestContext, sku: String) -> Outcome<StockLevels> {
        sku_checked(&sku)?;
        self.db.run(move |conn| current_levels(conn, &sku)).await
    }

    async fn set_stock(
        &self,
        ctx: &RequestContext,
        sku: String,
        stock: SetStock,
    ) -> Outcome<StockLevels> {
        ctx.require_admin()?;
        sku_checked(&sku)?;
        check(&stock).map_err(InventoryError::Validation)?;
        self.db
            .run(move |conn| {
                // A concurrent first PUT of the same SKU can win the insert race; the retry then updates.
                retry_lost_races(conn, |c| {
                    let now = db::now();
                    if store::set_on_hand(c, &sku, stock.on_hand, now)? == 0 {
                        if store::stock(c, &sku)?.is_some() {
                            return Err(InventoryError::BelowReserved { sku: sku.clone() }.into());
                        }
                        store::insert_stock(c, &sku, stock.on_hand, now)?;
                    }
                    Ok(current_levels(c, &sku)?)
                })
            })
            .await
    }

    async fn adjust_stock(
        &self,
        ctx: &RequestContext,
        sku: String,
        adjustment: Adjustment,
        idempotency_key: Option<String>,
    ) -> Outcome<StockLevels> {
        let admin = ctx.require_admin()?.id.to_string();
        sku_checked(&sku)?;
        check(&adjustment).map_err(InventoryError::Validation)?;
        if let Some(key) = &idempotency_key {
            idempotency::check_key(key).map_err(|e| InventoryError::Validation(vec![e]))?;
        }
        let request = serde_json::json!({ "sku": sku, "delta": adjustment.delta, "reason": adjustment.reason })
            .to_string();
        self.db
            .run(move |conn| {
                // The key is claimed and completed in the change's own transaction: a concurrent duplicate
                // waits for it, then replays its outcome.
                retry_lost_races(conn, |c| {
                    let now = db::now();
                    let key = idempotency_key.as_deref();
                    if let Some(answer) = IDEMPOTENCY_KEYS.begin(c, &admin, key, &request, now)? {
                        return Ok(answer);
                    }
                    let outcome = if store::add_on_hand(c, &sku, adjustment.delta, now)? == 1 {
                        store::insert_adjustment(
                            c,
                            &sku,
                            adjustment.delta,
                            &adjustment.reason,
                            Some(admin.clone()),
                            now,
                        )?;
                        current_levels(c, &sku)
                    } else if store::stock(c, &sku)?.is_some() {
                        Err(InventoryError::InsufficientStock { sku: sku.clone() })
                    } else {
                        Err(InventoryError::SkuNotFound { sku: sku.clone() })
                    };
                    // A refused adjustment changed nothing else, so its transaction commits too.
                    IDEMPOTENCY_KEYS.settle(c, &admin, key, outcome)
                })
                .and_then(|outcome| outcome)
            })
            .await
    }

    async fn reserve(
        &self,
        _ctx: &RequestContext,
        order_id: Uuid,
        mut lines: Vec<ReservationLine>,
    ) -> Outcome<Reservation> {
        let mut errors = Vec::new();
        if lines.is_empty() || lines.len() > 100 {
            errors.push(FieldError::new("lines", "must hold 1-100 lines"));
        }
        for (i, line) in lines.iter().enumerate() {
            if let Err(mut e) = check(line) {
                for f in &mut e {
                    f.field = format!("lines[{i}].{}", f.field);
                }
                errors.extend(e);
            }
        }
        // Sorted lines make retries comparable and lock rows in one order (no deadlocks between orders).
        lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        if lines.windows(2).any(|w| w[0].sku == w[1].sku) {
            errors.push(FieldError::new("lines", "must not name a SKU twice"));
        }
        if !errors.is_empty() {
            return Err(InventoryError::Validation(errors));
        }
        match self.try_reserve(order_id, lines.clone()).await {
            // Expired holds may still count as reserved until the sweeper runs: sweep, then try once more.
            Err(InventoryError::InsufficientStock { .. })
                if self.sweep().await.unwrap_or(0) > 0 =>
            {
                self.try_reserve(order_id, lines).await
            }
            other => other,
        }
    }

    async fn commit_reservation(
        &self,
        _ctx: &RequestContext,
        order_id: Uuid,
    ) -> Outcome<Reservation> {
        self.db
            .run(move |conn| {
                write_transaction(conn, |c| -> Outcome<Outcome<Reservation>> {
                    let Some(r) = load_locked(c, order_id)? else {
                        return Ok(Err(InventoryError::ReservationNotFound));
                    };
                    let now = db::now();
                    match r.status {
                        ReservationStatus::Committed => Ok(Ok(r)),
                        ReservationStatus::Held if r.expires_at.naive_utc() <= now => {
                            // Too late: give the units back now (committed), then refuse.
                            close_hold(c, &r, ReservationStatus::Expired, now)?;
                            Ok(Err(InventoryError::ReservationClosed("expired".into())))
                        }
                        ReservationStatus::Held => {
                            if store::transition(
                                c,
                                &order_id.to_string(),
                                ReservationStatus::Held,
                                ReservationStatus::Committed,
                                now,
                            )? == 1
                            {
                                for line in &r.lines {
                                    store::ship(c, &line.sku, line.quantity, now)?;
                                }
                                // Locked and moved by this transaction: it is what it was, committed.
                                return Ok(Ok(Reservation {
                                    status: ReservationStatus::Committed,
                                    ..r
                                }));
                            }
                            Ok(load_reservation(c, order_id)?
                                .ok_or(InventoryError::ReservationNotFound))
                        }
                        closed => Ok(Err(InventoryError::ReservationClosed(
                            closed.as_str().into(),
                        ))),
                    }
                })?
            })
            .await
    }

    async fn release_reservation(
        &self,
        _ctx: &RequestContext,
        order_id: Uuid,
    ) -> Outcome<Reservation> {
        let ttl = chrono::Duration::from_std(self.config.reservation_ttl)
            .unwrap_or(chrono::Duration::minutes(15));
        self.db
            .run(move |conn| {
                // A concurrent first release or reserve may win the insert; the retry then sees it.
                retry_lost_races(conn, |c| {
                    let now = db::now();
                    let id = order_id.to_string();
                    match load_locked(c, order_id)? {
                        // A tombstone: a reserve for this order arriving late must not hold stock.
                        None => {
                            let written = store::insert_reservation(
                                c,
                                &id,
                                ReservationStatus::Released,
                                &[],
                                now + ttl,
                                now,
                            )?;
                            if !written {
                                // A reserve got in first: decide again from its reservation.
                                return Err(TxError::LostRace);
                            }
                        }
                        Some(r) if r.status == ReservationStatus::Held => {
                            close_hold(c, &r, ReservationStatus::Released, now)?
                        }
                        Some(r) if r.status == ReservationStatus::Committed => {
                            if store::transition(
                                c,
                                &id,
                                ReservationStatus::Committed,
                                ReservationStatus::Released,
                                now,
                            )? == 1
                            {
                                for line in &r.lines {
                                    store::restock(c, &line.sku, line.quantity, now)?;
                                }
                            }
                        }
                        Some(_) => {}
                    }
                    Ok(
                        load_reservation(c, order_id)?
                            .ok_or(InventoryError::ReservationNotFound)?,
                    )
                })
            })
            .await
    }

    async fn get_reservation(&self, _ctx: &RequestContext, order_id: Uuid) -> Outcome<Reservation> {
        self.db
            .run(move |conn| {
                load_reservation(conn, order_id)?.ok_or(InventoryError::ReservationNotFound)
            })
            .await
    }
}
