//! The `latchkey` server: HTTP routes, request and response types, the one
//! mapping from domain errors to HTTP, configuration and start-up.
//!
//! Handlers are thin: each parses its input, calls one
//! [`latchkey_core::Authority`] method and shapes the answer.

pub mod audit_command;
pub mod client_address;
pub mod client_admin;
pub mod config;
mod data_dir;
mod detached;
mod error;
mod extract;
mod hashing_pool;
pub mod key_commands;
pub mod rate_limit;
mod routes;
mod server;
pub mod user_admin;

pub use config::Settings;
pub use server::{RunningServer, StartError};
