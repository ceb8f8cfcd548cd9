//! Invite codes on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::StoredInvite;
use latchkey_core::store::{InviteStore, StoreError};

use super::{row_count, PostgresStore};
use crate::sql::invites as sql;
use crate::sql::limit;

#[async_trait]
impl InviteStore for PostgresStore {
    async fn insert_invite(&self, invite: &StoredInvite) -> Result<(), StoreError> {
        let roles =
            serde_json::to_string(&invite.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        // `roles` is `jsonb` here, JSON text in SQLite.
        self.execute(
            "INSERT INTO invites (code_hash, roles, created_by, created_at, expires_at)
             VALUES ($1, $2::text::jsonb, $3, $4, $5)",
            &[
                &invite.code_hash.as_slice(),
                &roles,
                &invite.created_by,
                &invite.created_at,
                &invite.expires_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn take_invite(
        &self,
        code_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<StoredInvite>, StoreError> {
        self.query_opt(sql::TAKE.postgres, &[&code_hash.as_slice(), &now])
            .await?
            .as_ref()
            .map(sql::invite)
            .transpose()
    }

    async fn prune_invites(&self, before: UnixTime, batch: usize) -> Result<usize, StoreError> {
        self.execute(sql::PRUNE.postgres, &[&before, &limit(batch)])
            .await
            .map(row_count)
    }
}
