//! OAuth clients: the client row and the statements both databases share.
//! Inserting and replacing differ (SQLite's `INSERT OR ...`, PostgreSQL's
//! `ON CONFLICT` and `jsonb` lists) and live with each backend.

use latchkey_core::access_token::Algorithm;
use latchkey_core::client::{Client, ClientKind};

use super::{statement, Columns, Sql};

/// The columns a client is written to, in the order of its parameters.
macro_rules! client_fields {
    () => {
        "client_id, kind, secret_hash, audiences, scopes, access_ttl, refresh_idle_timeout, \
         session_lifetime, created_at, introspect_any, allowed_origins, redirect_uris, \
         post_logout_redirect_uris, third_party, id_token_alg"
    };
}
pub(crate) use client_fields;

/// The columns [`client`] reads; the lists are JSON text in SQLite and
/// `jsonb` in PostgreSQL, read as text on both.
macro_rules! client_columns {
    () => {
        "client_id, kind, secret_hash, CAST(audiences AS TEXT) AS audiences, \
         CAST(scopes AS TEXT) AS scopes, access_ttl, refresh_idle_timeout, session_lifetime, \
         created_at, introspect_any, CAST(allowed_origins AS TEXT) AS allowed_origins, \
         CAST(redirect_uris AS TEXT) AS redirect_uris, \
         CAST(post_logout_redirect_uris AS TEXT) AS post_logout_redirect_uris, third_party, \
         id_token_alg"
    };
}

pub(crate) const BY_ID: Sql = statement!(
    "SELECT ",
    client_columns!(),
    " FROM clients WHERE client_id = ?1"
);

/// Every client, in no particular order (see [`in_order`]).
pub(crate) const ALL: Sql = statement!("SELECT ", client_columns!(), " FROM clients");

pub(crate) const DELETE: Sql = statement!("DELETE FROM clients WHERE client_id = ?1");

/// Only confidential clients have a secret.
pub(crate) const SET_SECRET: Sql = statement!(
    "UPDATE clients SET secret_hash = ?2 WHERE client_id = ?1 AND kind = 'confidential'"
);

pub(crate) fn client<R: Columns>(row: &R) -> Result<Client, R::Error> {
    let kind: String = row.value("kind")?;
    Ok(Client {
        client_id: row.value("client_id")?,
        kind: ClientKind::parse(&kind)
            .ok_or_else(|| R::invalid("kind", format!("client kind {kind}")))?,
        secret_hash: row.value("secret_hash")?,
        audiences: row.string_list("audiences")?,
        scopes: row.string_list("scopes")?,
        access_ttl_seconds: row.value("access_ttl")?,
        refresh_idle_timeout_seconds: row.value("refresh_idle_timeout")?,
        session_lifetime_seconds: row.value("session_lifetime")?,
        introspect_any: row.value("introspect_any")?,
        allowed_origins: row.string_list("allowed_origins")?,
        redirect_uris: row.string_list("redirect_uris")?,
        post_logout_redirect_uris: row.string_list("post_logout_redirect_uris")?,
        third_party: row.value("third_party")?,
        id_token_algorithm: match row.value::<Option<String>>("id_token_alg")? {
            None => None,
            Some(alg) => Some(
                Algorithm::parse(&alg)
                    .ok_or_else(|| R::invalid("id_token_alg", format!("algorithm {alg}")))?,
            ),
        },
        created_at: row.value("created_at")?,
    })
}

/// The order clients are listed in: by id, byte by byte (the same on both
/// databases whatever PostgreSQL's collation).
pub(crate) fn in_order(mut clients: Vec<Client>) -> Vec<Client> {
    clients.sort_unstable_by(|a, b| a.client_id.cmp(&b.client_id));
    clients
}
