//! Accounts: the user row and the statements both databases share.

use latchkey_core::email::Email;
use latchkey_core::model::User;

use super::{statement, Columns, Sql};

/// The columns [`user`] reads, from `users u`. `roles` is JSON text in
/// SQLite and `jsonb` in PostgreSQL; the cast reads it as text on both.
macro_rules! user_columns {
    () => {
        "u.id, u.username, u.username_key, u.password_hash, \
         CAST(u.roles AS TEXT) AS roles, u.created_at, u.email, u.email_key, \
         u.email_verified_at, u.disabled_at"
    };
}
pub(crate) use user_columns;

pub(crate) const BY_KEY: Sql = statement!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.username_key = ?1"
);

pub(crate) const BY_ID: Sql =
    statement!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?1");

pub(crate) const BY_EMAIL: Sql = statement!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.email_key = ?1"
);

/// Sets an address unless another account has it; an unchanged address
/// keeps its verification. (On PostgreSQL a concurrent writer of the same
/// address can still meet the unique index: the backend reads that as
/// taken.)
pub(crate) const SET_EMAIL: Sql = statement!(
    "UPDATE users SET email = ?2, email_key = ?3, \
         email_verified_at = CASE WHEN email_key = ?3 THEN email_verified_at ELSE NULL END \
     WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM users o WHERE o.email_key = ?3 AND o.id <> ?1)"
);

pub(crate) const MARK_EMAIL_VERIFIED: Sql =
    statement!("UPDATE users SET email_verified_at = ?3 WHERE id = ?1 AND email_key = ?2");

pub(crate) const SET_PASSWORD_HASH: Sql =
    statement!("UPDATE users SET password_hash = ?2 WHERE id = ?1");

/// A page of the account list: keys after `?1` whose username key or
/// email key is LIKE `?2` (see [`contains_pattern`]), by username key, at
/// most `?3`. The comparison and the order use the same collation, so
/// cursors neither repeat nor skip.
pub(crate) const PAGE: Sql = statement!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.username_key > ?1 \
     AND (u.username_key LIKE ?2 ESCAPE '\\' OR u.email_key LIKE ?2 ESCAPE '\\') \
     ORDER BY u.username_key LIMIT ?3"
);

/// Whether `?2`'s email key is another account's than `?1`'s.
pub(crate) const EMAIL_CLASH: Sql =
    statement!("SELECT 1 FROM users WHERE email_key = ?2 AND id <> ?1");

/// Deleting an account: its ended sessions, its tokens, its throttle
/// counter (`?2`), and the account.
pub(crate) const DELETE_SESSIONS: Sql = statement!("DELETE FROM sessions WHERE user_id = ?1");
pub(crate) const DELETE_ACCOUNT_TOKENS: Sql =
    statement!("DELETE FROM account_tokens WHERE user_id = ?1");
pub(crate) const DELETE_THROTTLE: Sql = statement!("DELETE FROM sign_in_failures WHERE key = ?1");
pub(crate) const DELETE: Sql = statement!("DELETE FROM users WHERE id = ?1");

/// `%<text>%` with LIKE's wildcards and the escape character escaped, so
/// the text matches as a plain substring.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(crate) fn user<R: Columns>(row: &R) -> Result<User, R::Error> {
    Ok(User {
        id: row.uuid("id")?,
        username: row.value("username")?,
        username_key: row.value("username_key")?,
        password_hash: row.value("password_hash")?,
        roles: row.string_list("roles")?,
        created_at: row.value("created_at")?,
        email: email(row, "email", "email_key")?,
        email_verified_at: row.value("email_verified_at")?,
        disabled_at: row.value("disabled_at")?,
    })
}

/// An address and its key, kept in two columns (the key is what the
/// unique index and lookups use).
pub(crate) fn email<R: Columns>(
    row: &R,
    address: &str,
    key: &str,
) -> Result<Option<Email>, R::Error> {
    let address: Option<String> = row.value(address)?;
    let key: Option<String> = row.value(key)?;
    Ok(address
        .zip(key)
        .map(|(address, key)| Email { address, key }))
}
