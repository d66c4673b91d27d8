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

/// Body of `POST /api/v1/admin/events/<module>/resubmit`: which undelivered events to make due again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResubmitEvents {
    /// Only events of this type (`<module>.<name>`); all types when absent. A type the module does not
    /// publish matches none.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Only parked events (given up on after repeated refusals); when absent or false, every event that
    /// failed at least once and is still undelivered, waiting ones included (made due now).
    #[serde(default)]
    pub parked_only: Option<bool>,
}

/// What a bulk resubmit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Resubmitted {
    /// How many undelivered events were made due now, with a fresh count of attempts.
    pub resubmitted: u64,
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

/// Why a delivery failed, and whether waiting can cure it: the relay retries a transient failure until the
/// subscriber takes the event, however long that takes, and parks an event only after repeated permanent
/// refusals (`outbox::MAX_ATTEMPTS`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// A subscriber could not take the event now: it did not answer (transport failure, which the HTTP
    /// client reports as 503 `unavailable`), answered 408, 429, 502, 503 or 504, or is missing from this
    /// process although the module table says it takes the type. Retried with capped backoff, never parked.
    #[error("{0}")]
    Transient(String),
    /// Every subscriber that failed refused the event itself (any other problem answer: a 4xx such as 403
    /// or 422, or a 500). Retried with backoff, and parked after `outbox::MAX_ATTEMPTS` such refusals.
    #[error("{0}")]
    Permanent(String),
}

impl DeliveryError {
    /// True for a refusal that waiting cannot cure.
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent(_))
    }
}

/// True when a subscriber's answer with this status says "not now" rather than "not this event": the
/// subscriber or something it needs is down, busy or slow (408, 429, 502, 503, 504).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 502 | 503 | 504)
}

/// The module that publishes events of `event_type` (`<module>.<name>`): the part before the first dot.
pub fn publisher_of(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or_default()
}

/// Admits a call handing over `event` only when it comes from the module that publishes its type, so that a
/// module (or a leaked credential of one) cannot forge another module's events. For a subscriber's
/// `handle_event`: `Forbidden` (403) otherwise, which the relay treats as a permanent refusal.
pub fn require_publisher(ctx: &RequestContext, event: &Event) -> Result<(), crate::AccessDenied> {
    if ctx.origin.is_module(publisher_of(&event.event_type)) {
        Ok(())
    } else {
        Err(crate::AccessDenied::Forbidden)
    }
}

/// Carries events from a publisher's outbox to the subscribers. The one seam between publishing and
/// transport: the contract-call delivery below today, a broker tomorrow, with publishers and subscribers
/// unchanged.
#[async_trait::async_trait]
pub trait EventDelivery: Send + Sync {
    /// Hands `event` to every subscriber that wants it. `Err` says what failed and whether waiting can cure
    /// it; the relay tries again later (subscribers that took it already ignore the repeat).
    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError>;
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

/// A module that subscribes to events, as the module table declares it (whether or not this process can
/// reach it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// The subscribing module.
    pub subscriber: &'static str,
    /// The event types it takes.
    pub event_types: &'static [&'static str],
}

/// Delivery by calling each subscriber's contract: in-process when the subscriber runs here, HTTP to its
/// `/internal` endpoint when it runs elsewhere.
pub struct ContractDelivery {
    publisher: &'static str,
    subscriptions: Vec<Subscription>,
    handlers: Vec<std::sync::Arc<dyn EventHandler>>,
}

impl ContractDelivery {
    /// Delivery of `publisher`'s events to the handlers that subscribe to them. `subscriptions` is every
    /// subscription the module table declares: an event a declared subscriber takes is never reported
    /// delivered while that subscriber has no handler here (a transient failure: it stays undelivered and
    /// visible until the process is given the subscriber).
    pub fn new(
        publisher: &'static str,
        subscriptions: Vec<Subscription>,
        handlers: Vec<std::sync::Arc<dyn EventHandler>>,
    ) -> Self {
        ContractDelivery {
            publisher,
            subscriptions,
            handlers,
        }
    }
}

#[async_trait::async_trait]
impl EventDelivery for ContractDelivery {
    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let ctx = RequestContext::system().as_module(self.publisher);
        let mut failures = Vec::new();
        let mut transient = false;
        for missing in self.subscriptions.iter().filter(|s| {
            s.event_types.contains(&event.event_type.as_str())
                && !self.handlers.iter().any(|h| h.subscriber() == s.subscriber)
        }) {
            transient = true;
            failures.push(format!(
                "{}: takes {} but is not reachable from this process (neither served here nor given its URL)",
                missing.subscriber, event.event_type
            ));
        }
        for handler in &self.handlers {
            if !handler.subscribes_to().contains(&event.event_type.as_str()) {
                continue;
            }
            if let Err(problem) = handler.handle(&ctx, event).await {
                transient |= is_transient_status(problem.status);
                failures.push(format!(
                    "{}: {} {} ({})",
                    handler.subscriber(),
                    problem.status,
                    problem.code,
                    problem.detail.unwrap_or_default()
                ));
            }
        }
        match (failures.is_empty(), transient) {
            (true, _) => Ok(()),
            // One subscriber that may still take it keeps the event alive: parking it would withhold it
            // from that subscriber too.
            (false, true) => Err(DeliveryError::Transient(failures.join("; "))),
            (false, false) => Err(DeliveryError::Permanent(failures.join("; "))),
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

    /// A subscriber that answers every event with `status` (200: takes it).
    struct Answers(&'static str, u16);

    #[async_trait::async_trait]
    impl EventHandler for Answers {
        fn subscriber(&self) -> &'static str {
            self.0
        }
        fn subscribes_to(&self) -> &'static [&'static str] {
            &["test.thing"]
        }
        async fn handle(&self, ctx: &RequestContext, _: &Event) -> Result<(), Problem> {
            assert!(ctx.origin.is_module("test"), "delivered as the publisher");
            match self.1 {
                200 => Ok(()),
                status => Err(Problem::new(status, "some_code", "Some title", "")),
            }
        }
    }

    const TAKES_THING: &[&str] = &["test.thing"];

    fn delivery(handlers: Vec<Answers>, declared: &[&'static str]) -> ContractDelivery {
        ContractDelivery::new(
            "test",
            declared
                .iter()
                .map(|subscriber| Subscription {
                    subscriber,
                    event_types: TAKES_THING,
                })
                .collect(),
            handlers
                .into_iter()
                .map(|h| std::sync::Arc::new(h) as std::sync::Arc<dyn EventHandler>)
                .collect(),
        )
    }

    #[tokio::test]
    async fn outages_are_transient_refusals_permanent_and_a_missing_subscriber_is_never_skipped() {
        let event = Event::new(&Thing { n: 1 }, Utc::now()).unwrap_or_else(|_| unreachable!());
        let outcome = |handlers: Vec<Answers>, declared: &'static [&'static str]| {
            let delivery = delivery(handlers, declared);
            let event = event.clone();
            async move { delivery.deliver(&event).await }
        };
        assert_eq!(outcome(vec![Answers("a", 200)], &["a"]).await, Ok(()));
        for status in [408, 429, 502, 503, 504] {
            let failed = outcome(vec![Answers("a", status)], &["a"]).await;
            assert!(
                matches!(failed, Err(DeliveryError::Transient(_))),
                "{status}: {failed:?}"
            );
        }
        for status in [400, 403, 404, 409, 422, 500] {
            let failed = outcome(vec![Answers("a", status)], &["a"]).await;
            assert!(
                matches!(failed, Err(DeliveryError::Permanent(_))),
                "{status}: {failed:?}"
            );
        }
        let mixed = outcome(vec![Answers("a", 422), Answers("b", 503)], &["a", "b"]).await;
        assert!(
            matches!(&mixed, Err(DeliveryError::Transient(m)) if m.contains("a: 422") && m.contains("b: 503")),
            "a subscriber that may still take it keeps the event alive: {mixed:?}"
        );
        // The module table says `b` takes it, and this process cannot reach `b`: not delivered.
        let missing = outcome(vec![Answers("a", 200)], &["a", "b"]).await;
        assert!(
            matches!(&missing, Err(DeliveryError::Transient(m)) if m.starts_with("b: takes test.thing")),
            "{missing:?}"
        );
        assert_eq!(outcome(vec![], &[]).await, Ok(()), "nobody subscribes");
    }

    #[test]
    fn only_the_publishing_module_may_hand_over_its_events() {
        let event = Event::new(&Thing { n: 1 }, Utc::now()).unwrap_or_else(|_| unreachable!());
        assert_eq!(publisher_of("identity.user_registered"), "identity");
        let as_module = |m: &str| RequestContext::default().as_module(m);
        assert_eq!(require_publisher(&as_module("test"), &event), Ok(()));
        for ctx in [
            as_module("identity"),
            as_module("tes"),
            RequestContext::system(),
            RequestContext::default(),
        ] {
            assert_eq!(
                require_publisher(&ctx, &event),
                Err(crate::AccessDenied::Forbidden),
                "{:?}",
                ctx.origin
            );
        }
    }
}
