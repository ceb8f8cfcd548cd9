//! `latchkey clients …`: operators register, list, show and delete OAuth
//! clients and rotate their secrets; a running server sees the change on
//! its next request.

use clap::{Args, Subcommand, ValueEnum};
use latchkey_core::access_token::Algorithm;
use latchkey_core::client::{
    generate_secret, validate_client_id, validate_redirect_uris, Client, ClientKind,
};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::secret::Secret;
use serde_json::json;

use super::CommandError;
use crate::config::{
    parse_algorithm, parse_duration, validate_client_ttl, whole_seconds, DataArgs,
};
use crate::server::{open_data, IfMissing};

#[derive(Debug, Args)]
pub struct ClientsArgs {
    #[command(flatten)]
    pub location: DataArgs,
    #[command(subcommand)]
    pub action: ClientsAction,
}

#[derive(Debug, Subcommand)]
pub enum ClientsAction {
    /// Register a client; a confidential client's secret is printed once
    Create(CreateArgs),
    /// List registered clients (never their secrets)
    List,
    /// Show one registered client (never its secret)
    Show { client_id: String },
    /// Delete a client; its sessions stop refreshing
    Delete { client_id: String },
    /// Replace a confidential client's secret; prints the new one once
    RotateSecret { client_id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Public,
    Confidential,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The client's id, as apps send it (`client_id`)
    pub client_id: String,
    /// `public` (apps that cannot keep a secret: browser, mobile) or
    /// `confidential` (servers; gets a secret, printed once)
    #[arg(long = "type", value_enum, default_value = "public")]
    pub kind: Kind,
    /// Audience it may ask for (repeat; the first is the default)
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// Scope it may ask for (repeat)
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Lifetime of its access tokens, e.g. `5m`, at most the server's
    /// `max_access_ttl` [default: the server's access_ttl]
    #[arg(long, value_parser = parse_duration)]
    pub access_ttl: Option<std::time::Duration>,
    /// Its sessions end when not refreshed for this long [default: the
    /// server's session_idle_timeout]
    #[arg(long, value_parser = parse_duration)]
    pub refresh_idle_timeout: Option<std::time::Duration>,
    /// Its sessions end this long after sign-in [default: the server's
    /// session_lifetime]
    #[arg(long, value_parser = parse_duration)]
    pub session_lifetime: Option<std::time::Duration>,
    /// May introspect tokens issued to any client, not only its own (for
    /// resource servers; confidential clients only)
    #[arg(long)]
    pub introspect_any: bool,
    /// Web origin whose pages may call the API with credentials and use the
    /// refresh cookie, e.g. `https://app.example.com` (repeat)
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// Where the authorization endpoint may send the browser back with a
    /// code, matched exactly: https, http to a loopback address, or a
    /// private-use scheme like `com.example.app:/callback` (repeat)
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to (repeat)
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Another party's app: people are asked to consent to the scopes it
    /// asks for (once; they can withdraw it). First-party apps are not asked
    #[arg(long)]
    pub third_party: bool,
    /// Sign its ID tokens with this algorithm: RS256 (what every OpenID
    /// library accepts), or the server's access-token algorithm
    /// [default: RS256]
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    pub id_token_algorithm: Option<Algorithm>,
}

/// A new client secret (held as a [`Secret`] until it is printed, the one
/// place it ever appears) and the hash to store.
fn new_client_secret() -> Result<(Secret, Vec<u8>), CommandError> {
    let (secret, hash) = generate_secret().map_err(|e| CommandError::Refused(e.to_string()))?;
    Ok((Secret::from(secret), hash))
}

fn describe(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.client_id,
        "type": c.kind.as_str(),
        "audiences": c.audiences,
        "scopes": c.scopes,
        "access_ttl": c.access_ttl_seconds,
        "refresh_idle_timeout": c.refresh_idle_timeout_seconds,
        "session_lifetime": c.session_lifetime_seconds,
        "introspect_any": c.introspect_any,
        "allowed_origins": c.allowed_origins,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "third_party": c.third_party,
        "id_token_algorithm": c.id_token_algorithm.map(|a| a.as_str()),
        "created_at": c.created_at,
    })
}

/// Runs one action; returns what to print (JSON).
pub async fn run(args: ClientsArgs) -> Result<serde_json::Value, CommandError> {
    let settings = args.location.settings()?;
    let (_dir, store) = open_data(&settings, IfMissing::Create).await?;
    let refused = |m: String| CommandError::Refused(m);
    match args.action {
        ClientsAction::Create(a) => {
            validate_client_id(&a.client_id).map_err(|e| refused(e.to_string()))?;
            let kind = match a.kind {
                Kind::Public => ClientKind::Public,
                Kind::Confidential => ClientKind::Confidential,
            };
            let secret = match kind {
                ClientKind::Confidential => Some(new_client_secret()?),
                ClientKind::Public => None,
            };
            if a.introspect_any && kind == ClientKind::Public {
                return Err(refused(
                    "--introspect-any needs --type confidential (only they may introspect)".into(),
                ));
            }
            let allowed_origins = a
                .allowed_origins
                .iter()
                .map(|o| crate::browser::parse_origin(o.trim()))
                .collect::<Result<_, _>>()
                .map_err(refused)?;
            let client = Client {
                client_id: a.client_id,
                kind,
                secret_hash: secret.as_ref().map(|(_, hash)| hash.clone()),
                audiences: a.audiences,
                scopes: a.scopes,
                access_ttl_seconds: a.access_ttl.map(whole_seconds),
                refresh_idle_timeout_seconds: a.refresh_idle_timeout.map(whole_seconds),
                session_lifetime_seconds: a.session_lifetime.map(whole_seconds),
                introspect_any: a.introspect_any,
                allowed_origins,
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                third_party: a.third_party,
                id_token_algorithm: a.id_token_algorithm,
                created_at: SystemClock.now(),
            };
            validate_client_ttl(&client, &settings.policy).map_err(|e| refused(e.to_string()))?;
            if let Some(alg) = client.id_token_algorithm {
                let access = settings.policy.signing_algorithm;
                if alg != Algorithm::Rs256 && !access.accepts(alg.as_str()) {
                    return Err(refused(format!(
                        "--id-token-algorithm must be RS256 or the access tokens' {access}"
                    )));
                }
            }
            validate_redirect_uris(&client.redirect_uris)
                .and_then(|()| validate_redirect_uris(&client.post_logout_redirect_uris))
                .map_err(|e| refused(e.to_string()))?;
            if !store.insert_client(&client).await? {
                return Err(refused(format!("client {} exists", client.client_id)));
            }
            let mut out = describe(&client);
            if let Some((secret, _)) = secret {
                out["client_secret"] = secret.expose().into();
            }
            Ok(out)
        }
        ClientsAction::List => {
            let clients = store.clients().await?;
            Ok(clients.iter().map(describe).collect())
        }
        ClientsAction::Show { client_id } => match store.client(&client_id).await? {
            Some(client) => Ok(describe(&client)),
            None => Err(refused(format!("no client {client_id}"))),
        },
        ClientsAction::Delete { client_id } => {
            if !store.delete_client(&client_id).await? {
                return Err(refused(format!("no client {client_id}")));
            }
            Ok(json!({ "deleted": client_id }))
        }
        ClientsAction::RotateSecret { client_id } => {
            let (secret, hash) = new_client_secret()?;
            if !store.set_client_secret(&client_id, &hash).await? {
                return Err(refused(format!("no confidential client {client_id}")));
            }
            Ok(json!({ "client_id": client_id, "client_secret": secret.expose() }))
        }
    }
}
