//! The SQL both stores run, written once: statement texts per capability
//! (in SQLite's `?N` placeholder style, turned into PostgreSQL's `$N` at
//! compile time), the column lists they read, how a row becomes an entity,
//! and the schema's history ([`schema`]). Each backend keeps only what
//! genuinely differs between the two databases (upserts, locking, column
//! types, transactions) next to its execution model.

pub(crate) mod account_tokens;
pub(crate) mod audit;
pub(crate) mod authorization;
pub(crate) mod clients;
pub(crate) mod invites;
pub(crate) mod outbox;
pub(crate) mod revocations;
pub(crate) mod schema;
pub(crate) mod sessions;
pub(crate) mod sign_in_attempts;
pub(crate) mod signing_keys;
pub(crate) mod users;

use uuid::Uuid;

/// One statement as each database spells it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// A [`Sql`] from its SQLite text (literals and column-list macros, joined
/// with `concat!`), with the PostgreSQL text made from it at compile time.
macro_rules! statement {
    ($($part:expr),+ $(,)?) => {{
        const SQLITE: &str = concat!($($part),+);
        const POSTGRES: [u8; SQLITE.len()] = $crate::sql::dollar_placeholders(SQLITE);
        $crate::sql::Sql {
            sqlite: SQLITE,
            postgres: $crate::sql::utf8(&POSTGRES),
        }
    }};
}
pub(crate) use statement;

/// `sql` with every `?N` placeholder written `$N`; `N` is `sql.len()` (the
/// two spellings are the same length). Shared statements hold no string
/// literal with `?` followed by a digit.
pub(crate) const fn dollar_placeholders<const N: usize>(sql: &str) -> [u8; N] {
    let src = sql.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if src[i] == b'?' && i + 1 < N && src[i + 1].is_ascii_digit() {
            b'$'
        } else {
            src[i]
        };
        i += 1;
    }
    out
}

pub(crate) const fn utf8(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => panic!("statement text is not UTF-8"),
    }
}

/// A value both drivers read the same way (integers, text, bytes, booleans
/// and their `Option`s).
pub(crate) trait ColumnValue:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T> ColumnValue for T where
    T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

/// A result row of either driver, read by column name. `Error` is the
/// driver's own error where its row mapping runs inside the driver
/// (`rusqlite`), so mapping errors travel the same way as reading errors.
pub(crate) trait Columns {
    type Error;

    fn value<T: ColumnValue>(&self, column: &str) -> Result<T, Self::Error>;

    /// UUIDs are 16-byte blobs in SQLite and `uuid` in PostgreSQL.
    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>, Self::Error>;

    /// A value that was read but does not make sense.
    fn invalid(column: &str, problem: String) -> Self::Error;

    fn uuid(&self, column: &str) -> Result<Uuid, Self::Error> {
        self.optional_uuid(column)?
            .ok_or_else(|| Self::invalid(column, "NULL".into()))
    }

    /// A list of strings kept as a JSON array (read as text: the list
    /// columns cast it so on both databases).
    fn string_list(&self, column: &str) -> Result<Vec<String>, Self::Error> {
        let text: String = self.value(column)?;
        serde_json::from_str(&text).map_err(|e| Self::invalid(column, e.to_string()))
    }

    /// A non-negative integer column, saturating at `u32::MAX`.
    fn count(&self, column: &str) -> Result<u32, Self::Error> {
        let n: i64 = self.value(column)?;
        Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
    }
}

/// A row count or `LIMIT` as both databases take it.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_with_a_dollar_for_postgres() {
        const SQL: Sql = statement!("UPDATE t SET a = ?12, b = '?' WHERE c = ?1 AND d ?| e");
        assert_eq!(
            SQL.sqlite,
            "UPDATE t SET a = ?12, b = '?' WHERE c = ?1 AND d ?| e"
        );
        assert_eq!(
            SQL.postgres,
            "UPDATE t SET a = $12, b = '?' WHERE c = $1 AND d ?| e"
        );
    }

    #[test]
    fn column_lists_are_spliced_into_both_texts() {
        assert_eq!(
            sessions::ADVANCE.postgres,
            "UPDATE sessions SET counter = counter + 1, last_refreshed_at = $3 \
             WHERE id = $1 AND counter = $2 AND revoked_at IS NULL"
        );
        assert!(users::BY_ID.sqlite.starts_with("SELECT u.id, u.username, "));
        assert!(users::BY_ID
            .postgres
            .ends_with(" FROM users u WHERE u.id = $1"));
    }
}
