//! Identity: users, passwords, roles and the access tokens every other module verifies locally.
//!
//! Other modules see only the contract ([`IdentityApi`], its DTOs and [`IdentityError`]); the
//! implementation, its tables and its HTTP plumbing sit behind the `local`, `server` and `client` features.

mod api;
mod error;
#[cfg(feature = "local")]
mod hashing;
pub mod http;
#[cfg(feature = "local")]
mod keys;
#[cfg(feature = "local")]
mod service;
#[cfg(feature = "local")]
mod store;
#[cfg(feature = "local")]
mod throttle;
#[cfg(all(test, feature = "local"))]
mod verify_tests;

pub use api::*;
pub use error::IdentityError;
#[cfg(feature = "local")]
pub use keys::SigningKey;
#[cfg(feature = "local")]
pub use service::{IdentityConfig, IdentityService, PasswordCost};
#[cfg(feature = "local")]
pub use throttle::ThrottleConfig;

/// The tables this module owns; no other module may name them.
pub const TABLES: &[&str] = &["identity_users", OUTBOX_TABLE];

/// The outbox table: identity's events, written with the changes they announce.
pub const OUTBOX_TABLE: &str = "identity_outbox";
