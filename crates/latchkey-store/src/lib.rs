//! `Store` implementations for Latchkey: embedded SQLite
//! ([`sqlite::SqliteStore`]), with group commit, and PostgreSQL
//! ([`postgres::PostgresStore`]), for several nodes sharing one database.
//! No business rules live here: every method is one atomic read or
//! conditional write that the domain in `latchkey-core` asks for. The SQL
//! the two have in common is written once, in `sql`.

pub mod postgres;
mod sql;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
