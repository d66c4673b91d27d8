//! The checkout saga, orchestrated by ordering: reserve stock → charge the wallet → commit the stock →
//! confirmed; a refused step compensates the ones done (refund, release) → failed; a confirmed order's
//! cancellation refunds and releases → cancelled. Each step is recorded in `ordering_orders.step` before
//! the next one starts, and every call it makes is idempotent by order id, so a driver that stops anywhere
//! (crash, outage) can be replaced by another that starts again from the recorded step.

use std::time::Duration;

use shop_inventory::{InventoryError, ReservationLine, ReservationStatus};
use shop_kernel::db::{self, write_transaction};
use shop_kernel::events::Event;
use shop_kernel::{Money, RequestContext};
use shop_payments::PaymentsError;
use uuid::Uuid;

use crate::api::{OrderCancelled, OrderConfirmed, OrderEventLine, OrderStatus};
use crate::error::OrderingError;
use crate::service::{OUTBOX, OrderingService, Outcome, parse_id};
use crate::store::{self, Advance, LineRow, OrderRow, step};

/// Who drives: the request that placed or cancelled the order, or the recovery task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    Request,
    Recovery,
}

/// Why an order failed, as `Order.failure` shows it.
pub(crate) mod failure {
    pub const INSUFFICIENT_STOCK: &str = "insufficient_stock";
    pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
    pub const RESERVATION_EXPIRED: &str = "reservation_expired";
    pub const UNAVAILABLE: &str = "unavailable";
}

/// The wait before the recovery task tries an unfinished order again: `base` doubling, at most 64 × `base`
/// (1 s to a minute by default).
pub(crate) fn backoff(base: Duration, attempts: i32) -> Duration {
    base.saturating_mul(1u32 << attempts.clamp(0, 6))
}

/// What the saga does next, decided from the answer to a step's call.
enum Next {
    /// Record this move and go on.
    Advance(
        &'static str,
        OrderStatus,
        Option<(&'static str, Option<String>)>,
    ),
    /// A module it needs is unavailable: stop here; the recovery task goes on later.
    Stop,
}

fn fail(code: &'static str, detail: Option<String>) -> Next {
    Next::Advance(step::COMPENSATE, OrderStatus::Pending, Some((code, detail)))
}

/// Any answer but a refusal the saga has a rule for: a module unavailable, a timeout, a deadlock, a fault
/// on its side. None of them says the order cannot be placed, so nothing is undone: the order stays at its
/// step and is tried again (the recovery task, after a backoff). Only the give-up time ends a wait before
/// the charge; after the charge the commit is retried until it answers.
fn not_now<E: std::fmt::Display>(error: E, is_unavailable: bool, order: &str) -> Next {
    if is_unavailable {
        tracing::info!(order_id = order, %error, "a checkout step is unavailable; retrying later");
    } else {
        tracing::error!(order_id = order, %error, "a checkout step failed unexpectedly; retrying later");
    }
    Next::Stop
}

impl OrderingService {
    /// Runs an order's saga from its recorded step until it is done or a module it needs is unavailable;
    /// returns the order as it then is. `known` is the order as the caller just wrote it, if it did. Any
    /// number of drivers may run it at once: every call is idempotent and every move is conditional on the
    /// step it starts from.
    pub(crate) async fn drive(
        &self,
        ctx: &RequestContext,
        id: &str,
        driver: Driver,
        mut known: Option<(OrderRow, Vec<LineRow>)>,
    ) -> Outcome<(OrderRow, Vec<LineRow>)> {
        let ctx = ctx.as_module(crate::api::MODULE);
        // Each pass makes one move; a saga has at most five, the margin covers moves lost to other drivers.
        for _ in 0..12 {
            // The row as this driver last wrote it, or as stored when another driver may have moved it.
            let (mut row, lines) = match known.take() {
                Some(current) => current,
                None => self.load(id).await?,
            };
            let order_id = parse_id(&row.id)?;
            let next = match row.step.as_str() {
                step::DONE => return Ok((row, lines)),
                step::RESERVE if driver == Driver::Recovery && self.gave_up(&row) => {
                    fail(failure::UNAVAILABLE, None)
                }
                step::RESERVE => {
                    let wanted = lines
                        .iter()
                        .map(|l| ReservationLine {
                            sku: l.sku.clone(),
                            quantity: l.quantity,
                        })
                        .collect();
                    match self.inventory.reserve(&ctx, order_id, wanted).await {
                        // Committed: an earlier driver got further than the record says; the next steps
                        // answer what they did then.
                        Ok(r)
                            if matches!(
                                r.status,
                                ReservationStatus::Held | ReservationStatus::Committed
                            ) =>
                        {
                            self.crash_point(step::RESERVE);
                            Next::Advance(step::CHARGE, OrderStatus::Pending, None)
                        }
                        Ok(_) => fail(failure::RESERVATION_EXPIRED, None),
                        // All or nothing: nothing is held, nothing was charged, so nothing to undo.
                        Err(
                            InventoryError::InsufficientStock { sku }
                            | InventoryError::SkuNotFound { sku },
                        ) => Next::Advance(
                            step::DONE,
                            OrderStatus::Failed,
                            Some((
                                failure::INSUFFICIENT_STOCK,
                                Some(serde_json::json!({ "sku": sku }).to_string()),
                            )),
                        ),
                        Err(e) => {
                            let down = matches!(e, InventoryError::Unavailable(_));
                            not_now(e, down, &row.id)
                        }
                    }
                }
                step::CHARGE if driver == Driver::Recovery && self.gave_up(&row) => {
                    fail(failure::UNAVAILABLE, None)
                }
                // Nothing to pay (free products): payments refuses a zero charge, and there is none to make.
                step::CHARGE if row.total_minor == 0 => {
                    Next::Advance(step::COMMIT, OrderStatus::Pending, None)
                }
                step::CHARGE => {
                    let user = parse_id(&row.user_id)?;
                    let total = Money::new(row.total_minor, row.currency.clone());
                    match self.payments.charge(&ctx, order_id, user, total).await {
                        Ok(_) => {
                            self.crash_point(step::CHARGE);
                            Next::Advance(step::COMMIT, OrderStatus::Pending, None)
                        }
                        Err(PaymentsError::InsufficientFunds { balance }) => fail(
                            failure::INSUFFICIENT_FUNDS,
                            Some(serde_json::json!({ "balance": balance }).to_string()),
                        ),
                        // Refunded before it was charged: only a compensation after the give-up time
                        // does that, and it is already under way.
                        Err(PaymentsError::PaymentClosed) => fail(failure::UNAVAILABLE, None),
                        Err(e) => {
                            let down = matches!(e, PaymentsError::Unavailable(_));
                            not_now(e, down, &row.id)
                        }
                    }
                }
                // Money was taken: keep trying to commit; an expired hold is refused and then refunded.
                step::COMMIT => match self.inventory.commit_reservation(&ctx, order_id).await {
                    Ok(r) if r.status == ReservationStatus::Committed => {
                        self.crash_point(step::COMMIT);
                        Next::Advance(step::DONE, OrderStatus::Confirmed, None)
                    }
                    Ok(_) | Err(InventoryError::ReservationClosed(_)) => {
                        fail(failure::RESERVATION_EXPIRED, None)
                    }
                    Err(e) => {
                        let down = matches!(e, InventoryError::Unavailable(_));
                        not_now(e, down, &row.id)
                    }
                },
                step::COMPENSATE | step::CANCEL => {
                    if !self.undo(&ctx, order_id).await {
                        Next::Stop
                    } else {
                        self.crash_point(&row.step);
                        if row.step == step::CANCEL {
                            Next::Advance(step::DONE, OrderStatus::Cancelled, None)
                        } else {
                            Next::Advance(step::DONE, OrderStatus::Failed, None)
                        }
                    }
                }
                other => {
                    return Err(OrderingError::Internal(format!(
                        "unknown saga step {other}"
                    )));
                }
            };
            match next {
                Next::Stop => return Ok((row, lines)),
                Next::Advance(to_step, status, failure) => {
                    let moved = self
                        .record(&row, &lines, to_step, status, failure.clone())
                        .await?;
                    if let Some(at) = moved {
                        row.step = to_step.into();
                        row.status = status.as_str().into();
                        if let Some((code, detail)) = failure {
                            row.failure = Some(code.into());
                            row.failure_detail = detail;
                        }
                        if to_step == step::DONE {
                            row.driving_until = None;
                        }
                        row.updated_at = at;
                        known = Some((row, lines));
                    }
                }
            }
        }
        self.load(id).await
    }

    /// Gives back what an order took: the charge, then the stock. Both calls are idempotent and leave a
    /// tombstone when there was nothing to give back, so a late charge or reserve cannot go through.
    /// False when a module is unavailable (or refuses) and the undo must be tried again.
    async fn undo(&self, ctx: &RequestContext, order_id: Uuid) -> bool {
        if let Err(e) = self.payments.refund(ctx, order_id).await {
            tracing::warn!(%order_id, error = %e, "refund failed; retrying later");
            return false;
        }
        if let Err(e) = self.inventory.release_reservation(ctx, order_id).await {
            tracing::warn!(%order_id, error = %e, "stock release failed; retrying later");
            return false;
        }
        true
    }

    /// True when a placement stuck before the charge went through has waited too long: it is compensated
    /// instead of retried.
    fn gave_up(&self, row: &OrderRow) -> bool {
        let age = db::now() - row.created_at;
        age.to_std()
            .is_ok_and(|age| age >= self.config.give_up_after)
    }

    /// Records a move (with the event a final status announces, in the same transaction; a final move also
    /// ends the request's hold on the order) and returns its time; `None` when another driver moved the
    /// order first (not an error: the next pass reads where it went).
    async fn record(
        &self,
        row: &OrderRow,
        lines: &[LineRow],
        to_step: &'static str,
        status: OrderStatus,
        failure: Option<(&'static str, Option<String>)>,
    ) -> Outcome<Option<chrono::NaiveDateTime>> {
        let event = match status {
            OrderStatus::Confirmed => Some(Event::new(
                &OrderConfirmed {
                    order_id: parse_id(&row.id)?,
                    user_id: parse_id(&row.user_id)?,
                    lines: lines
                        .iter()
                        .map(|l| {
                            Ok(OrderEventLine {
                                product_id: parse_id(&l.product_id)?,
                                sku: l.sku.clone(),
                                name: l.name.clone(),
                                quantity: l.quantity,
                                line_total: Money::new(l.line_total_minor, row.currency.clone()),
                            })
                        })
                        .collect::<Outcome<Vec<_>>>()?,
                    total: Money::new(row.total_minor, row.currency.clone()),
                },
                chrono::Utc::now(),
            )),
            OrderStatus::Cancelled => Some(Event::new(
                &OrderCancelled {
                    order_id: parse_id(&row.id)?,
                    user_id: parse_id(&row.user_id)?,
                    total: Money::new(row.total_minor, row.currency.clone()),
                },
                chrono::Utc::now(),
            )),
            OrderStatus::Pending | OrderStatus::Failed => None,
        }
        .transpose()
        .map_err(|e| OrderingError::Internal(format!("event: {e}")))?;
        let (id, from) = (row.id.clone(), row.step.clone());
        // A final move ends the request's hold on the order; any other keeps it as it is.
        let driving_until = if to_step == step::DONE {
            None
        } else {
            row.driving_until
        };
        self.db
            .run(move |conn| {
                let apply = |c: &mut shop_kernel::db::DbConn| {
                    let now = db::now();
                    let advance = Advance {
                        to_step,
                        status: status.as_str(),
                        failure: failure.as_ref().map(|(code, d)| (*code, d.as_deref())),
                        driving_until,
                    };
                    if !store::advance(c, &id, &from, advance, now)? {
                        return Ok::<_, OrderingError>(None);
                    }
                    if let Some(event) = &event {
                        OUTBOX.publish(c, event)?;
                    }
                    Ok(Some(now))
                };
                // A move without an event is one statement: no transaction around it.
                if event.is_some() {
                    write_transaction(conn, apply)
                } else {
                    apply(conn)
                }
            })
            .await
    }

    /// The test-only fault switch: exits the process right after `step`'s call succeeded, before the saga
    /// records it, as a crash there would.
    fn crash_point(&self, at: &str) {
        if self.config.crash_after.as_deref() == Some(at) {
            tracing::error!(step = at, "fault switch: exiting after this saga step");
            std::process::exit(86);
        }
    }
}
