//! The ordering contract: orders as their owners and admins see them, and the events ordering publishes.

use serde::{Deserialize, Serialize};
use shop_kernel::events::{
    DomainEvent, EventInfo, FailingQuery, PendingEvent, ResubmitEvents, Resubmitted, info,
};
use shop_kernel::{Money, Page};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::error::OrderingError;

/// Most lines an order may have.
pub const MAX_LINES: usize = 50;

/// One line of `POST /api/v1/orders`: a product and how many. Any price sent along is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct NewOrderLine {
    /// The product (active, in the catalog).
    pub product_id: Uuid,
    /// Units, 1–100.
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    #[schema(minimum = 1, maximum = 100)]
    #[serde(deserialize_with = "shop_kernel::validation::integer")]
    pub quantity: i64,
}

/// Body of `POST /api/v1/orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct NewOrder {
    /// 1–50 lines, each product at most once.
    #[validate(length(min = 1, max = 50, message = "must hold 1-50 lines"), nested)]
    #[schema(min_items = 1, max_items = 50)]
    pub lines: Vec<NewOrderLine>,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Being placed: the checkout has not finished (a module it needs was unavailable); it will be
    /// confirmed or failed without further action.
    Pending,
    /// Paid and its stock taken.
    Confirmed,
    /// Cancelled after confirmation: its stock was returned and its charge refunded.
    Cancelled,
    /// Could not be placed (`failure` says why); nothing is held or charged for it.
    Failed,
}

impl OrderStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(OrderStatus::Pending),
            "confirmed" => Some(OrderStatus::Confirmed),
            "cancelled" => Some(OrderStatus::Cancelled),
            "failed" => Some(OrderStatus::Failed),
            _ => None,
        }
    }
}

/// One line of an order, priced from the catalog at placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU at placement.
    pub sku: String,
    /// Its name at placement.
    pub name: String,
    /// Its price at placement.
    pub unit_price: Money,
    /// Units.
    pub quantity: i64,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// Order id (UUID v7).
    pub id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// Pending, confirmed, cancelled or failed.
    pub status: OrderStatus,
    /// The lines, in the order given.
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals.
    pub total: Money,
    /// Why a failed order failed: `insufficient_stock`, `insufficient_funds`, `reservation_expired` or
    /// `unavailable` (a module stayed unreachable); null otherwise.
    pub failure: Option<String>,
    /// When it was placed.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When its status last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Query of `GET /api/v1/orders`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque cursor: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

/// A line of an order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderEventLine {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Units.
    pub quantity: i64,
    /// What the line cost.
    pub line_total: Money,
}

/// `ordering.order_confirmed` v1: an order was paid and its stock taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// What was bought.
    pub lines: Vec<OrderEventLine>,
    /// What was charged.
    pub total: Money,
}

impl DomainEvent for OrderConfirmed {
    const TYPE: &'static str = "ordering.order_confirmed";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "An order was paid and its stock taken.";
}

/// `ordering.order_cancelled` v1: a confirmed order was cancelled, its stock returned and its charge
/// refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// What was refunded.
    pub total: Money,
}

impl DomainEvent for OrderCancelled {
    const TYPE: &'static str = "ordering.order_cancelled";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "A confirmed order was cancelled: stock returned, charge refunded.";
}

/// The events ordering publishes.
pub const EVENTS: &[EventInfo] = &[info::<OrderConfirmed>(), info::<OrderCancelled>()];

shop_kernel::contract! {
    /// What ordering offers: placing, reading and cancelling the signed-in user's orders.
    pub trait OrderingApi {
        module = "ordering";
        error = OrderingError;
        client = OrderingClient;

        /// Places an order for the signed-in user: prices from the catalog, stock held, wallet charged,
        /// stock committed. Answers the order `confirmed`, or `pending` when a module it needs is
        /// unavailable (it is then finished or compensated in the background), or the refusal
        /// (`insufficient_stock`, `insufficient_funds`, 422); a refused order holds and charges nothing.
        /// With an idempotency key a repeat answers the same order (or refusal); without one each call
        /// places an order.
        Once fn place_order(order: NewOrder, idempotency_key: Option<String>) -> Order, for [User];

        /// The signed-in user's orders, newest first. Read-only.
        Read fn list_orders(query: OrderQuery) -> Page<Order>, for [User];

        /// An order: its owner or an admin; anyone else gets `not_found`. Read-only.
        Read fn get_order(id: Uuid) -> Order, for [User];

        /// Cancels a confirmed order: refunds the charge and returns the stock; its owner or an admin.
        /// Idempotent (a cancelled order is answered as it is); other statuses are `not_cancellable`.
        Idempotent fn cancel_order(id: Uuid) -> Order, for [User];

        /// Ordering's events whose delivery keeps failing, oldest first; admins only. Read-only.
        Read fn failing_events(query: FailingQuery) -> Page<PendingEvent>, for [Admin];

        /// Makes a failing or parked event due again now; admins only. Idempotent.
        Idempotent fn resubmit_event(id: Uuid) -> PendingEvent, for [Admin];

        /// Makes every undelivered ordering event that failed at least once due again now, with a fresh count
        /// of attempts: only those of `event_type` (one ordering publishes, else `validation_failed`), only
        /// parked ones with `parked_only`; answers how many. Admins only. Idempotent.
        Idempotent fn resubmit_events(request: ResubmitEvents) -> Resubmitted, for [Admin];
    }
}
