//! Authorization codes and consents on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{CodeRedemption, Consent, StoredAuthorizationCode};
use latchkey_core::store::{AuthorizationStore, StoreError};
use uuid::Uuid;

use super::{row_count, PostgresStore};
use crate::sql::authorization as sql;
use crate::sql::limit;

#[async_trait]
impl AuthorizationStore for PostgresStore {
    async fn insert_authorization_code(
        &self,
        c: &StoredAuthorizationCode,
    ) -> Result<(), StoreError> {
        self.execute(
            sql::INSERT_CODE.postgres,
            &[
                &c.code_hash.as_slice(),
                &c.client_id,
                &c.redirect_uri,
                &c.code_challenge,
                &c.user_id,
                &c.session_id,
                &c.scope,
                &c.audience,
                &c.nonce,
                &c.auth_time,
                &c.created_at,
                &c.expires_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn redeem_authorization_code(
        &self,
        code_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<CodeRedemption, StoreError> {
        // The conditional UPDATE alone decides who is first; the read after
        // it only tells a replay from an unknown code (a row, once
        // redeemed, never becomes unredeemed).
        let hash = code_hash.as_slice();
        if let Some(row) = self
            .query_opt(sql::REDEEM_CODE.postgres, &[&hash, &now])
            .await?
        {
            return sql::authorization_code(&row).map(CodeRedemption::First);
        }
        Ok(self
            .query_opt(sql::CODE_BY_HASH.postgres, &[&hash])
            .await?
            .as_ref()
            .map(sql::authorization_code)
            .transpose()?
            .map_or(CodeRedemption::Unknown, CodeRedemption::Again))
    }

    async fn prune_authorization_codes(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.execute(sql::PRUNE_CODES.postgres, &[&before, &limit(batch)])
            .await
            .map(row_count)
    }

    async fn consent(&self, user_id: Uuid, client_id: &str) -> Result<Option<Consent>, StoreError> {
        self.query_opt(sql::CONSENT.postgres, &[&user_id, &client_id])
            .await?
            .as_ref()
            .map(sql::consent)
            .transpose()
    }

    async fn save_consent(&self, c: &Consent) -> Result<(), StoreError> {
        self.execute(
            sql::SAVE_CONSENT.postgres,
            &[&c.user_id, &c.client_id, &c.scope, &c.granted_at],
        )
        .await
        .map(drop)
    }

    async fn consents_of_user(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError> {
        self.query(sql::CONSENTS_OF_USER.postgres, &[&user_id])
            .await?
            .iter()
            .map(sql::consent)
            .collect::<Result<_, _>>()
            .map(sql::in_order)
    }

    async fn withdraw_consent(&self, user_id: Uuid, client_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute(sql::WITHDRAW_CONSENT.postgres, &[&user_id, &client_id])
            .await?
            == 1)
    }
}
