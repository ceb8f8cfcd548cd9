//! The revocation entries and the in-memory set are wire types (the feed
//! carries them to verifiers); core uses them as they are.

pub use latchkey_wire::revocation::{Revocation, RevocationKind, RevocationSet};
