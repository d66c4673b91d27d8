//! Ordering: orders, placed by an orchestrated saga (price in catalog, hold stock in inventory, charge the
//! wallet in payments, commit the stock) whose state is stored at every step, compensated when a step is
//! refused, and finished or compensated by a recovery task after a crash or an outage.
//!
//! Other modules see only the contract ([`OrderingApi`], its DTOs, its events and [`OrderingError`]); the
//! implementation, its tables and its HTTP plumbing sit behind the `local`, `server` and `client` features.

mod api;
mod error;
pub mod http;
#[cfg(feature = "local")]
mod saga;
#[cfg(feature = "local")]
mod service;
#[cfg(feature = "local")]
mod store;

pub use api::*;
pub use error::OrderingError;
#[cfg(feature = "local")]
pub use service::{OrderingConfig, OrderingService};

/// The tables this module owns; no other module may name them.
pub const TABLES: &[&str] = &["ordering_orders", "ordering_order_lines", OUTBOX_TABLE];

/// The outbox table: ordering's events, written with the changes they announce.
pub const OUTBOX_TABLE: &str = "ordering_outbox";
