//! The thin shared kernel of shop.
//!
//! Everything here is shared vocabulary that every module needs to speak the same way: who is calling
//! ([`RequestContext`]), how errors look on the wire ([`Problem`]), pages, money, and the plumbing that makes a
//! module callable in-process or over HTTP through one trait ([`contract!`]). No business rules live here.

pub mod access;
pub mod context;
mod error;
pub mod events;
pub mod jwks;
pub mod money;
pub mod observe;
pub mod page;
pub mod problem;
pub mod rpc;
pub mod secret;
pub mod time;
pub mod validation;

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "db")]
pub mod db;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "db")]
pub mod idempotency;
#[cfg(feature = "tasks")]
pub mod tasks;

pub use access::Allow;
pub use context::{AccessDenied, Caller, Origin, RequestContext, Role, UserCaller};
pub use money::Money;
pub use page::{Page, PageRequest};
pub use problem::{ApiError, FieldError, Problem};
pub use secret::Secret;

/// Re-exports used by code that [`contract!`] generates inside module crates.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use serde;
    pub use serde_json;
    pub use tracing;

    #[cfg(feature = "server")]
    pub use actix_web;
    #[cfg(feature = "db")]
    pub use diesel;
}
