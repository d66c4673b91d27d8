//! Catalog: products and their prices.
//!
//! Other modules see only the contract ([`CatalogApi`], its DTOs and [`CatalogError`]); the implementation,
//! its tables and its HTTP plumbing sit behind the `local`, `server` and `client` features.

mod api;
mod error;
pub mod http;
#[cfg(feature = "local")]
mod search;
#[cfg(feature = "local")]
mod service;
#[cfg(feature = "local")]
mod store;
#[cfg(feature = "local")]
mod words;

pub use api::*;
pub use error::CatalogError;
#[cfg(feature = "local")]
pub use service::{CatalogConfig, CatalogService};

/// The tables this module owns; no other module may name them.
pub const TABLES: &[&str] = &["catalog_products", "catalog_search_words"];
