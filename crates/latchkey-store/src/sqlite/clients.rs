//! OAuth clients on SQLite.

use async_trait::async_trait;
use latchkey_core::client::Client;
use latchkey_core::store::{ClientStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::sql::clients::{self as sql, client_fields};

#[async_trait]
impl ClientStore for SqliteStore {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::BY_ID.sqlite)?
                .query_row([client_id], |r| sql::client(r))
                .optional()
        })
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::ALL.sqlite)?
                .query_map([], |r| sql::client(r))?
                .collect()
        })
        .map(sql::in_order)
    }

    async fn insert_client(&self, client: &Client) -> Result<bool, StoreError> {
        let client = client.clone();
        self.writer
            .write(move |c| write_client(c, &client, "INSERT OR IGNORE"))
            .await
    }

    async fn upsert_client(&self, client: &Client) -> Result<(), StoreError> {
        let client = client.clone();
        self.writer
            .write(move |c| write_client(c, &client, "INSERT OR REPLACE").map(drop))
            .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        self.writer
            .write(move |c| Ok(c.execute(sql::DELETE.sqlite, [id])? == 1))
            .await
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
    ) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let hash = secret_hash.to_vec();
        self.writer
            .write(move |c| Ok(c.execute(sql::SET_SECRET.sqlite, params![id, hash])? == 1))
            .await
    }
}

/// `verb` is `INSERT OR IGNORE` or `INSERT OR REPLACE`; true if a row was
/// written. The lists are stored as JSON text.
fn write_client(c: &Connection, client: &Client, verb: &str) -> rusqlite::Result<bool> {
    let json = |v: &Vec<String>| {
        serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let n = c.execute(
        &format!(
            "{verb} INTO clients ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            client_fields!()
        ),
        params![
            client.client_id,
            client.kind.as_str(),
            client.secret_hash,
            json(&client.audiences)?,
            json(&client.scopes)?,
            client.access_ttl_seconds,
            client.refresh_idle_timeout_seconds,
            client.session_lifetime_seconds,
            client.created_at,
            client.introspect_any
        ],
    )?;
    Ok(n == 1)
}
