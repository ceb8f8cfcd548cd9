//! Profiles: what the driver sends to a token service and where it finds the
//! tokens in the answers, so the same scenarios measure Latchkey and a peer.
//!
//! A profile is a TOML file (see `profiles/*.toml` in this crate); the names
//! `latchkey` and `simplejwt` select the two shipped ones.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderValue, Method, Uri};
use serde::Deserialize;

/// The shipped Latchkey profile.
pub const LATCHKEY_TOML: &str = include_str!("../profiles/latchkey.toml");
/// The shipped Django REST framework SimpleJWT profile.
pub const SIMPLEJWT_TOML: &str = include_str!("../profiles/simplejwt.toml");

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("reading profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML or not the profile's shape.
    #[error("parsing profile {name}: {source}")]
    Parse {
        /// The profile name or file.
        name: String,
        /// The TOML error.
        source: toml::de::Error,
    },
    /// Parsed, but a value makes no sense.
    #[error("profile {name}: {what}")]
    Invalid {
        /// The profile name or file.
        name: String,
        /// What is wrong.
        what: String,
    },
}

/// How request bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    /// `application/json`, an object of string fields.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

impl ContentType {
    /// The `Content-Type` header value.
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Form => "application/x-www-form-urlencoded",
        }
    }

    /// Encodes string fields as a body of this type.
    pub fn encode(self, fields: &[(&str, &str)]) -> Bytes {
        match self {
            ContentType::Json => {
                let map: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
                    .collect();
                Bytes::from(serde_json::to_vec(&map).expect("a map of strings serialises"))
            }
            ContentType::Form => {
                let mut s = form_urlencoded::Serializer::new(String::new());
                for (k, v) in fields {
                    s.append_pair(k, v);
                }
                Bytes::from(s.finish())
            }
        }
    }
}

/// Fields common to every endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path, starting with `/`.
    pub path: String,
    /// Overrides the profile's `content_type` for this endpoint.
    #[serde(default)]
    pub content_type: Option<ContentType>,
    /// Constant fields added to every body (e.g. `client_id`).
    #[serde(default)]
    pub extra_fields: BTreeMap<String, String>,
}

/// The sign-up request (setup only, never timed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path, starting with `/`.
    pub path: String,
    /// Overrides the profile's `content_type` for this endpoint.
    #[serde(default)]
    pub content_type: Option<ContentType>,
    /// Constant fields added to every body (e.g. `client_id`).
    #[serde(default)]
    pub extra_fields: BTreeMap<String, String>,
    /// Request field carrying the username.
    pub username_field: String,
    /// Request field carrying the password.
    pub password_field: String,
    /// Optional second password field (`password2` in many registration forms).
    #[serde(default)]
    pub password_confirm_field: Option<String>,
    /// Statuses meaning "created".
    #[serde(default = "default_created")]
    pub success_status: Vec<u16>,
    /// Statuses meaning "already exists" (the run then signs in with it).
    #[serde(default)]
    pub exists_status: Vec<u16>,
}

fn default_created() -> Vec<u16> {
    vec![200, 201]
}

/// The sign-in request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path, starting with `/`.
    pub path: String,
    /// Overrides the profile's `content_type` for this endpoint.
    #[serde(default)]
    pub content_type: Option<ContentType>,
    /// Constant fields added to every body (e.g. `client_id`).
    #[serde(default)]
    pub extra_fields: BTreeMap<String, String>,
    /// Request field carrying the username.
    pub username_field: String,
    /// Request field carrying the password.
    pub password_field: String,
}

/// The refresh request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path, starting with `/`.
    pub path: String,
    /// Overrides the profile's `content_type` for this endpoint.
    #[serde(default)]
    pub content_type: Option<ContentType>,
    /// Constant fields added to every body (e.g. `client_id`).
    #[serde(default)]
    pub extra_fields: BTreeMap<String, String>,
    /// Request field carrying the refresh token.
    pub refresh_token_field: String,
}

macro_rules! endpoint_of {
    ($($t:ty),*) => {$(
        impl $t {
            /// The endpoint part (method, path, content type, extra fields).
            pub fn endpoint(&self) -> Endpoint {
                Endpoint {
                    method: self.method.clone(),
                    path: self.path.clone(),
                    content_type: self.content_type,
                    extra_fields: self.extra_fields.clone(),
                }
            }
        }
    )*};
}
endpoint_of!(SignUp, SignIn, Refresh);

/// Where the tokens are in a token response (top-level JSON fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseFields {
    /// Field holding the access token.
    pub access_token_field: String,
    /// Field holding the refresh token.
    pub refresh_token_field: String,
}

/// A whole profile as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Shown in reports.
    pub name: String,
    /// Default body encoding.
    #[serde(default)]
    pub content_type: ContentType,
    /// `Authorization: <scheme> <access token>`.
    #[serde(default = "default_scheme")]
    pub auth_scheme: String,
    /// Sign-up (setup).
    pub sign_up: SignUp,
    /// Sign-in.
    pub sign_in: SignIn,
    /// Refresh.
    pub refresh: Refresh,
    /// Authenticated read; its body, if any, is ignored.
    pub me: Endpoint,
    /// Token fields in responses.
    pub response: ResponseFields,
}

fn default_scheme() -> String {
    "Bearer".to_owned()
}

/// An endpoint ready for the hot path: parsed method, full path, header value.
#[derive(Debug, Clone)]
pub struct PreparedEndpoint {
    /// Method.
    pub method: Method,
    /// Origin-form URI (base path + path).
    pub uri: Uri,
    /// Body encoding.
    pub content_type: ContentType,
    /// `Content-Type` header value.
    pub content_type_header: HeaderValue,
    /// Constant extra fields.
    pub extra_fields: Vec<(String, String)>,
}

impl PreparedEndpoint {
    /// Encodes `fields` plus the endpoint's constant fields.
    pub fn body(&self, fields: &[(&str, &str)]) -> Bytes {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.extend(
            self.extra_fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        self.content_type.encode(&all)
    }
}

impl Profile {
    /// `latchkey` / `simplejwt` select a shipped profile; anything else is a file path.
    pub fn load(spec: &str) -> Result<Profile, ProfileError> {
        match spec {
            "latchkey" => Profile::parse("latchkey", LATCHKEY_TOML),
            "simplejwt" => Profile::parse("simplejwt", SIMPLEJWT_TOML),
            path => {
                let text = std::fs::read_to_string(Path::new(path)).map_err(|source| {
                    ProfileError::Read {
                        path: path.to_owned(),
                        source,
                    }
                })?;
                Profile::parse(path, &text)
            }
        }
    }

    /// Parses and validates profile TOML; `name` labels errors.
    pub fn parse(name: &str, text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|source| ProfileError::Parse {
            name: name.to_owned(),
            source,
        })?;
        profile.validate(name)?;
        Ok(profile)
    }

    fn validate(&self, name: &str) -> Result<(), ProfileError> {
        let invalid = |what: String| ProfileError::Invalid {
            name: name.to_owned(),
            what,
        };
        if self.auth_scheme.is_empty()
            || !self
                .auth_scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(invalid(format!(
                "auth_scheme {:?} is not a token",
                self.auth_scheme
            )));
        }
        let fields = [
            ("sign_up.username_field", &self.sign_up.username_field),
            ("sign_up.password_field", &self.sign_up.password_field),
            ("sign_in.username_field", &self.sign_in.username_field),
            ("sign_in.password_field", &self.sign_in.password_field),
            (
                "refresh.refresh_token_field",
                &self.refresh.refresh_token_field,
            ),
            (
                "response.access_token_field",
                &self.response.access_token_field,
            ),
            (
                "response.refresh_token_field",
                &self.response.refresh_token_field,
            ),
        ];
        for (what, value) in fields {
            if value.is_empty() {
                return Err(invalid(format!("{what} is empty")));
            }
        }
        if self.sign_up.success_status.is_empty() {
            return Err(invalid("sign_up.success_status is empty".into()));
        }
        for s in self
            .sign_up
            .success_status
            .iter()
            .chain(&self.sign_up.exists_status)
        {
            if !(100..=599).contains(s) {
                return Err(invalid(format!("status {s} is not an HTTP status")));
            }
        }
        for (what, ep) in self.endpoints() {
            self.prepare(&ep, "")
                .map_err(|e| invalid(format!("{what}: {e}")))?;
        }
        Ok(())
    }

    fn endpoints(&self) -> [(&'static str, Endpoint); 4] {
        [
            ("sign_up", self.sign_up.endpoint()),
            ("sign_in", self.sign_in.endpoint()),
            ("refresh", self.refresh.endpoint()),
            ("me", self.me.clone()),
        ]
    }

    /// Prepares one endpoint under `base_path` (the target URL's path).
    pub fn prepare(&self, ep: &Endpoint, base_path: &str) -> Result<PreparedEndpoint, String> {
        let method = Method::from_bytes(ep.method.as_bytes())
            .map_err(|_| format!("bad method {:?}", ep.method))?;
        if !ep.path.starts_with('/') {
            return Err(format!("path {:?} must start with /", ep.path));
        }
        let uri: Uri = format!("{base_path}{}", ep.path)
            .parse()
            .map_err(|e| format!("bad path {:?}: {e}", ep.path))?;
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Err(format!("path {:?} must not name a host", ep.path));
        }
        let content_type = ep.content_type.unwrap_or(self.content_type);
        Ok(PreparedEndpoint {
            method,
            uri,
            content_type,
            content_type_header: HeaderValue::from_static(content_type.mime()),
            extra_fields: ep
                .extra_fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// `Authorization` header value for an access token.
    pub fn auth_header(&self, access_token: &str) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!("{} {access_token}", self.auth_scheme)).ok()
    }
}

/// Tokens pulled out of a token response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Access token.
    pub access: String,
    /// Refresh token, if the response had one.
    pub refresh: Option<String>,
}

impl ResponseFields {
    /// Extracts the tokens from a JSON token response; `None` if the body is
    /// not JSON or has no access token.
    pub fn extract(&self, body: &[u8]) -> Option<Tokens> {
        let value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).ok()?;
        let access = value.get(&self.access_token_field)?.as_str()?.to_owned();
        let refresh = value
            .get(&self.refresh_token_field)
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Some(Tokens { access, refresh })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_parse() {
        let l = Profile::load("latchkey").unwrap();
        assert_eq!(l.sign_in.path, "/v1/sign-in");
        assert_eq!(l.refresh.refresh_token_field, "refresh_token");
        assert_eq!(l.response.access_token_field, "access_token");
        assert_eq!(l.sign_up.success_status, vec![201]);
        assert_eq!(l.auth_scheme, "Bearer");
        let me = l.prepare(&l.me, "").unwrap();
        assert_eq!(me.method, Method::GET);
        assert_eq!(me.uri.path(), "/v1/me");

        let s = Profile::load("simplejwt").unwrap();
        assert_eq!(s.sign_up.path, "/api/register/");
        assert_eq!(s.refresh.refresh_token_field, "refresh");
        assert_eq!(s.response.refresh_token_field, "refresh");
        assert_eq!(
            s.prepare(&s.me, "/base").unwrap().uri.path(),
            "/base/api/me/"
        );
    }

    const FORM: &str = r#"
        name = "peer"
        content_type = "form"
        auth_scheme = "JWT"
        [sign_up]
        method = "PUT"
        path = "/users"
        username_field = "login"
        password_field = "pw"
        password_confirm_field = "pw2"
        extra_fields = { email_domain = "example.test" }
        [sign_in]
        method = "POST"
        path = "/login"
        content_type = "json"
        username_field = "login"
        password_field = "pw"
        [refresh]
        method = "POST"
        path = "/refresh"
        refresh_token_field = "rt"
        extra_fields = { client_id = "bench" }
        [me]
        method = "GET"
        path = "/whoami"
        [response]
        access_token_field = "at"
        refresh_token_field = "rt"
    "#;

    #[test]
    fn custom_profile_and_bodies() {
        let p = Profile::parse("peer", FORM).unwrap();
        assert_eq!(p.sign_up.success_status, vec![200, 201]);
        assert_eq!(p.sign_up.password_confirm_field.as_deref(), Some("pw2"));
        let refresh = p.prepare(&p.refresh.endpoint(), "").unwrap();
        assert_eq!(refresh.content_type, ContentType::Form);
        assert_eq!(
            refresh.content_type_header,
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            &refresh.body(&[("rt", "a b&c")])[..],
            b"rt=a+b%26c&client_id=bench"
        );
        let sign_in = p.prepare(&p.sign_in.endpoint(), "").unwrap();
        assert_eq!(sign_in.content_type, ContentType::Json);
        let body: serde_json::Value =
            serde_json::from_slice(&sign_in.body(&[("login", "u\"1"), ("pw", "p")])).unwrap();
        assert_eq!(body, serde_json::json!({"login": "u\"1", "pw": "p"}));
        assert_eq!(
            p.prepare(&p.sign_up.endpoint(), "").unwrap().method,
            Method::PUT
        );
        assert_eq!(p.auth_header("abc").unwrap(), "JWT abc");
    }

    #[test]
    fn extracts_tokens() {
        let p = Profile::parse("peer", FORM).unwrap();
        assert_eq!(
            p.response.extract(br#"{"at":"A","rt":"R","x":1}"#),
            Some(Tokens {
                access: "A".into(),
                refresh: Some("R".into())
            })
        );
        assert_eq!(
            p.response.extract(br#"{"at":"A"}"#),
            Some(Tokens {
                access: "A".into(),
                refresh: None
            })
        );
        assert_eq!(p.response.extract(br#"{"rt":"R"}"#), None);
        assert_eq!(p.response.extract(b"not json"), None);
    }

    #[test]
    fn rejects_bad_profiles() {
        let bad = |from: &str, to: &str| {
            let text = FORM.replacen(from, to, 1);
            assert!(
                Profile::parse("bad", &text).is_err(),
                "{to:?} should be refused"
            );
        };
        bad(r#"path = "/users""#, r#"path = "users""#);
        bad(
            r#"path = "/users""#,
            r#"path = "http://evil.example/users""#,
        );
        bad(r#"method = "PUT""#, r#"method = "P UT""#);
        bad(r#"content_type = "form""#, r#"content_type = "xml""#);
        bad(r#"auth_scheme = "JWT""#, r#"auth_scheme = "J W T""#);
        bad(r#"access_token_field = "at""#, r#"access_token_field = """#);
        bad(r#"name = "peer""#, "name = \"peer\"\nunknown_key = 1");
        bad("[me]", "[mee]");
        assert!(matches!(
            Profile::load("/nonexistent/profile.toml"),
            Err(ProfileError::Read { .. })
        ));
    }
}
