//! Notifications over HTTP: the actix handlers (`server`) and the client implementing the same trait
//! (`client`).

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;
