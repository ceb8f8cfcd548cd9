//! OAuth clients on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::client::Client;
use latchkey_core::store::{ClientStore, StoreError};

use super::PostgresStore;
use crate::sql::clients::{self as sql, client_fields};

#[async_trait]
impl ClientStore for PostgresStore {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.query_opt(sql::BY_ID.postgres, &[&client_id])
            .await?
            .as_ref()
            .map(sql::client)
            .transpose()
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        self.query(sql::ALL.postgres, &[])
            .await?
            .iter()
            .map(sql::client)
            .collect::<Result<_, _>>()
            .map(sql::in_order)
    }

    async fn insert_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.write_client(client, "ON CONFLICT (client_id) DO NOTHING")
            .await
            .map(|n| n == 1)
    }

    async fn upsert_client(&self, client: &Client) -> Result<(), StoreError> {
        // Replaces the whole row, as SQLite's INSERT OR REPLACE does.
        self.write_client(
            client,
            "ON CONFLICT (client_id) DO UPDATE SET kind = EXCLUDED.kind,
                 secret_hash = EXCLUDED.secret_hash, audiences = EXCLUDED.audiences,
                 scopes = EXCLUDED.scopes, access_ttl = EXCLUDED.access_ttl,
                 refresh_idle_timeout = EXCLUDED.refresh_idle_timeout,
                 session_lifetime = EXCLUDED.session_lifetime, created_at = EXCLUDED.created_at,
                 introspect_any = EXCLUDED.introspect_any,
                 allowed_origins = EXCLUDED.allowed_origins,
                 redirect_uris = EXCLUDED.redirect_uris,
                 post_logout_redirect_uris = EXCLUDED.post_logout_redirect_uris,
                 third_party = EXCLUDED.third_party,
                 id_token_alg = EXCLUDED.id_token_alg",
        )
        .await
        .map(drop)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(self.execute(sql::DELETE.postgres, &[&client_id]).await? == 1)
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(sql::SET_SECRET.postgres, &[&client_id, &secret_hash])
            .await?;
        Ok(n == 1)
    }
}

impl PostgresStore {
    /// Inserts `client`; `on_conflict` says what happens when its id exists.
    /// The lists are `jsonb`.
    async fn write_client(&self, client: &Client, on_conflict: &str) -> Result<u64, StoreError> {
        let json = |v: &Vec<String>| {
            serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
        };
        self.execute(
            &format!(
                "INSERT INTO clients ({})
                 VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, $7, $8, $9, $10,
                         $11::text::jsonb, $12::text::jsonb, $13::text::jsonb, $14, $15)
                 {on_conflict}",
                client_fields!()
            ),
            &[
                &client.client_id,
                &client.kind.as_str(),
                &client.secret_hash,
                &json(&client.audiences)?,
                &json(&client.scopes)?,
                &client.access_ttl_seconds,
                &client.refresh_idle_timeout_seconds,
                &client.session_lifetime_seconds,
                &client.created_at,
                &client.introspect_any,
                &json(&client.allowed_origins)?,
                &json(&client.redirect_uris)?,
                &json(&client.post_logout_redirect_uris)?,
                &client.third_party,
                &client.id_token_algorithm.map(|a| a.as_str()),
            ],
        )
        .await
    }
}
