//! Notifications: the messages the shop sends its customers (a welcome on registration, a confirmation
//! of each order, a notice of its cancellation), made from other modules' events, always recorded, and
//! mailed over SMTP when a server is configured.
//!
//! Other modules see only the contract ([`NotificationsApi`], its DTOs and [`NotificationsError`]); the
//! implementation, its tables, its mailer and its HTTP plumbing sit behind the `local`, `server` and
//! `client` features.

mod api;
mod error;
pub mod http;
#[cfg(feature = "local")]
mod mailer;
#[cfg(feature = "local")]
mod service;
#[cfg(feature = "local")]
mod store;

pub use api::*;
pub use error::NotificationsError;
#[cfg(feature = "local")]
pub use service::{NotificationsConfig, NotificationsService, SmtpConfig};

/// The tables this module owns; no other module may name them.
pub const TABLES: &[&str] = &["notifications_messages", "notifications_inbox"];
