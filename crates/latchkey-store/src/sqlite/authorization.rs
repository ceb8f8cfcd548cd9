//! Authorization codes and consents on SQLite.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{CodeRedemption, Consent, StoredAuthorizationCode};
use latchkey_core::store::{AuthorizationStore, StoreError};
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::SqliteStore;
use crate::sql::authorization as sql;
use crate::sql::limit;

#[async_trait]
impl AuthorizationStore for SqliteStore {
    async fn insert_authorization_code(
        &self,
        code: &StoredAuthorizationCode,
    ) -> Result<(), StoreError> {
        let c = code.clone();
        self.writer
            .write(move |db| {
                db.prepare_cached(sql::INSERT_CODE.sqlite)?
                    .execute(params![
                        c.code_hash,
                        c.client_id,
                        c.redirect_uri,
                        c.code_challenge,
                        c.user_id.as_bytes(),
                        c.session_id.as_bytes(),
                        c.scope,
                        c.audience,
                        c.nonce,
                        c.auth_time,
                        c.created_at,
                        c.expires_at
                    ])
                    .map(drop)
            })
            .await
    }

    async fn redeem_authorization_code(
        &self,
        code_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<CodeRedemption, StoreError> {
        let hash = *code_hash;
        // One writer step: the check and the mark are atomic.
        self.writer
            .write(move |db| {
                let first = db
                    .prepare_cached(sql::REDEEM_CODE.sqlite)?
                    .query_row(params![hash, now], |r| sql::authorization_code(r))
                    .optional()?;
                if let Some(code) = first {
                    return Ok(CodeRedemption::First(code));
                }
                Ok(db
                    .prepare_cached(sql::CODE_BY_HASH.sqlite)?
                    .query_row(params![hash], |r| sql::authorization_code(r))
                    .optional()?
                    .map_or(CodeRedemption::Unknown, CodeRedemption::Again))
            })
            .await
    }

    async fn prune_authorization_codes(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.writer
            .write(move |db| {
                db.prepare_cached(sql::PRUNE_CODES.sqlite)?
                    .execute(params![before, limit(batch)])
            })
            .await
    }

    async fn consent(&self, user_id: Uuid, client_id: &str) -> Result<Option<Consent>, StoreError> {
        self.read(|db| {
            db.prepare_cached(sql::CONSENT.sqlite)?
                .query_row(params![user_id.as_bytes(), client_id], |r| sql::consent(r))
                .optional()
        })
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let c = consent.clone();
        self.writer
            .write(move |db| {
                db.prepare_cached(sql::SAVE_CONSENT.sqlite)?
                    .execute(params![
                        c.user_id.as_bytes(),
                        c.client_id,
                        c.scope,
                        c.granted_at
                    ])
                    .map(drop)
            })
            .await
    }

    async fn consents_of_user(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError> {
        self.read(|db| {
            db.prepare_cached(sql::CONSENTS_OF_USER.sqlite)?
                .query_map(params![user_id.as_bytes()], |r| sql::consent(r))?
                .collect()
        })
        .map(sql::in_order)
    }

    async fn withdraw_consent(&self, user_id: Uuid, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.writer
            .write(move |db| {
                Ok(db
                    .prepare_cached(sql::WITHDRAW_CONSENT.sqlite)?
                    .execute(params![user_id.as_bytes(), client_id])?
                    == 1)
            })
            .await
    }
}
