//! The HTTP API over real HTTP on 127.0.0.1, mostly against the server
//! in-process ([`latchkey_testkit::TestServer`]): one test binary, so the
//! whole stack is linked once for all of these.

mod accounts;
mod admin;
mod attacks;
mod audit;
mod authorize;
mod bad_input;
mod browser;
#[path = "../support/documented_answers.rs"]
mod documented_answers;
mod feed;
mod http_edge;
mod keys;
mod metrics;
mod oauth;
mod openapi;
mod password_policy;
mod recovery;
mod sessions;
mod slow_clients;
mod throttle;
mod timing;
mod tokens;
mod under_attack;
