//! shop: the composition root. Reads configuration, builds each module locally or as a remote client,
//! and serves them over HTTP. Everything testable lives here so tests build the same application.

pub mod app;
pub mod asyncapi;
pub mod bounds;
pub mod cli;
pub mod config;
pub mod events;
pub mod metrics;
pub mod migrate;
pub mod modules;
pub mod openapi;
pub mod server;
pub mod shutdown;
pub mod telemetry;
