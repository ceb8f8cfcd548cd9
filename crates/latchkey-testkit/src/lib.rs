//! Test kit for the crates whose tests run the real server: the server
//! in-process on 127.0.0.1:0 with a clock the test moves ([`TestServer`]),
//! the `latchkey` binary as a child process ([`process`]), a fresh
//! PostgreSQL schema per test ([`postgres`]), several nodes on one schema
//! ([`cluster`]), the HTTP calls the tests make ([`http`]) and a strict
//! reader of `/metrics` ([`exposition`]).
//!
//! Nothing here builds anything: a test binary of `latchkey-server` passes
//! `env!("CARGO_BIN_EXE_latchkey")`, and finds other workspace binaries
//! beside it with [`process::sibling_binary`] (`cargo test --workspace`
//! builds them).

pub mod cluster;
pub mod exposition;
pub mod http;
pub mod postgres;
pub mod process;
mod server;
pub mod smtp;

pub use http::{error_code, Tokens};
pub use server::{test_settings, TestServer};
