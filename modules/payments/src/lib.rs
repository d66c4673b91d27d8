//! Payments: a store-credit wallet per user, in the shop currency, kept as an append-only ledger.
//!
//! Other modules see only the contract ([`PaymentsApi`], its DTOs and [`PaymentsError`]); the
//! implementation, its tables and its HTTP plumbing sit behind the `local`, `server` and `client` features.

mod api;
mod error;
pub mod http;
#[cfg(feature = "local")]
mod service;
#[cfg(feature = "local")]
mod store;

pub use api::*;
pub use error::PaymentsError;
#[cfg(feature = "local")]
pub use service::{PaymentsConfig, PaymentsService};

/// The tables this module owns; no other module may name them.
pub const TABLES: &[&str] = &[
    "payments_wallets",
    "payments_transactions",
    "payments_order_payments",
    "payments_idempotency_keys",
];
