//! Invite codes on SQLite.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::StoredInvite;
use latchkey_core::store::{InviteStore, StoreError};
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::sql::invites as sql;
use crate::sql::limit;

#[async_trait]
impl InviteStore for SqliteStore {
    async fn insert_invite(&self, invite: &StoredInvite) -> Result<(), StoreError> {
        let roles =
            serde_json::to_string(&invite.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        let i = invite.clone();
        self.writer
            .write(move |c| {
                // `roles` is JSON text here, `jsonb` in PostgreSQL.
                c.prepare_cached(
                    "INSERT INTO invites (code_hash, roles, created_by, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    i.code_hash,
                    roles,
                    i.created_by,
                    i.created_at,
                    i.expires_at
                ])
                .map(drop)
            })
            .await
    }

    async fn take_invite(
        &self,
        code_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<StoredInvite>, StoreError> {
        let hash = *code_hash;
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::TAKE.sqlite)?
                    .query_row(params![hash, now], |r| sql::invite(r))
                    .optional()
            })
            .await
    }

    async fn prune_invites(&self, before: UnixTime, batch: usize) -> Result<usize, StoreError> {
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::PRUNE.sqlite)?
                    .execute(params![before, limit(batch)])
            })
            .await
    }
}
