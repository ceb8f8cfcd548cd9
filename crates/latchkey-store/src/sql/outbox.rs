//! The mail outbox: the statements both databases share. Claiming differs
//! (PostgreSQL skips rows another node is claiming), so each backend keeps
//! its own claim statement around [`CLAIM_SQLITE`]'s shape.

use latchkey_core::model::{OutboxKind, OutboxMessage};

use super::{statement, Columns, Sql};

macro_rules! outbox_columns {
    () => {
        "id, kind, recipient, subject, text_body, html_body, created_at, attempts, \
         next_attempt_at"
    };
}

pub(crate) const INSERT: Sql = statement!(
    "INSERT INTO outbox (id, kind, recipient, subject, text_body, html_body, created_at, \
     attempts, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
);

/// SQLite's claim: the writer thread runs one write at a time, so the
/// selection and the update cannot interleave with another claim.
pub(crate) const CLAIM_SQLITE: &str = concat!(
    "UPDATE outbox SET claim = ?1, next_attempt_at = ?3 WHERE id IN \
     (SELECT id FROM outbox WHERE next_attempt_at <= ?2 ORDER BY next_attempt_at LIMIT ?4) \
     RETURNING ",
    outbox_columns!()
);

/// PostgreSQL's: rows another transaction is claiming are skipped rather
/// than waited for, so concurrent claimers get disjoint messages.
pub(crate) const CLAIM_POSTGRES: &str = concat!(
    "UPDATE outbox SET claim = $1, next_attempt_at = $3 WHERE id IN \
     (SELECT id FROM outbox WHERE next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $4 \
      FOR UPDATE SKIP LOCKED) \
     RETURNING ",
    outbox_columns!()
);

pub(crate) const DELETE: Sql = statement!("DELETE FROM outbox WHERE id = ?1 AND claim = ?2");

pub(crate) const RETRY: Sql = statement!(
    "UPDATE outbox SET claim = NULL, attempts = attempts + 1, next_attempt_at = ?3 \
     WHERE id = ?1 AND claim = ?2"
);

pub(crate) const DEPTH: Sql = statement!("SELECT COUNT(*) AS n FROM outbox");

pub(crate) fn message<R: Columns>(row: &R) -> Result<OutboxMessage, R::Error> {
    let kind: String = row.value("kind")?;
    Ok(OutboxMessage {
        id: row.uuid("id")?,
        kind: OutboxKind::parse(&kind).ok_or_else(|| R::invalid("kind", kind))?,
        recipient: row.value("recipient")?,
        subject: row.value("subject")?,
        text_body: row.value("text_body")?,
        html_body: row.value("html_body")?,
        created_at: row.value("created_at")?,
        attempts: row.count("attempts")?,
        next_attempt_at: row.value("next_attempt_at")?,
    })
}
