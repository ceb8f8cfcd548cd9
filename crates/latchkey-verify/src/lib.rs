//! The library a resource server (an application's API) embeds to accept
//! Latchkey access tokens without a network call per request.
//!
//! This crate owns the *client side* of token verification:
//! - fetching the issuer's JWKS (`{issuer}/.well-known/jwks.json`), caching
//!   the signing keys by `kid` (Ed25519 and whatever other algorithms the
//!   wire crate supports), refetching on an unknown `kid` (rate-limited) and
//!   on a timer, so rotated-in keys are picked up and removed keys stop
//!   verifying;
//! - following the revocation feed (`{issuer}/v1/revocations`, as a
//!   confidential client: [`Options::client_credentials`]) in a background
//!   task, so a cancelled token or ended session is refused within about a
//!   second; fail-open or fail-closed while the feed is unreachable, and
//!   fail-closed in any case once the revocation data is older than
//!   [`Options::max_staleness`] (default 60 s);
//! - the axum [`Claims`] extractor and the tower [`RequireBearer`] layer.
//!
//! The formats and rules themselves (the JWS and JWK formats, RFC 8725
//! strictness, `typ`, `crit`, time checks, issuer and audience, the feed
//! protocol, the Bearer rule) are [`latchkey_wire`]'s, which the issuer
//! uses too; this crate only supplies the keys and the revocation state
//! around them. Nothing server-side lives here (no dependency on
//! `latchkey-core`).
//!
//! ```no_run
//! # async fn run() -> Result<(), latchkey_verify::VerifyError> {
//! let verifier = latchkey_verify::Verifier::new("http://127.0.0.1:8080", "my-api").await?;
//! let claims = verifier.verify("eyJ...")?;
//! println!("hello {}", claims.sub);
//! # Ok(()) }
//! ```
//!
//! HTTPS to the issuer needs the `rustls-tls` feature (on by default).

mod bearer;
mod error;
mod feed;
mod options;
mod shared;
mod verifier;

pub use bearer::{bearer_token, Claims, RequireBearer, RequireBearerService};
pub use error::{TokenError, VerifyError};
pub use latchkey_wire::clock::{Clock, ManualClock, SystemClock};
pub use latchkey_wire::jws::{AccessClaims, Audience};
pub use latchkey_wire::revocation::{Revocation, RevocationKind};
pub use options::{FailMode, Options, MAX_FEED_WAIT};
pub use verifier::Verifier;
