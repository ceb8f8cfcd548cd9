//! Accounts on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{User, UserQuery};
use latchkey_core::store::{StoreError, UserStore, UserUpdate};
use uuid::Uuid;

use super::sessions::insert_session_revocations;
use super::{commit, feed_writer, tx_execute, tx_query, PostgresStore};
use crate::sql::sessions::REVOKE_ALL_OF_USER;
use crate::sql::users as sql;
use crate::sql::{limit, Columns};

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &User) -> Result<bool, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        // `roles` is `jsonb` here, JSON text in SQLite. Either unique key
        // (username, email) colliding inserts nothing.
        let n = self
            .execute(
                "INSERT INTO users (id, username, username_key, password_hash, roles,
                     created_at, email, email_key, email_verified_at, disabled_at)
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, $10)
                 ON CONFLICT DO NOTHING",
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

    async fn users(&self, query: &UserQuery) -> Result<Vec<User>, StoreError> {
        let after = query.after.as_deref().unwrap_or("");
        let pattern = sql::contains_pattern(&query.contains);
        self.query(sql::PAGE.postgres, &[&after, &pattern, &limit(query.limit)])
            .await?
            .iter()
            .map(sql::user)
            .collect()
    }

    async fn update_user(&self, user: &User) -> Result<UserUpdate, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        let email_key = user.email.as_ref().map(|e| &e.key);
        // The check and the update in one statement; an update racing
        // another to the same address meets the unique index instead.
        let row = self
            .query_opt(
                "WITH clash AS (SELECT 1 FROM users WHERE email_key = $4 AND id <> $1),
                 moved AS (
                     UPDATE users SET roles = $2::text::jsonb, email = $3, email_key = $4,
                         email_verified_at = $5, disabled_at = $6
                     WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM clash)
                     RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM clash) AS clash,
                        EXISTS (SELECT 1 FROM moved) AS moved",
                &[
                    &user.id,
                    &roles,
                    &user.email.as_ref().map(|e| &e.address),
                    &email_key,
                    &user.email_verified_at,
                    &user.disabled_at,
                ],
            )
            .await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(UserUpdate::NotFound),
            Err(StoreError::Backend(msg)) if msg.contains(" 23505:") => {
                return Ok(UserUpdate::EmailTaken)
            }
            Err(e) => return Err(e),
        };
        let clash: bool = row.value("clash")?;
        let moved: bool = row.value("moved")?;
        Ok(match (clash, moved) {
            (true, _) => UserUpdate::EmailTaken,
            (false, true) => UserUpdate::Updated,
            (false, false) => UserUpdate::NotFound,
        })
    }

    async fn delete_user(
        &self,
        user_id: Uuid,
        throttle_key: &str,
        now: UnixTime,
        entry_expires_at: UnixTime,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut client = self.client().await?;
        let started = std::time::Instant::now();
        let tx = feed_writer(&mut client).await?;
        let ended = tx_query(
            &tx,
            REVOKE_ALL_OF_USER.postgres,
            &[&user_id, &None::<Uuid>, &now, &"account_deleted"],
        )
        .await?
        .iter()
        .map(|r| r.uuid("id"))
        .collect::<Result<Vec<_>, _>>()?;
        insert_session_revocations(&tx, &ended, entry_expires_at).await?;
        tx_execute(&tx, sql::DELETE_SESSIONS.postgres, &[&user_id]).await?;
        tx_execute(&tx, sql::DELETE_ACCOUNT_TOKENS.postgres, &[&user_id]).await?;
        tx_execute(&tx, sql::DELETE_THROTTLE.postgres, &[&throttle_key]).await?;
        let deleted = tx_execute(&tx, sql::DELETE.postgres, &[&user_id]).await?;
        if deleted != 1 {
            // Nothing to end for a user who is not there: roll back.
            return Ok(None);
        }
        commit(tx, started).await?;
        Ok(Some(ended))
    }
}
