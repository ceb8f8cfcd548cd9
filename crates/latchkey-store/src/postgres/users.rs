//! Accounts on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::model::User;
use latchkey_core::store::{StoreError, UserStore};
use uuid::Uuid;

use super::PostgresStore;
use crate::sql::users as sql;

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &User) -> Result<bool, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        // `roles` is `jsonb` here, JSON text in SQLite.
        let n = self
            .execute(
                "INSERT INTO users (id, username, username_key, password_hash, roles,
                     created_at, email, email_key, email_verified_at, disabled_at)
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, $10)
                 ON CONFLICT (username_key) DO NOTHING",
                &[
                    &user.id,
                    &user.username,
                    &user.username_key,
                    &user.password_hash,
                    &roles,
                    &user.created_at,
                    &user.email.as_ref().map(|e| &e.address),
                    &user.email.as_ref().map(|e| &e.key),
                    &user.email_verified_at,
                    &user.disabled_at,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn user_by_key(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.query_opt(sql::BY_KEY.postgres, &[&username_key])
            .await?
            .as_ref()
            .map(sql::user)
            .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.query_opt(sql::BY_ID.postgres, &[&id])
            .await?
            .as_ref()
            .map(sql::user)
            .transpose()
    }

    async fn set_password_hash(&self, user_id: Uuid, phc: &str) -> Result<(), StoreError> {
        self.execute(sql::SET_PASSWORD_HASH.postgres, &[&user_id, &phc])
            .await
            .map(drop)
    }
}
