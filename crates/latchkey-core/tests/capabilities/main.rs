//! The domain rules of each capability of [`Authority`], tested directly,
//! without HTTP: the real SQLite store on a temporary file, time from a
//! [`ManualClock`], Argon2id at a low cost. Every assertion reads the state
//! back from the store or from the authority itself.

mod accounts;
mod administration;
mod authorization;
mod introspection;
mod keys;
mod recovery;
mod refresh;
mod revocation;
mod sessions;
mod sign_in;
mod upkeep;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::access_token::{AccessClaims, TokenError};
use latchkey_core::audit::{AuditEvent, AuditKind, AuditQuery, Outcome};
use latchkey_core::client::{generate_secret, Client, ClientKind};
use latchkey_core::clock::{Clock as _, ManualClock, UnixTime};
use latchkey_core::model::Session;
use latchkey_core::password::{Argon2Cost, Argon2Hashing, Password, PasswordCheck, PasswordHasher};
use latchkey_core::secret::ServerSecret;
use latchkey_core::service::Origin;
use latchkey_core::store::{AuditStore, ClientStore, SessionStore, UserStore};
use latchkey_core::{AuthError, Authority, Policy, TokenResponse};
use latchkey_store::SqliteStore;
use uuid::Uuid;

/// Everyone's password unless a test says otherwise.
const PASSWORD: &str = "correct horse battery";
/// The address the account owner signs in from.
const HOME: &str = "192.0.2.10";
/// Someone else's address.
const ELSEWHERE: &str = "198.51.100.66";
const START: UnixTime = 1_700_000_000;

/// Argon2id at the lowest cost worth the name, inline (the server runs it on
/// a pool), counting verifications: the timing-parity rule is that every
/// sign-in attempt costs exactly one.
struct CountingHasher {
    argon: Argon2Hashing,
    verifications: AtomicUsize,
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn hash(&self, password: Password) -> Result<String, AuthError> {
        self.argon.hash(&password)
    }

    async fn verify(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<PasswordCheck, AuthError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        Ok(self.argon.verify(&password, phc.as_deref()))
    }
}

/// One Latchkey node over its own temporary database.
struct World {
    authority: Authority,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    hasher: Arc<CountingHasher>,
    secret: ServerSecret,
    policy: Policy,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A node whose policy `adjust` has changed from the defaults.
    async fn with(adjust: impl FnOnce(&mut Policy)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Arc::new(SqliteStore::open(&dir.path().join("latchkey.db")).expect("open store"));
        let clock = Arc::new(ManualClock::new(START));
        let hasher = Arc::new(CountingHasher {
            argon: Argon2Hashing::new(Argon2Cost {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            })
            .expect("argon2"),
            verifications: AtomicUsize::new(0),
        });
        let mut policy = Policy::new("https://latchkey.test");
        adjust(&mut policy);
        let secret = ServerSecret::generate().expect("secret");
        let (authority, _) = Authority::open(
            store.clone(),
            clock.clone(),
            hasher.clone(),
            &secret,
            policy.clone(),
        )
        .await
        .expect("open authority");
        Self {
            authority,
            store,
            clock,
            hasher,
            secret,
            policy,
            _dir: dir,
        }
    }

    /// Another node on the same database, secret, clock and policy.
    async fn another_node(&self) -> Authority {
        Authority::open(
            self.store.clone(),
            self.clock.clone(),
            self.hasher.clone(),
            &self.secret,
            self.policy.clone(),
        )
        .await
        .expect("open second node")
        .0
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    fn verifications(&self) -> usize {
        self.hasher.verifications.load(Ordering::SeqCst)
    }

    async fn sign_up(&self, username: &str) -> latchkey_core::model::User {
        self.authority
            .sign_up(username, PASSWORD, None, None, &from(HOME))
            .await
            .expect("sign up")
    }

    async fn default_client(&self) -> Client {
        self.authority
            .client(None, None)
            .await
            .expect("default client")
    }

    async fn sign_in(&self, username: &str, password: &str) -> Result<TokenResponse, AuthError> {
        self.sign_in_from(username, password, HOME).await
    }

    async fn sign_in_from(
        &self,
        username: &str,
        password: &str,
        ip: &str,
    ) -> Result<TokenResponse, AuthError> {
        let client = self.default_client().await;
        self.authority
            .sign_in(username, password, &client, &Default::default(), from(ip))
            .await
    }

    async fn refresh(&self, tokens: &TokenResponse) -> Result<TokenResponse, AuthError> {
        let client = self.default_client().await;
        self.authority
            .refresh(refresh_token(tokens), &client, None, &from(HOME))
            .await
    }

    /// The claims of a token this node accepts.
    fn claims(&self, tokens: &TokenResponse) -> AccessClaims {
        self.authority
            .authenticate(&tokens.access_token)
            .expect("access token accepted")
    }

    /// The session `tokens` belong to, as stored.
    async fn session(&self, tokens: &TokenResponse) -> Session {
        self.store
            .session(sid_of(&tokens.access_token))
            .await
            .expect("read session")
            .expect("session stored")
    }

    /// Every audit record, oldest first.
    async fn audit(&self) -> Vec<AuditEvent> {
        self.store
            .audit_events(&AuditQuery {
                user_id: None,
                since: None,
                limit: 1000,
            })
            .await
            .expect("read audit log")
    }

    /// The audit records of `kind`.
    async fn audited(&self, kind: AuditKind) -> Vec<AuditEvent> {
        let mut events = self.audit().await;
        events.retain(|e| e.kind == kind);
        events
    }

    /// Registers a client; returns it with its secret when confidential.
    async fn register(
        &self,
        client_id: &str,
        kind: ClientKind,
        adjust: impl FnOnce(&mut Client),
    ) -> (Client, Option<String>) {
        let mut client = Client::default_public(client_id);
        client.kind = kind;
        client.created_at = self.now();
        let secret = (kind == ClientKind::Confidential).then(|| {
            let (secret, hash) = generate_secret().expect("secret");
            client.secret_hash = Some(hash);
            secret
        });
        adjust(&mut client);
        assert!(self.store.insert_client(&client).await.expect("insert"));
        let client = self
            .authority
            .client(Some(client_id), secret.as_deref())
            .await
            .expect("client authenticates");
        (client, secret)
    }
}

fn from(ip: &str) -> Origin {
    Origin {
        user_agent: Some("capability-tests".into()),
        ip: Some(ip.into()),
        network: Some(ip.into()),
        request_id: None,
    }
}

fn refresh_token(tokens: &TokenResponse) -> &str {
    tokens.refresh_token.as_deref().expect("refresh token")
}

/// Part `index` of a JWS (0: header, 1: payload), read without verifying.
fn jws_part(token: &str, index: usize) -> serde_json::Value {
    let part = token.split('.').nth(index).expect("jws part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64")).expect("json")
}

/// The `kid` in a JWS header.
fn kid_of(token: &str) -> String {
    jws_part(token, 0)["kid"].as_str().expect("kid").to_owned()
}

/// The session an access token belongs to, whether or not it still
/// verifies.
fn sid_of(token: &str) -> Uuid {
    let sid = jws_part(token, 1)["sid"].as_str().expect("sid").to_owned();
    Uuid::parse_str(&sid).expect("uuid sid")
}

/// Whether the error is an access-token refusal for `reason`.
fn refused_for(result: Result<AccessClaims, AuthError>, reason: TokenError) -> bool {
    matches!(result, Err(AuthError::InvalidToken(r)) if r == reason)
}

fn outcomes(events: &[AuditEvent]) -> Vec<Outcome> {
    events.iter().map(|e| e.outcome).collect()
}
