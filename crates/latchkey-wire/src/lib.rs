//! Latchkey's wire formats: everything that crosses a process boundary and
//! must be read the same way by the issuer (`latchkey-server`, with the
//! domain rules of `latchkey-core`), by resource servers
//! (`latchkey-verify`) and by the fuzz targets.
//!
//! This crate owns:
//! - [`jws`]: the access-token format (JWS compact, RFC 9068 claims) and its
//!   verification (RFC 8725 strictness, signature check with aws-lc-rs,
//!   registered-claim rules), and [`TokenError`], the one typed reason a
//!   token is refused, wherever it is refused. Signing and key management
//!   stay in `latchkey-core`.
//! - [`jwk`]: public keys as JWKs (RFC 7517), their thumbprints
//!   (RFC 7638), and reading a JWKS document into verifying keys.
//! - [`revocation`] and [`feed`]: the revocation entries, the in-memory set
//!   consulted on every bearer check, and the revocation feed's query,
//!   page and wait limit.
//! - [`body`]: the JSON request and response bodies of the HTTP API.
//! - [`form`] and [`authorization`]: the OAuth form-body parser and the
//!   `Authorization: Basic` and `Bearer` parsers.
//! - [`clock`]: Unix time, injectable so tests can move it.
//!
//! It knows nothing of storage, password hashing or an HTTP framework: the
//! parsers take bytes and `http` header types, and answer typed errors that
//! each side maps to its own responses.

pub mod admin;
pub mod authorization;
pub mod body;
pub mod clock;
pub mod feed;
pub mod form;
pub mod jwk;
pub mod jws;
pub mod revocation;

pub use jws::TokenError;
