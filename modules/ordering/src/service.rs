//! Ordering's business rules: what an order may hold, who sees it, idempotent placement, cancellation, and
//! the recovery task that finishes what a stopped saga left (the saga itself is in `saga.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use shop_catalog::{CatalogApi, CatalogError};
use shop_inventory::InventoryApi;
use shop_kernel::db::{self, Database, DbConn, is_unique_violation, write_transaction};
use shop_kernel::events::outbox::Outbox;
use shop_kernel::events::{FailingQuery, PendingEvent, ResubmitEvents, Resubmitted};
use shop_kernel::page::checked_id_page;
use shop_kernel::validation::check;
use shop_kernel::{FieldError, Money, Page, RequestContext};
use shop_payments::PaymentsApi;
use uuid::Uuid;

use crate::api::{MAX_LINES, NewOrder, Order, OrderLine, OrderQuery, OrderStatus, OrderingApi};
use crate::error::OrderingError;
use crate::saga::{Driver, backoff, failure};
use crate::store::{self, LineRow, OrderRow, step};

/// Settings of the ordering implementation.
#[derive(Debug, Clone)]
pub struct OrderingConfig {
    /// The shop's one currency (ISO 4217).
    pub currency: String,
    /// How long the process driving an order's saga holds it; after that the recovery task (of any
    /// instance) takes it over.
    pub lease: Duration,
    /// A placement that could not hold stock or charge the wallet for this long is compensated instead
    /// of retried.
    pub give_up_after: Duration,
    /// The recovery task's first wait before it tries an unfinished order again; it doubles with each
    /// attempt, up to 64 times this.
    pub retry_base: Duration,
    /// Test-only fault switch: the process exits right after this saga step's call succeeds
    /// (`reserve`, `charge`, `commit`, `compensate` or `cancel`).
    pub crash_after: Option<String>,
}

impl OrderingConfig {
    /// Production defaults for `currency`.
    pub fn new(currency: impl Into<String>) -> Self {
        OrderingConfig {
            currency: currency.into(),
            lease: Duration::from_secs(30),
            give_up_after: Duration::from_secs(5 * 60),
            retry_base: Duration::from_secs(1),
            crash_after: None,
        }
    }
}

/// The local implementation of [`OrderingApi`].
#[derive(Clone)]
pub struct OrderingService {
    pub(crate) db: Database,
    pub(crate) config: OrderingConfig,
    catalog: Arc<dyn CatalogApi>,
    pub(crate) inventory: Arc<dyn InventoryApi>,
    pub(crate) payments: Arc<dyn PaymentsApi>,
}

pub(crate) type Outcome<T> = Result<T, OrderingError>;

/// Ordering's outbox: `order_confirmed` and `order_cancelled`, written with the status change.
pub(crate) const OUTBOX: Outbox = Outbox::new(crate::OUTBOX_TABLE);

pub(crate) fn parse_id(id: &str) -> Outcome<Uuid> {
    Uuid::parse_str(id).map_err(|e| OrderingError::Internal(format!("bad stored id {id}: {e}")))
}

/// Unfinished orders the recovery task takes per round.
const RECOVERY_BATCH: i64 = 20;

impl OrderingService {
    /// Ordering on `db` (its migrations already applied), pricing in `catalog`, holding stock in
    /// `inventory` and charging in `payments`.
    pub fn new(
        db: Database,
        config: OrderingConfig,
        catalog: Arc<dyn CatalogApi>,
        inventory: Arc<dyn InventoryApi>,
        payments: Arc<dyn PaymentsApi>,
    ) -> Self {
        OrderingService {
            db,
            config,
            catalog,
            inventory,
            payments,
        }
    }

    /// Finishes or compensates unfinished orders whose driver stopped (crash, outage, restart); returns
    /// how many it took. Run periodically by the host process; safe with several instances.
    pub async fn recover(&self) -> Outcome<usize> {
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
        let (claimed, due) = self
            .db
            .run(move |conn| {
                let now = db::now();
                write_transaction(conn, |c| {
                    store::claim_due(c, now, now + lease, RECOVERY_BATCH)
                })
                .map(|due| (now + lease, due))
                .map_err(OrderingError::from)
            })
            .await?;
        let ctx = RequestContext::system();
        for id in &due {
            // The batch was leased at once, and driving the orders before this one may have taken a good
            // part of the lease: renew it, so that no other instance takes this order over while it is
            // driven here. An order whose lease changed meanwhile has another driver: leave it to it.
            let ours = {
                let id = id.clone();
                self.db
                    .run(move |conn| {
                        store::renew_lease(conn, &id, claimed, db::now() + lease)
                            .map_err(OrderingError::from)
                    })
                    .await?
            };
            if !ours {
                continue;
            }
            match self.drive(&ctx, id, Driver::Recovery, None).await {
                Ok((row, _)) => self.reschedule(&row).await?,
                Err(e) => tracing::warn!(order_id = %id, error = %e, "order recovery failed"),
            }
        }
        Ok(due.len())
    }

    /// Ends a drive: no request drives the order any more, and one left unfinished is due again for the
    /// recovery task after a backoff.
    async fn reschedule(&self, row: &OrderRow) -> Outcome<()> {
        if row.step == step::DONE {
            return Ok(());
        }
        let (id, attempts, retry_base) = (row.id.clone(), row.attempts, self.config.retry_base);
        self.db
            .run(move |conn| {
                let until = db::now()
                    + chrono::Duration::from_std(backoff(retry_base, attempts))
                        .unwrap_or(chrono::Duration::MAX);
                store::set_lease(conn, &id, until, None)
                    .map(|_| ())
                    .map_err(OrderingError::from)
            })
            .await
    }

    pub(crate) async fn load(&self, id: &str) -> Outcome<(OrderRow, Vec<LineRow>)> {
        let id = id.to_string();
        self.db
            .run(move |conn| {
                let row = store::order(conn, &id)?.ok_or(OrderingError::OrderNotFound)?;
                let lines = store::lines(conn, std::slice::from_ref(&id))?;
                Ok((row, lines))
            })
            .await
    }

    fn order(&self, row: &OrderRow, lines: &[LineRow]) -> Outcome<Order> {
        let money = |minor| Money::new(minor, row.currency.clone());
        Ok(Order {
            id: parse_id(&row.id)?,
            user_id: parse_id(&row.user_id)?,
            status: OrderStatus::parse(&row.status)
                .ok_or_else(|| OrderingError::Internal(format!("bad status {}", row.status)))?,
            lines: lines
                .iter()
                .map(|l| {
                    Ok(OrderLine {
                        product_id: parse_id(&l.product_id)?,
                        sku: l.sku.clone(),
                        name: l.name.clone(),
                        unit_price: money(l.unit_price_minor),
                        quantity: l.quantity,
                        line_total: money(l.line_total_minor),
                    })
                })
                .collect::<Outcome<Vec<_>>>()?,
            total: money(row.total_minor),
            failure: row.failure.clone(),
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }

    /// What placing an order answers once its saga stopped: the order (confirmed, or pending while it
    /// goes on), or the refusal a failed one ended with; a failed order is never answered as placed.
    fn answer(&self, row: &OrderRow, lines: &[LineRow]) -> Outcome<Order> {
        if row.status != OrderStatus::Failed.as_str() {
            return self.order(row, lines);
        }
        let detail: serde_json::Value = row
            .failure_detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        Err(match row.failure.as_deref() {
            Some(failure::INSUFFICIENT_STOCK) => OrderingError::InsufficientStock {
                sku: detail["sku"].as_str().unwrap_or_default().to_string(),
            },
            Some(failure::INSUFFICIENT_FUNDS) => OrderingError::InsufficientFunds {
                balance: detail["balance"].as_i64().unwrap_or_default(),
            },
            other => OrderingError::OrderFailed {
                order_id: parse_id(&row.id)?,
                failure: other.unwrap_or(failure::UNAVAILABLE).to_string(),
            },
        })
    }

    /// Validates an order's shape: 1–50 lines, quantities 1–100, each product once.
    fn check_shape(order: &NewOrder) -> Outcome<()> {
        let mut errors = check(order).err().unwrap_or_default();
        let mut seen = HashSet::new();
        for (i, line) in order.lines.iter().enumerate().take(MAX_LINES) {
            if !seen.insert(line.product_id) {
                errors.push(FieldError::new(
                    format!("lines[{i}].product_id"),
                    "appears on another line; give each product once",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(OrderingError::Validation(errors))
        }
    }

    /// Prices the lines from the catalog (client prices never count): unknown or inactive products are
    /// refused, and so is a total beyond the money bound.
    async fn price(
        &self,
        ctx: &RequestContext,
        order_id: &str,
        order: &NewOrder,
    ) -> Outcome<(Vec<LineRow>, i64)> {
        let ids = order.lines.iter().map(|l| l.product_id).collect();
        let products = match self
            .catalog
            .get_products(&ctx.as_module(crate::api::MODULE), ids)
            .await
        {
            Ok(products) => products,
            Err(CatalogError::Unavailable(detail)) => {
                return Err(OrderingError::Unavailable(detail));
            }
            Err(e) => return Err(OrderingError::Internal(format!("catalog: {e}"))),
        };
        let by_id: HashMap<Uuid, _> = products.into_iter().map(|p| (p.id, p)).collect();
        let mut errors = Vec::new();
        let mut lines = Vec::new();
        let mut total = Money::zero(self.config.currency.clone());
        for (i, line) in order.lines.iter().enumerate() {
            let field = format!("lines[{i}].product_id");
            let Some(product) = by_id.get(&line.product_id).filter(|p| p.active) else {
                errors.push(FieldError::new(
                    field,
                    "no such product, or it is not for sale",
                ));
                continue;
            };
            if product.price.currency != self.config.currency {
                errors.push(FieldError::new(field, "is not priced in the shop currency"));
                continue;
            }
            let Ok(line_total) = product.price.checked_mul(line.quantity) else {
                errors.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    "makes the line total too large",
                ));
                continue;
            };
            match total.checked_add(&line_total) {
                Ok(sum) => total = sum,
                Err(e) => errors.push(e.field_error("lines")),
            }
            lines.push(LineRow {
                order_id: order_id.to_string(),
                position: i32::try_from(i).unwrap_or(i32::MAX),
                product_id: line.product_id.to_string(),
                sku: product.sku.clone(),
                name: product.name.clone(),
                unit_price_minor: product.price.amount_minor,
                quantity: line.quantity,
                line_total_minor: line_total.amount_minor,
            });
        }
        if errors.is_empty() {
            Ok((lines, total.amount_minor))
        } else {
            Err(OrderingError::Validation(errors))
        }
    }

    /// The answer to a placement whose key was used before: the same order (as it is now) or its refusal.
    fn repeated(&self, conn: &mut DbConn, row: OrderRow, request: &str) -> Outcome<Order> {
        if row.request.as_deref() != Some(request) {
            return Err(OrderingError::IdempotencyKeyReused);
        }
        if row.status == OrderStatus::Pending.as_str()
            && row.driving_until.is_some_and(|until| until > db::now())
        {
            return Err(OrderingError::IdempotencyKeyInUse);
        }
        let lines = store::lines(conn, std::slice::from_ref(&row.id))?;
        self.answer(&row, &lines)
    }

    fn visible_to(ctx: &RequestContext, row: &OrderRow) -> Outcome<()> {
        let user = ctx.require_user()?;
        if user.id.to_string() == row.user_id || user.role == shop_kernel::Role::Admin {
            Ok(())
        } else {
            // Someone else's order does not exist, as far as this caller can tell.
            Err(OrderingError::OrderNotFound)
        }
    }
}

#[async_trait::async_trait]
impl OrderingApi for OrderingService {
    async fn place_order(
        &self,
        ctx: &RequestContext,
        order: NewOrder,
        idempotency_key: Option<String>,
    ) -> Outcome<Order> {
        let user = ctx.require_user()?.id.to_string();
        if let Some(key) = &idempotency_key {
            shop_kernel::idempotency::check_key(key)
                .map_err(|e| OrderingError::Validation(vec![e]))?;
        }
        Self::check_shape(&order)?;
        let request = serde_json::to_string(&order.lines)
            .map_err(|e| OrderingError::Internal(e.to_string()))?;
        if let Some(key) = idempotency_key.clone() {
            let (service, user, request) = (self.clone(), user.clone(), request.clone());
            let earlier = self
                .db
                .run(move |conn| match store::by_key(conn, &user, &key)? {
                    Some(row) => service.repeated(conn, row, &request).map(Some),
                    None => Ok(None),
                })
                .await?;
            if let Some(order) = earlier {
                return Ok(order);
            }
        }
        let id = Uuid::now_v7().to_string();
        let (lines, total_minor) = self.price(ctx, &id, &order).await?;
        let now = db::now();
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
        let row = OrderRow {
            id: id.clone(),
            user_id: user.clone(),
            status: OrderStatus::Pending.as_str().into(),
            step: step::RESERVE.into(),
            total_minor,
            currency: self.config.currency.clone(),
            failure: None,
            failure_detail: None,
            idempotency_key: idempotency_key.clone(),
            request: idempotency_key.as_ref().map(|_| request.clone()),
            attempts: 0,
            lease_until: now + lease,
            driving_until: Some(now + lease),
            created_at: now,
            updated_at: now,
        };
        let service = self.clone();
        let written = (row.clone(), lines.clone());
        let created = self
            .db
            .run(move |conn| {
                match write_transaction(conn, |c| store::insert(c, &row, &lines)) {
                    Ok(()) => Ok(None),
                    // The same key won by a concurrent request: answer as its repeat.
                    Err(e) if is_unique_violation(&e) => {
                        let key = row.idempotency_key.as_deref().unwrap_or_default();
                        let winner = store::by_key(conn, &user, key)?
                            .ok_or_else(|| OrderingError::Internal(e.to_string()))?;
                        service.repeated(conn, winner, &request).map(Some)
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        if let Some(order) = created {
            return Ok(order);
        }
        let (row, lines) = self.drive(ctx, &id, Driver::Request, Some(written)).await?;
        self.reschedule(&row).await?;
        self.answer(&row, &lines)
    }

    async fn list_orders(&self, ctx: &RequestContext, query: OrderQuery) -> Outcome<Page<Order>> {
        let user = ctx.require_user()?.id.to_string();
        let mut errors = Vec::new();
        let (limit, before) = checked_id_page(query.limit, query.cursor.as_deref(), &mut errors);
        let (Some(limit), true) = (limit, errors.is_empty()) else {
            return Err(OrderingError::Validation(errors));
        };
        let (rows, lines) = self
            .db
            .run(move |conn| {
                let rows = store::list(conn, &user, before.as_deref(), i64::from(limit) + 1)?;
                let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
                let lines = store::lines(conn, &ids)?;
                Ok::<_, OrderingError>((rows, lines))
            })
            .await?;
        let mut by_order: HashMap<&str, Vec<LineRow>> = HashMap::new();
        for line in &lines {
            by_order
                .entry(line.order_id.as_str())
                .or_default()
                .push(line.clone());
        }
        let items = rows
            .iter()
            .map(|row| self.order(row, by_order.get(row.id.as_str()).map_or(&[], |l| l)))
            .collect::<Outcome<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |o| o.id.simple().to_string()))
    }

    async fn get_order(&self, ctx: &RequestContext, id: Uuid) -> Outcome<Order> {
        ctx.require_user()?;
        let (row, lines) = self.load(&id.to_string()).await?;
        Self::visible_to(ctx, &row)?;
        self.order(&row, &lines)
    }

    async fn cancel_order(&self, ctx: &RequestContext, id: Uuid) -> Outcome<Order> {
        ctx.require_user()?;
        let id = id.to_string();
        let (row, _) = self.load(&id).await?;
        Self::visible_to(ctx, &row)?;
        let lease = self.config.lease;
        {
            let id = id.clone();
            self.db
                .run(move |conn| {
                    write_transaction(conn, |c| {
                        let now = db::now();
                        let Some(row) = store::order(c, &id)? else {
                            return Err(OrderingError::OrderNotFound);
                        };
                        match (row.status.as_str(), row.step.as_str()) {
                            ("confirmed", step::DONE) => {
                                let until = now
                                    + chrono::Duration::from_std(lease)
                                        .unwrap_or(chrono::Duration::MAX);
                                let advance = store::Advance {
                                    to_step: step::CANCEL,
                                    status: OrderStatus::Confirmed.as_str(),
                                    failure: None,
                                    driving_until: Some(until),
                                };
                                store::advance(c, &id, step::DONE, advance, now)?;
                                store::set_lease(c, &id, until, Some(until))?;
                                Ok(())
                            }
                            // Being cancelled already, or cancelled: finish or answer it.
                            ("confirmed", step::CANCEL) | ("cancelled", _) => Ok(()),
                            (status, _) => Err(OrderingError::NotCancellable {
                                status: status.to_string(),
                            }),
                        }
                    })
                })
                .await?;
        }
        let (row, lines) = self.drive(ctx, &id, Driver::Request, None).await?;
        self.reschedule(&row).await?;
        if row.status == OrderStatus::Cancelled.as_str() {
            self.order(&row, &lines)
        } else {
            Err(OrderingError::Unavailable(
                "the cancellation could not finish now; it completes in the background".into(),
            ))
        }
    }

    async fn failing_events(
        &self,
        ctx: &RequestContext,
        query: FailingQuery,
    ) -> Outcome<Page<PendingEvent>> {
        ctx.require_admin()?;
        OUTBOX
            .failing_page(&self.db, query, OrderingError::Validation)
            .await
    }

    async fn resubmit_event(&self, ctx: &RequestContext, id: Uuid) -> Outcome<PendingEvent> {
        ctx.require_admin()?;
        OUTBOX
            .resubmit_now(&self.db, id)
            .await?
            .ok_or(OrderingError::EventNotFound)
    }

    async fn resubmit_events(
        &self,
        ctx: &RequestContext,
        request: ResubmitEvents,
    ) -> Outcome<Resubmitted> {
        ctx.require_admin()?;
        OUTBOX
            .resubmit_in_bulk(&self.db, request, crate::api::EVENTS)
            .await
    }
}
