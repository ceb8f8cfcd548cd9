//! OAuth clients (apps): who may ask for tokens, for which audiences and
//! scopes, with what lifetimes, and how a confidential client proves itself.

use std::collections::HashSet;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::access_token::Algorithm;
use crate::clock::UnixTime;
use crate::secret::fill_random;
use crate::AuthError;

/// Client secrets start with this, so scanners and log maskers spot them.
pub const SECRET_PREFIX: &str = "lkc_";

/// The `sub` of a client-credentials token is this followed by the client
/// id. User ids are UUIDs, so no client, whatever it is called, shares a
/// subject with a user.
pub const CLIENT_SUBJECT_PREFIX: &str = "client:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Cannot keep a secret (browser, mobile app): identifies itself only.
    Public,
    /// Has a secret and must authenticate with it.
    Confidential,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Public => "public",
            ClientKind::Confidential => "confidential",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(ClientKind::Public),
            "confidential" => Some(ClientKind::Confidential),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub kind: ClientKind,
    /// SHA-256 of the secret. Secrets are 256 random bits, so a fast hash
    /// is as good as a slow one and keeps token requests cheap.
    pub secret_hash: Option<Vec<u8>>,
    /// Audiences it may ask for; the first is the default. Empty: the
    /// server's default audience.
    pub audiences: Vec<String>,
    /// Scopes it may ask for; all of them when it asks for none.
    pub scopes: Vec<String>,
    pub access_ttl_seconds: Option<i64>,
    pub refresh_idle_timeout_seconds: Option<i64>,
    pub session_lifetime_seconds: Option<i64>,
    /// May introspect tokens issued to any client (a resource server);
    /// otherwise only its own. Meaningful for confidential clients only.
    pub introspect_any: bool,
    /// Web origins (`https://app.example.com`) whose pages may call the API
    /// with credentials and use the refresh cookie (CORS), besides the
    /// server-wide list.
    pub allowed_origins: Vec<String>,
    /// Where the authorization endpoint may send its answers (exact
    /// match, RFC 9700 §2.1); none: the code flow is closed to it.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
    /// Another party's app: the user is asked to consent to the scopes it
    /// wants (once, remembered); first-party apps are not asked.
    pub third_party: bool,
    /// What its ID tokens are signed with: `None`, RS256 (what every
    /// OpenID library accepts, from the ID-token key lineage); otherwise
    /// the access tokens' algorithm, from their key (OpenID's
    /// `id_token_signed_response_alg`).
    pub id_token_algorithm: Option<Algorithm>,
    pub created_at: UnixTime,
}

/// What a client was granted: the `aud` and `scope` of its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub audience: String,
    /// Space-separated, in the client's order; empty for none.
    pub scope: String,
}

impl Client {
    /// The implicit public client used when a request names none.
    pub fn default_public(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            kind: ClientKind::Public,
            secret_hash: None,
            audiences: Vec::new(),
            scopes: Vec::new(),
            access_ttl_seconds: None,
            refresh_idle_timeout_seconds: None,
            session_lifetime_seconds: None,
            introspect_any: false,
            allowed_origins: Vec::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            third_party: false,
            id_token_algorithm: None,
            created_at: 0,
        }
    }

    /// The `sub` of its client-credentials tokens.
    pub fn subject(&self) -> String {
        format!("{CLIENT_SUBJECT_PREFIX}{}", self.client_id)
    }

    /// Whether introspection may tell it about a token issued to
    /// `issued_to`.
    pub fn may_introspect_tokens_of(&self, issued_to: &str) -> bool {
        self.kind == ClientKind::Confidential
            && (self.introspect_any || self.client_id == issued_to)
    }

    /// Checks a presented secret in constant time. A public client has no
    /// secret, so presenting one is an error too.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<(), AuthError> {
        match (self.kind, presented, &self.secret_hash) {
            (ClientKind::Public, None, _) => Ok(()),
            (ClientKind::Confidential, Some(secret), Some(stored))
                if bool::from(hash_secret(secret).ct_eq(stored.as_slice())) =>
            {
                Ok(())
            }
            _ => Err(AuthError::InvalidClient),
        }
    }

    /// The grant for a request: requested scopes must all be allowed,
    /// a requested audience must be allowed.
    pub fn grant(
        &self,
        requested_scope: Option<&str>,
        requested_audience: Option<&str>,
        default_audience: &str,
    ) -> Result<Grant, AuthError> {
        let audience = match requested_audience {
            None => self
                .audiences
                .first()
                .map(String::as_str)
                .unwrap_or(default_audience),
            Some(a) if self.audiences.iter().any(|x| x == a) => a,
            Some(a) if self.audiences.is_empty() && a == default_audience => a,
            Some(_) => {
                return Err(AuthError::InvalidTarget);
            }
        };
        let scope = match requested_scope {
            None => self.scopes.join(" "),
            Some(requested) => {
                let requested = parse_scope(requested)?;
                if !requested.iter().all(|s| self.scopes.iter().any(|a| a == s)) {
                    return Err(AuthError::InvalidScope);
                }
                requested.join(" ")
            }
        };
        Ok(Grant {
            audience: audience.to_owned(),
            scope,
        })
    }
}

/// Longest scope parameter accepted, in bytes.
pub const MAX_SCOPE_BYTES: usize = 1024;
/// Most scope tokens one parameter may hold.
pub const MAX_SCOPE_TOKENS: usize = 32;

/// Scope tokens per RFC 6749 §3.3: space-separated, printable ASCII other
/// than `"` and `\`; duplicates collapse, first occurrence kept. The
/// parameter is attacker-controlled and parsed before any credential check,
/// so its size is bounded first and duplicates are found with a set: the
/// work stays linear and small whatever arrives.
pub fn parse_scope(s: &str) -> Result<Vec<&str>, AuthError> {
    if s.len() > MAX_SCOPE_BYTES {
        return Err(AuthError::InvalidScope);
    }
    let mut seen = HashSet::new();
    let mut out: Vec<&str> = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        if !token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err(AuthError::InvalidScope);
        }
        if seen.insert(token) {
            if out.len() == MAX_SCOPE_TOKENS {
                return Err(AuthError::InvalidScope);
            }
            out.push(token);
        }
    }
    Ok(out)
}

/// Whether every scope in `requested` is in `granted` (for narrowing on
/// refresh).
pub fn scope_within(requested: &str, granted: &str) -> Result<bool, AuthError> {
    let granted: HashSet<&str> = parse_scope(granted)?.into_iter().collect();
    Ok(parse_scope(requested)?.iter().all(|s| granted.contains(s)))
}

/// A fresh secret and the hash to store; the secret is shown once.
pub fn generate_secret() -> Result<(String, Vec<u8>), AuthError> {
    let mut raw = [0u8; 32];
    fill_random(&mut raw)?;
    let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = hash_secret(&secret);
    Ok((secret, hash))
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// Client ids: 1-128 letters, digits, `-`, `.`, `_` and `~`: characters
/// that form encoding leaves as they are, so a client that puts its id in
/// HTTP Basic without form-encoding it first (RFC 6749 §2.3.1, a step many
/// skip) still sends the right one.
pub fn validate_client_id(id: &str) -> Result<(), AuthError> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if id.is_empty() || id.len() > 128 || !id.bytes().all(plain) {
        return Err(AuthError::InvalidRequest(
            "client_id must be 1-128 letters, digits, '-', '.', '_' or '~'".into(),
        ));
    }
    Ok(())
}

/// A redirect URI as a client may register it (RFC 9700 §2.1, RFC 8252
/// §7): absolute, without a fragment, and either `https`, `http` to a
/// loopback address (a native app's local listener), or a private-use
/// scheme with a dot (`com.example.app:/callback`). Plain `http` elsewhere
/// would hand codes to anyone on the path.
pub fn validate_redirect_uri(uri: &str) -> Result<(), AuthError> {
    let refuse = |why: &str| Err(AuthError::InvalidRequest(format!("redirect URI {why}")));
    if uri.len() > 2048 {
        return refuse("is longer than 2048 bytes");
    }
    let Ok(parsed) = url::Url::parse(uri) else {
        return refuse("must be an absolute URI");
    };
    if parsed.fragment().is_some() {
        return refuse("must not have a fragment");
    }
    let loopback = matches!(
        parsed.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || parsed.host_str() == Some("localhost");
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => refuse("may use http only for a loopback address (127.0.0.1, [::1], localhost)"),
        "https" => refuse("must name a host"),
        "javascript" | "data" | "file" | "vbscript" => refuse("has a scheme that is never allowed"),
        scheme if scheme.contains('.') => Ok(()),
        _ => refuse("must be https, http to a loopback address, or a private-use scheme such as com.example.app:/callback"),
    }
}

/// Every URI of a registration's list, each by [`validate_redirect_uri`].
pub fn validate_redirect_uris(uris: &[String]) -> Result<(), AuthError> {
    for uri in uris {
        validate_redirect_uri(uri)
            .map_err(|e| AuthError::InvalidRequest(format!("{uri:?}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_or_private_use() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:5000/cb",
            "http://localhost:3000/auth/callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(validate_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "/callback",
            "app.example.com/cb",
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "javascript:alert(1)",
            "data:text/html,hi",
            "myapp:/cb",
            &format!("https://a.example/{}", "x".repeat(2048)),
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_ids_need_no_form_encoding() {
        for good in ["web", "jobs-api", "a.b_c~1", &"x".repeat(128)] {
            assert!(validate_client_id(good).is_ok(), "{good}");
        }
        // Each of these changes when form-encoded (RFC 6749 §2.3.1), so a
        // client that skips the encoding in Basic would send another id.
        for bad in [
            "",
            "rs:orders",
            "a b",
            "a+b",
            "a%41",
            "a/b",
            "a@b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(validate_client_id(bad).is_err(), "{bad}");
        }
    }

    fn confidential() -> (Client, String) {
        let (secret, hash) = generate_secret().expect("rng");
        let c = Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(hash),
            audiences: vec!["api".into(), "billing".into()],
            scopes: vec!["read".into(), "write".into()],
            ..Client::default_public("svc")
        };
        (c, secret)
    }

    #[test]
    fn secrets_authenticate() {
        let (c, secret) = confidential();
        assert!(secret.starts_with("lkc_"));
        assert!(c.authenticate(Some(&secret)).is_ok());
        assert!(c.authenticate(Some("lkc_wrong")).is_err());
        assert!(c.authenticate(None).is_err());
        let public = Client::default_public("web");
        assert!(public.authenticate(None).is_ok());
        assert!(public.authenticate(Some(&secret)).is_err());
    }

    #[test]
    fn grants_stay_within_what_is_allowed() {
        let (c, _) = confidential();
        let g = c.grant(None, None, "latchkey").expect("grant");
        assert_eq!(g.audience, "api");
        assert_eq!(g.scope, "read write");
        let g = c
            .grant(Some("write"), Some("billing"), "latchkey")
            .expect("grant");
        assert_eq!(
            (g.audience.as_str(), g.scope.as_str()),
            ("billing", "write")
        );
        assert!(matches!(
            c.grant(Some("admin"), None, "x"),
            Err(AuthError::InvalidScope)
        ));
        assert!(matches!(
            c.grant(None, Some("other"), "x"),
            Err(AuthError::InvalidTarget)
        ));
        assert!(matches!(
            c.grant(Some("re\"ad"), None, "x"),
            Err(AuthError::InvalidScope)
        ));
        let public = Client::default_public("web");
        let g = public.grant(None, None, "latchkey").expect("grant");
        assert_eq!((g.audience.as_str(), g.scope.as_str()), ("latchkey", ""));
    }

    #[test]
    fn scope_is_bounded_in_bytes_and_tokens() {
        let at_limit: Vec<String> = (0..MAX_SCOPE_TOKENS).map(|i| format!("s{i}")).collect();
        assert_eq!(
            parse_scope(&at_limit.join(" ")).map(|v| v.len()).ok(),
            Some(MAX_SCOPE_TOKENS)
        );
        let over = format!("{} extra", at_limit.join(" "));
        assert!(matches!(parse_scope(&over), Err(AuthError::InvalidScope)));
        // Duplicates do not count against the token limit.
        let repeated = "read ".repeat(200);
        assert_eq!(parse_scope(&repeated).ok(), Some(vec!["read"]));
        assert!(matches!(
            parse_scope(&"a ".repeat(MAX_SCOPE_BYTES)),
            Err(AuthError::InvalidScope)
        ));
        assert_eq!(
            parse_scope("b a b c a").ok(),
            Some(vec!["b", "a", "c"]),
            "first occurrence order"
        );
    }

    #[test]
    fn introspection_reaches_own_tokens_unless_registered_for_any() {
        let (mut c, _) = confidential();
        assert!(c.may_introspect_tokens_of("svc"));
        assert!(!c.may_introspect_tokens_of("web"));
        c.introspect_any = true;
        assert!(c.may_introspect_tokens_of("web"));
        let public = Client {
            introspect_any: true,
            ..Client::default_public("web")
        };
        assert!(!public.may_introspect_tokens_of("web"));
    }

    #[test]
    fn client_subjects_never_parse_as_user_ids() {
        let id = uuid::Uuid::new_v4().to_string();
        let c = Client::default_public(&id);
        assert_eq!(c.subject(), format!("client:{id}"));
        assert!(uuid::Uuid::parse_str(&c.subject()).is_err());
    }

    #[test]
    fn scope_narrowing() {
        assert_eq!(scope_within("read", "read write").ok(), Some(true));
        assert_eq!(scope_within("read admin", "read write").ok(), Some(false));
        assert_eq!(scope_within("", "").ok(), Some(true));
    }
}
