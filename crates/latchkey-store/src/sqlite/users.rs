//! Accounts on SQLite.

use async_trait::async_trait;
use latchkey_core::model::User;
use latchkey_core::store::{StoreError, UserStore};
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::SqliteStore;
use crate::sql::users as sql;

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<bool, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        let u = user.clone();
        self.writer
            .write(move |c| {
                // `roles` is JSON text here, `jsonb` in PostgreSQL.
                let n = c
                    .prepare_cached(
                        "INSERT INTO users (id, username, username_key, password_hash, roles,
                             created_at, email, email_key, email_verified_at, disabled_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (username_key) DO NOTHING",
                    )?
                    .execute(params![
                        u.id.as_bytes(),
                        u.username,
                        u.username_key,
                        u.password_hash,
                        roles,
                        u.created_at,
                        u.email.as_ref().map(|e| &e.address),
                        u.email.as_ref().map(|e| &e.key),
                        u.email_verified_at,
                        u.disabled_at
                    ])?;
                Ok(n == 1)
            })
            .await
    }

    async fn user_by_key(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::BY_KEY.sqlite)?
                .query_row([username_key], |r| sql::user(r))
                .optional()
        })
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::BY_ID.sqlite)?
                .query_row([id.as_bytes()], |r| sql::user(r))
                .optional()
        })
    }

    async fn set_password_hash(&self, user_id: Uuid, phc: &str) -> Result<(), StoreError> {
        let phc = phc.to_owned();
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::SET_PASSWORD_HASH.sqlite)?
                    .execute(params![user_id.as_bytes(), phc])
                    .map(drop)
            })
            .await
    }
}
