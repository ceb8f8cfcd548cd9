//! The account's email address and the mail outbox on SQLite.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::email::Email;
use latchkey_core::model::{OutboxMessage, User};
use latchkey_core::store::{AccountEmailStore, OutboxStore, StoreError};
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::SqliteStore;
use crate::sql::outbox as sql;
use crate::sql::{limit, users};

#[async_trait]
impl AccountEmailStore for SqliteStore {
    async fn set_email(&self, user_id: Uuid, email: &Email) -> Result<bool, StoreError> {
        let email = email.clone();
        self.writer
            .write(move |c| {
                let n = c.prepare_cached(users::SET_EMAIL.sqlite)?.execute(params![
                    user_id.as_bytes(),
                    email.address,
                    email.key
                ])?;
                Ok(n == 1)
            })
            .await
    }

    async fn mark_email_verified(
        &self,
        user_id: Uuid,
        email_key: &str,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        let key = email_key.to_owned();
        self.writer
            .write(move |c| {
                let n = c
                    .prepare_cached(users::MARK_EMAIL_VERIFIED.sqlite)?
                    .execute(params![user_id.as_bytes(), key, at])?;
                Ok(n == 1)
            })
            .await
    }

    async fn user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        self.read(|c| {
            c.prepare_cached(users::BY_EMAIL.sqlite)?
                .query_row([email_key], |r| users::user(r))
                .optional()
        })
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_outbox(&self, message: &OutboxMessage) -> Result<(), StoreError> {
        let m = message.clone();
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::INSERT.sqlite)?
                    .execute(params![
                        m.id.as_bytes(),
                        m.kind.as_str(),
                        m.recipient,
                        m.subject,
                        m.text_body,
                        m.html_body,
                        m.created_at,
                        i64::from(m.attempts),
                        m.next_attempt_at
                    ])
                    .map(drop)
            })
            .await
    }

    async fn claim_outbox(
        &self,
        claim: Uuid,
        now: UnixTime,
        lease_until: UnixTime,
        batch: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::CLAIM_SQLITE)?
                    .query_map(
                        params![claim.as_bytes(), now, lease_until, limit(batch)],
                        |r| sql::message(r),
                    )?
                    .collect()
            })
            .await
    }

    async fn delete_outbox(&self, id: Uuid, claim: Uuid) -> Result<bool, StoreError> {
        self.writer
            .write(move |c| {
                let n = c
                    .prepare_cached(sql::DELETE.sqlite)?
                    .execute(params![id.as_bytes(), claim.as_bytes()])?;
                Ok(n == 1)
            })
            .await
    }

    async fn retry_outbox(
        &self,
        id: Uuid,
        claim: Uuid,
        next_attempt_at: UnixTime,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |c| {
                let n = c.prepare_cached(sql::RETRY.sqlite)?.execute(params![
                    id.as_bytes(),
                    claim.as_bytes(),
                    next_attempt_at
                ])?;
                Ok(n == 1)
            })
            .await
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::DEPTH.sqlite)?
                .query_row([], |r| r.get::<_, i64>(0))
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    }
}
