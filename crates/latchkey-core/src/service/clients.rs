//! Clients: which registered (or the default) client is asking, and the
//! client-credentials grant, where a service acts for itself.

use super::tokens::Holder;
use super::{Authority, GrantRequest, TokenResponse};
use crate::client::{Client, ClientKind};
use crate::AuthError;

/// How long a node trusts its copy of a client: deleted clients and rotated
/// secrets reach every node within this.
const CLIENT_CACHE_SECONDS: i64 = 5;

impl Authority {
    /// The client a request names (the default client when it names none),
    /// authenticated: a confidential client must present its secret.
    pub async fn client(
        &self,
        client_id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Client, AuthError> {
        let client = self
            .known_client(client_id.unwrap_or(&self.policy.client_id))
            .await?;
        client.authenticate(secret)?;
        Ok(client)
    }

    /// The client called `id` (the default client is known without being
    /// registered), not authenticated: for the authorization endpoint,
    /// where the browser names the client and no secret comes along.
    pub async fn known_client(&self, id: &str) -> Result<Client, AuthError> {
        let now = self.clock.now();
        let cached = self
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|(_, fetched)| now - fetched < CLIENT_CACHE_SECONDS)
            .map(|(client, _)| client.clone());
        let client = match cached {
            Some(c) => c,
            None => {
                let client = match self.store.client(id).await? {
                    Some(c) => c,
                    None if id == self.policy.client_id => Client::default_public(id),
                    // Unknown ids are not cached: a flood of them must not
                    // grow memory.
                    None => return Err(AuthError::InvalidClient),
                };
                self.clients
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_owned(), (client.clone(), now));
                client
            }
        };
        Ok(client)
    }

    /// Reads the registered clients (the server does so periodically) and
    /// returns their allowed web origins, for CORS. Once any client may use
    /// the code flow, the ID-token keys are made here, ahead of the first
    /// sign-in: relying parties that fetched the key set before it would
    /// not know the first ID token's key for up to a minute.
    pub async fn sync_clients(&self) -> Result<Vec<String>, AuthError> {
        let clients = self.store.clients().await?;
        if clients.iter().any(|c| !c.redirect_uris.is_empty()) {
            self.keys.id_token_key().await?;
        }
        Ok(clients
            .into_iter()
            .flat_map(|c| c.allowed_origins)
            .collect())
    }

    /// RFC 6749 §4.4: a service's own access token, no user, no session, no
    /// refresh token. Confidential clients only. Its `sub` is
    /// `client:<client_id>`, which no user id can equal.
    pub fn client_credentials(
        &self,
        client: &Client,
        request: &GrantRequest<'_>,
    ) -> Result<TokenResponse, AuthError> {
        if client.kind != ClientKind::Confidential {
            return Err(AuthError::UnauthorizedClient);
        }
        let grant = client.grant(request.scope, request.audience, &self.policy.audience)?;
        let now = self.clock.now();
        let (access_token, ttl) =
            self.mint(Holder::Client, client, &grant.audience, &grant.scope, now);
        Ok(TokenResponse {
            access_token,
            expires_in: ttl,
            expires_at: now.saturating_add(ttl),
            refresh_token: None,
            session_expires_at: None,
            scope: grant.scope,
            id_token: None,
        })
    }
}
