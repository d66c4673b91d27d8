//! The notifications contract: the signed-in user's messages, and the events of other modules that make
//! them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shop_kernel::events::{DomainEvent, Event, EventHandler};
use shop_kernel::{ApiError, Page, Problem, RequestContext};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::NotificationsError;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Sent once an account is created.
    Welcome,
    /// An order was paid and its stock taken.
    OrderConfirmed,
    /// A confirmed order was cancelled and refunded.
    OrderCancelled,
}

impl NotificationKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Welcome => "welcome",
            NotificationKind::OrderConfirmed => "order_confirmed",
            NotificationKind::OrderCancelled => "order_cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "welcome" => Some(NotificationKind::Welcome),
            "order_confirmed" => Some(NotificationKind::OrderConfirmed),
            "order_cancelled" => Some(NotificationKind::OrderCancelled),
            _ => None,
        }
    }
}

/// A message to the user, as recorded (whether or not it was mailed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// Message id (UUID v7).
    pub id: Uuid,
    /// What it is about.
    pub kind: NotificationKind,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// When it was recorded.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was handed to the mail server; null while unsent (always, when the shop sends no mail).
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Query of `GET /api/v1/notifications`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque cursor: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

/// What became of a delivered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Handled {
    /// False when the event was seen before or is of a type notifications does not take.
    pub applied: bool,
}

/// The event types notifications takes.
pub const SUBSCRIBES_TO: &[&str] = &[
    <shop_identity::UserRegistered as DomainEvent>::TYPE,
    <shop_ordering::OrderConfirmed as DomainEvent>::TYPE,
    <shop_ordering::OrderCancelled as DomainEvent>::TYPE,
];

shop_kernel::contract! {
    /// What notifications offers: the signed-in user's messages, and the handling of the events that make
    /// them.
    pub trait NotificationsApi {
        module = "notifications";
        error = NotificationsError;
        client = NotificationsClient;

        /// The signed-in user's messages, newest first. Read-only.
        Read fn list_notifications(query: NotificationQuery) -> Page<Notification>, for [User];

        /// Applies an event once: records the message it calls for (and schedules its mail); a redelivery
        /// is a no-op, as is an event of a type notifications does not take (`applied` false). The
        /// publishing modules only, each with its own events (`identity.*` from identity, `ordering.*` from
        /// ordering; another module's event is `forbidden`). Idempotent.
        Idempotent fn handle_event(event: Event) -> Handled, for [Module("identity"), Module("ordering")];
    }
}

/// Notifications as an event subscriber, over its contract (the local service or the HTTP client), for
/// the relays of the modules it subscribes to.
pub struct NotificationsEvents(pub Arc<dyn NotificationsApi>);

#[async_trait::async_trait]
impl EventHandler for NotificationsEvents {
    fn subscriber(&self) -> &'static str {
        MODULE
    }

    fn subscribes_to(&self) -> &'static [&'static str] {
        SUBSCRIBES_TO
    }

    async fn handle(&self, ctx: &RequestContext, event: &Event) -> Result<(), Problem> {
        self.0
            .handle_event(ctx, event.clone())
            .await
            .map(|_| ())
            .map_err(|e| ApiError::to_problem(&e))
    }
}
