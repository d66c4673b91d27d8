//! Inventory: stock levels per SKU and the reservations that checkout holds while it runs.
//!
//! Other modules see only the contract ([`InventoryApi`], its DTOs and [`InventoryError`]); the
//! implementation, its tables and its HTTP plumbing sit behind the `local`, `server` and `client` features.

mod api;
mod error;
pub mod http;
#[cfg(feature = "local")]
mod service;
#[cfg(feature = "local")]
mod store;

pub use api::*;
pub use error::InventoryError;
#[cfg(feature = "local")]
pub use service::{InventoryConfig, InventoryService};

/// The tables this module owns; no other module may name them.
pub const TABLES: &[&str] = &[
    "inventory_stock",
    "inventory_reservations",
    "inventory_reservation_lines",
    "inventory_adjustments",
    "inventory_idempotency_keys",
];
