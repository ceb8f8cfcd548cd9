//! The verifier over real HTTP on 127.0.0.1: against a tiny issuer that
//! can be broken on purpose ([`issuer`]), inside axum and tower, and end to
//! end against the real server. One test binary for all of them.

mod http;
mod issuer;
mod server;
mod verifier;
