//! Domain events: what a module announces happened, as part of its contract.
//!
//! A module declares its events in its `api.rs` as payload types implementing [`DomainEvent`] (name and
//! version fixed there), lists them in `EVENTS` for the AsyncAPI document, and writes them to its own outbox
//! table in the same transaction as the change that causes them ([`outbox::Outbox::publish`]). A relay
//! ([`relay::Relay`]) delivers each outbox row through an [`EventDelivery`] (today: every subscriber's
//! contract, in-process or over HTTP; a broker later) with retries and backoff. A subscriber records the
//! ids it handled in its own inbox table ([`inbox::Inbox`]) in the transaction that applies the event, so a
//! redelivery changes nothing.
//!
//! Delivery is at least once and unordered: a subscriber must accept an event twice (the inbox makes that
//! harmless) and in any order relative to other events.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::RequestContext;
use crate::problem::Problem;

#[cfg(feature = "db")]
pub mod inbox;
#[cfg(feature = "db")]
pub mod outbox;
#[cfg(feature = "db")]
pub mod relay;

/// One event as it travels from publisher to subscriber: an envelope around a versioned payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Unique id (UUID v7): the subscriber's deduplication key.
    pub id: Uuid,
    /// `<module>.<name>`, e.g. `identity.user_registered`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload's version; a change that is not backward compatible publishes a new version.
    pub version: u32,
    /// When the change happened (its transaction's time).
    pub occurred_at: DateTime<Utc>,
    /// The payload, as the declared type of `event_type` and `version` serializes it.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// An event that has not been delivered, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingEvent {
    /// The event id.
    pub id: Uuid,
    /// `<module>.<name>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload version.
    pub version: u32,
    /// When the change happened.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// The next automatic attempt; null when parked (resubmit it).
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the last delivery failed.
    pub last_error: Option<String>,
}

/// Query of a module's failing events: oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct FailingQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque cursor: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

/// A payload type of a module's event, declared in the module's `api.rs`.
pub trait DomainEvent: Serialize + DeserializeOwned + ToSchema {
    /// `<module>.<name>`.
    const TYPE: &'static str;
    /// The payload version this type is.
    const VERSION: u32;
    /// One line for the AsyncAPI document.
    const SUMMARY: &'static str;
}

impl Event {
    /// A new event carrying `payload`, happened at `occurred_at`.
    pub fn new<E: DomainEvent>(
        payload: &E,
        occurred_at: DateTime<Utc>,
    ) -> Result<Event, serde_json::Error> {
        Ok(Event {
            id: Uuid::now_v7(),
            event_type: E::TYPE.to_string(),
            version: E::VERSION,
            occurred_at,
            payload: serde_json::to_value(payload)?,
        })
    }

    /// True when this event is `E` (type and version).
    pub fn is<E: DomainEvent>(&self) -> bool {
        self.event_type == E::TYPE && self.version == E::VERSION
    }

    /// The payload as `E`; `None` when the event is another type or version.
    pub fn payload<E: DomainEvent>(&self) -> Option<Result<E, serde_json::Error>> {
        self.is::<E>()
            .then(|| serde_json::from_value(self.payload.clone()))
    }
}

/// Named schemas a schema refers to, collected while documenting it.
pub type SchemaRefs = Vec<(String, RefOr<Schema>)>;

/// What the AsyncAPI document says of one declared event.
#[derive(Clone, Copy)]
pub struct EventInfo {
    /// `<module>.<name>`.
    pub name: &'static str,
    /// Payload version.
    pub version: u32,
    /// One line.
    pub summary: &'static str,
    /// The payload's schema; the schemas it refers to are added to the list.
    pub schema: fn(&mut SchemaRefs) -> RefOr<Schema>,
}

impl std::fmt::Debug for EventInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

fn schema_of<E: DomainEvent>(refs: &mut SchemaRefs) -> RefOr<Schema> {
    <E as ToSchema>::schemas(refs);
    <E as utoipa::PartialSchema>::schema()
}

/// The [`EventInfo`] of a declared event, for the module's `EVENTS` list.
pub const fn info<E: DomainEvent>() -> EventInfo {
    EventInfo {
        name: E::TYPE,
        version: E::VERSION,
        summary: E::SUMMARY,
        schema: schema_of::<E>,
    }
}

/// Carries events from a publisher's outbox to the subscribers. The one seam between publishing and
/// transport: the contract-call delivery below today, a broker tomorrow, with publishers and subscribers
/// unchanged.
#[async_trait::async_trait]
pub trait EventDelivery: Send + Sync {
    /// Hands `event` to every subscriber that wants it. `Err` says what failed; the relay tries again later
    /// (subscribers that took it already ignore the repeat).
    async fn deliver(&self, event: &Event) -> Result<(), String>;
}

/// A subscribing module, reached through its contract (its local implementation or its HTTP client).
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync {
    /// The subscribing module.
    fn subscriber(&self) -> &'static str;
    /// The event types it takes.
    fn subscribes_to(&self) -> &'static [&'static str];
    /// Applies `event` once (a repeat is a no-op); `ctx` is the publishing module's.
    async fn handle(&self, ctx: &RequestContext, event: &Event) -> Result<(), Problem>;
}

/// Delivery by calling each subscriber's contract: in-process when the subscriber runs here, HTTP to its
/// `/internal` endpoint when it runs elsewhere.
pub struct ContractDelivery {
    publisher: &'static str,
    handlers: Vec<std::sync::Arc<dyn EventHandler>>,
}

impl ContractDelivery {
    /// Delivery of `publisher`'s events to the handlers that subscribe to them.
    pub fn new(publisher: &'static str, handlers: Vec<std::sync::Arc<dyn EventHandler>>) -> Self {
        ContractDelivery {
            publisher,
            handlers,
        }
    }

    /// True when some handler takes events of this publisher.
    pub fn has_subscribers(&self) -> bool {
        self.handlers.iter().any(|h| {
            h.subscribes_to()
                .iter()
                .any(|t| t.split('.').next() == Some(self.publisher))
        })
    }
}

#[async_trait::async_trait]
impl EventDelivery for ContractDelivery {
    async fn deliver(&self, event: &Event) -> Result<(), String> {
        let ctx = RequestContext::system().as_module(self.publisher);
        let mut failures = Vec::new();
        for handler in &self.handlers {
            if !handler.subscribes_to().contains(&event.event_type.as_str()) {
                continue;
            }
            if let Err(problem) = handler.handle(&ctx, event).await {
                failures.push(format!(
                    "{}: {} {} ({})",
                    handler.subscriber(),
                    problem.status,
                    problem.code,
                    problem.detail.unwrap_or_default()
                ));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize, ToSchema)]
    struct Thing {
        n: u32,
    }

    impl DomainEvent for Thing {
        const TYPE: &'static str = "test.thing";
        const VERSION: u32 = 2;
        const SUMMARY: &'static str = "A thing happened.";
    }

    #[test]
    fn an_event_carries_its_type_version_and_payload_and_nothing_else_decodes_it() {
        let event = Event::new(&Thing { n: 7 }, Utc::now()).unwrap_or_else(|_| unreachable!());
        assert_eq!(event.event_type, "test.thing");
        assert_eq!(event.version, 2);
        assert!(matches!(event.payload::<Thing>(), Some(Ok(Thing { n: 7 }))));
        let wire = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(wire["type"], "test.thing");
        let mut other = event.clone();
        other.version = 1;
        assert!(other.payload::<Thing>().is_none(), "another version");
        let info = info::<Thing>();
        assert_eq!((info.name, info.version), ("test.thing", 2));
    }
}
