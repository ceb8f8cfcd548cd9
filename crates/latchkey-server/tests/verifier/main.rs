//! `latchkey-verify` over real HTTP on 127.0.0.1: against a tiny issuer that
//! can be broken on purpose ([`issuer`]), inside axum and tower, and end to
//! end against this crate's real server. They live here rather than in
//! `latchkey-verify` so that the verifier's own build (dev-dependencies
//! included) never pulls in the server, core, argon2 or the databases.

mod http;
mod issuer;
mod server;
mod verifier;
