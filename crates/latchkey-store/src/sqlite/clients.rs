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
            .write(move |c| write_client(c, &client, INSERT_OR_IGNORE))
            .await
    }

    async fn upsert_client(&self, client: &Client) -> Result<(), StoreError> {
        let client = client.clone();
        self.writer
            .write(move |c| write_client(c, &client, INSERT_OR_REPLACE).map(drop))
            .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        self.writer
            .write(move |c| Ok(c.prepare_cached(sql::DELETE.sqlite)?.execute([id])? == 1))
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
            .write(move |c| {
                Ok(c.prepare_cached(sql::SET_SECRET.sqlite)?
                    .execute(params![id, hash])?
                    == 1)
            })
            .await
    }
}

/// A client written with `verb` (`INSERT OR IGNORE` or `INSERT OR REPLACE`).
macro_rules! write_client {
    ($verb:literal) => {
        concat!(
            $verb,
            " INTO clients (",
            client_fields!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        )
    };
}

const INSERT_OR_IGNORE: &str = write_client!("INSERT OR IGNORE");
const INSERT_OR_REPLACE: &str = write_client!("INSERT OR REPLACE");

/// `statement` is [`INSERT_OR_IGNORE`] or [`INSERT_OR_REPLACE`]; true if a
/// row was written. The lists are stored as JSON text.
fn write_client(c: &Connection, client: &Client, statement: &str) -> rusqlite::Result<bool> {
    let json = |v: &Vec<String>| {
        serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let n = c.prepare_cached(statement)?.execute(params![
        client.client_id,
        client.kind.as_str(),
        client.secret_hash,
        json(&client.audiences)?,
        json(&client.scopes)?,
        client.access_ttl_seconds,
        client.refresh_idle_timeout_seconds,
        client.session_lifetime_seconds,
        client.created_at,
        client.introspect_any,
        json(&client.allowed_origins)?,
        json(&client.redirect_uris)?,
        json(&client.post_logout_redirect_uris)?,
        client.third_party,
        client.id_token_algorithm.map(|a| a.as_str())
    ])?;
    Ok(n == 1)
}
