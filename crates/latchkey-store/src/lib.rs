//! `Store` implementations for Latchkey. Today: embedded SQLite
//! ([`sqlite::SqliteStore`]), with group commit. No business rules live here:
//! every method is one atomic read or conditional write that the domain in
//! `latchkey-core` asks for.

pub mod sqlite;

pub use sqlite::SqliteStore;
