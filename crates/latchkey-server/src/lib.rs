//! The `latchkey` server: HTTP routes, request and response types, the one
//! mapping from domain errors to HTTP, configuration, start-up and the
//! operator command line ([`cli`]).
//!
//! Handlers are thin: each parses its input, calls one
//! [`latchkey_core::Authority`] method and shapes the answer.

mod browser;
pub mod cli;
pub mod client_address;
pub mod config;
mod data_dir;
mod detached;
mod error;
mod extract;
mod hashing_pool;
pub mod mail;
mod metrics;
pub mod rate_limit;
pub mod request_id;
mod routes;
mod server;

pub use config::Settings;
pub use routes::openapi_document;
pub use server::{RunningServer, StartError};
