//! The account's email address and the mail outbox on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::email::Email;
use latchkey_core::model::{OutboxMessage, User};
use latchkey_core::store::{AccountEmailStore, OutboxStore, StoreError};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{pg_error, PostgresStore};
use crate::sql::outbox as sql;
use crate::sql::{limit, users};

#[async_trait]
impl AccountEmailStore for PostgresStore {
    async fn set_email(&self, user_id: Uuid, email: &Email) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(users::SET_EMAIL.postgres)
            .await
            .map_err(pg_error)?;
        match client
            .execute(&stmt, &[&user_id, &email.address, &email.key])
            .await
        {
            Ok(n) => Ok(n == 1),
            // Another transaction set the same address between our check
            // and our write: it is taken.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
            Err(e) => Err(pg_error(e)),
        }
    }

    async fn mark_email_verified(
        &self,
        user_id: Uuid,
        email_key: &str,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                users::MARK_EMAIL_VERIFIED.postgres,
                &[&user_id, &email_key, &at],
            )
            .await?;
        Ok(n == 1)
    }

    async fn user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        self.query_opt(users::BY_EMAIL.postgres, &[&email_key])
            .await?
            .as_ref()
            .map(users::user)
            .transpose()
    }
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn enqueue_outbox(&self, message: &OutboxMessage) -> Result<(), StoreError> {
        let m = message;
        self.execute(
            sql::INSERT.postgres,
            &[
                &m.id,
                &m.kind.as_str(),
                &m.recipient,
                &m.subject,
                &m.text_body,
                &m.html_body,
                &m.created_at,
                &i64::from(m.attempts),
                &m.next_attempt_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn claim_outbox(
        &self,
        claim: Uuid,
        now: UnixTime,
        lease_until: UnixTime,
        batch: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.query(
            sql::CLAIM_POSTGRES,
            &[&claim, &now, &lease_until, &limit(batch)],
        )
        .await?
        .iter()
        .map(sql::message)
        .collect()
    }

    async fn delete_outbox(&self, id: Uuid, claim: Uuid) -> Result<bool, StoreError> {
        Ok(self.execute(sql::DELETE.postgres, &[&id, &claim]).await? == 1)
    }

    async fn retry_outbox(
        &self,
        id: Uuid,
        claim: Uuid,
        next_attempt_at: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(sql::RETRY.postgres, &[&id, &claim, &next_attempt_at])
            .await?
            == 1)
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        let row = self.query_opt(sql::DEPTH.postgres, &[]).await?;
        let n: i64 = match row {
            Some(r) => r.try_get(0).map_err(pg_error)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
