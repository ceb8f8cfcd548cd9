//! One-time account tokens on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{AccountTokenPurpose, StoredAccountToken};
use latchkey_core::store::{AccountTokenStore, StoreError};

use super::{commit, pg_error, row_count, tx_execute, PostgresStore};
use crate::sql::account_tokens as sql;
use crate::sql::limit;

#[async_trait]
impl AccountTokenStore for PostgresStore {
    async fn issue_account_token(&self, token: &StoredAccountToken) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let purpose = token.purpose.as_str();
        tx_execute(
            &tx,
            sql::DELETE_OF_USER.postgres,
            &[&token.user_id, &purpose],
        )
        .await?;
        tx_execute(
            &tx,
            sql::INSERT.postgres,
            &[
                &token.token_hash.as_slice(),
                &token.user_id,
                &purpose,
                &token.email,
                &token.created_at,
                &token.expires_at,
            ],
        )
        .await?;
        commit(tx, started).await
    }

    async fn take_account_token(
        &self,
        token_hash: &[u8; 32],
        purpose: AccountTokenPurpose,
        now: UnixTime,
    ) -> Result<Option<StoredAccountToken>, StoreError> {
        self.query_opt(
            sql::TAKE.postgres,
            &[&token_hash.as_slice(), &purpose.as_str(), &now],
        )
        .await?
        .as_ref()
        .map(sql::account_token)
        .transpose()
    }

    async fn prune_account_tokens(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.execute(sql::PRUNE.postgres, &[&before, &limit(batch)])
            .await
            .map(row_count)
    }
}
