//! Accounts on SQLite.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{User, UserQuery};
use latchkey_core::store::{StoreError, UserStore, UserUpdate};
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::sessions::insert_session_revocations;
use super::SqliteStore;
use crate::sql::sessions::REVOKE_ALL_OF_USER;
use crate::sql::users as sql;
use crate::sql::{limit, Columns};

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<bool, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        let u = user.clone();
        self.writer
            .write(move |c| {
                // `roles` is JSON text here, `jsonb` in PostgreSQL. Either
                // unique key (username, email) colliding inserts nothing.
                let n = c
                    .prepare_cached(
                        "INSERT INTO users (id, username, username_key, password_hash, roles,
                             created_at, email, email_key, email_verified_at, disabled_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT DO NOTHING",
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

    async fn users(&self, query: &UserQuery) -> Result<Vec<User>, StoreError> {
        let after = query.after.as_deref().unwrap_or("");
        let pattern = sql::contains_pattern(&query.contains);
        self.read(|c| {
            c.prepare_cached(sql::PAGE.sqlite)?
                .query_map(params![after, pattern, limit(query.limit)], |r| {
                    sql::user(r)
                })?
                .collect()
        })
    }

    async fn update_user(&self, user: &User) -> Result<UserUpdate, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        let u = user.clone();
        self.writer
            .write(move |c| {
                let email_key = u.email.as_ref().map(|e| &e.key);
                if email_key.is_some() {
                    // The one writer runs this check and the update with
                    // nothing in between.
                    let clash = c
                        .prepare_cached(sql::EMAIL_CLASH.sqlite)?
                        .query_row(params![u.id.as_bytes(), email_key], |_| Ok(()))
                        .optional()?;
                    if clash.is_some() {
                        return Ok(UserUpdate::EmailTaken);
                    }
                }
                let n = c
                    .prepare_cached(
                        "UPDATE users SET roles = ?2, email = ?3, email_key = ?4,
                             email_verified_at = ?5, disabled_at = ?6
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        u.id.as_bytes(),
                        roles,
                        u.email.as_ref().map(|e| &e.address),
                        email_key,
                        u.email_verified_at,
                        u.disabled_at
                    ])?;
                Ok(if n == 1 {
                    UserUpdate::Updated
                } else {
                    UserUpdate::NotFound
                })
            })
            .await
    }

    async fn delete_user(
        &self,
        user_id: Uuid,
        throttle_key: &str,
        now: UnixTime,
        entry_expires_at: UnixTime,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let throttle_key = throttle_key.to_owned();
        self.writer
            .write(move |c| {
                let id = user_id.as_bytes();
                let ended: Vec<Uuid> = c
                    .prepare_cached(REVOKE_ALL_OF_USER.sqlite)?
                    .query_map(params![id, None::<&[u8]>, now, "account_deleted"], |r| {
                        r.uuid("id")
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                insert_session_revocations(c, &ended, entry_expires_at)?;
                c.prepare_cached(sql::DELETE_SESSIONS.sqlite)?
                    .execute([id])?;
                c.prepare_cached(sql::DELETE_ACCOUNT_TOKENS.sqlite)?
                    .execute([id])?;
                c.prepare_cached(sql::DELETE_THROTTLE.sqlite)?
                    .execute([&throttle_key])?;
                let deleted = c.prepare_cached(sql::DELETE.sqlite)?.execute([id])?;
                Ok((deleted == 1).then_some(ended))
            })
            .await
    }
}
