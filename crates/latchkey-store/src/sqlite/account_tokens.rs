//! One-time account tokens on SQLite.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{AccountTokenPurpose, StoredAccountToken};
use latchkey_core::store::{AccountTokenStore, StoreError};
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::sql::account_tokens as sql;
use crate::sql::limit;

#[async_trait]
impl AccountTokenStore for SqliteStore {
    async fn issue_account_token(&self, token: &StoredAccountToken) -> Result<(), StoreError> {
        let t = token.clone();
        self.writer
            .write(move |c| {
                let purpose = t.purpose.as_str();
                c.prepare_cached(sql::DELETE_OF_USER.sqlite)?
                    .execute(params![t.user_id.as_bytes(), purpose])?;
                c.prepare_cached(sql::INSERT.sqlite)?
                    .execute(params![
                        t.token_hash,
                        t.user_id.as_bytes(),
                        purpose,
                        t.email,
                        t.created_at,
                        t.expires_at
                    ])
                    .map(drop)
            })
            .await
    }

    async fn take_account_token(
        &self,
        token_hash: &[u8; 32],
        purpose: AccountTokenPurpose,
        now: UnixTime,
    ) -> Result<Option<StoredAccountToken>, StoreError> {
        let hash = *token_hash;
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::TAKE.sqlite)?
                    .query_row(params![hash, purpose.as_str(), now], |r| {
                        sql::account_token(r)
                    })
                    .optional()
            })
            .await
    }

    async fn prune_account_tokens(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::PRUNE.sqlite)?
                    .execute(params![before, limit(batch)])
            })
            .await
    }
}
