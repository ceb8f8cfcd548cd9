//! Latchkey's domain: accounts, password policy, sessions, the refresh-token
//! rotation state machine, access-token claims and signing keys.
//!
//! The records it works on are in [`model`]; the rules, one file per
//! capability, behind the [`Authority`] facade in [`service`].
//!
//! This crate knows nothing of HTTP, SQL or an async runtime. It reaches the
//! world through small traits: the capability traits of [`store`] for
//! persistence (code that needs one capability takes only its trait),
//! [`clock::Clock`] for time and [`password::PasswordHasher`] for the
//! CPU-heavy password work that the caller runs on a bounded pool.

pub mod access_token;
pub mod account_token;
pub mod audit;
pub mod client;
pub mod clock;
pub mod email;
pub mod error;
pub mod key_manager;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod model;
pub mod password;
pub mod refresh_token;
pub mod revocation;
pub mod rotation;
pub mod secret;
pub mod service;
pub mod store;
pub mod throttle;
pub mod username;

pub use error::AuthError;
pub use service::{Authority, Policy, TokenResponse};
