//! Requests that get each documented answer of the OpenAPI document: the
//! success of every operation and, shared by the two test binaries that
//! prove every documented `(operation, status)` pair is real, the credentials
//! those successes need. `tests/http/openapi.rs` sends them for the 2xx
//! answers (and makes every 3xx and 4xx itself); `cluster_outage.rs` sends
//! the same requests while PostgreSQL is down, for the 503s.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::{header, RequestBuilder};
use serde_json::{json, Value};

pub const PASSWORD: &str = "documented answers 1";

/// The redirect URI the Holder's clients are registered with (nothing
/// listens there: redirects are answers to check, not to follow).
pub const CALLBACK: &str = "http://127.0.0.1:9/cb";
/// The confidential client's post-logout redirect URI.
pub const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";
const SESSION_COOKIE: &str = "__Host-latchkey_session";

/// Every `(operationId, status)` the document lists, in document order.
pub fn documented_pairs(doc: &Value) -> Vec<(String, u16)> {
    let mut pairs = Vec::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("path item").values() {
            let id = op["operationId"].as_str().expect("operationId");
            for status in op["responses"].as_object().expect("responses").keys() {
                pairs.push((id.to_owned(), status.parse().expect("numeric status")));
            }
        }
    }
    pairs
}

/// Credentials made before the requests, one session per request that
/// ends or changes something, so the requests can go in any order.
pub struct Holder {
    pub base: String,
    pub http: reqwest::Client,
    /// A confidential client: the feed, introspection and the OAuth grants.
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    /// Access tokens: for reads, for sign-out, for cancelling itself, and
    /// the caller of `DELETE /v1/sessions/{id}`.
    pub reader: String,
    pub signing_out: String,
    pub cancelling: String,
    pub ending: String,
    /// The session `ending` ends.
    pub ended_session: String,
    /// Refresh tokens issued to the confidential client, one per use.
    pub to_refresh: String,
    pub to_revoke: String,
    pub to_revoke_oauth: String,
    pub to_introspect: String,
    pub to_grant: String,
    /// A second account whose password changes (which ends its other
    /// sessions), with its access token.
    pub changing: (String, String),
    /// The confidential client's own token with `latchkey:admin` (the
    /// client must have that scope), for the administration API.
    pub admin: String,
    /// Account ids for it: the owner's (read, roles changed), one whose
    /// sessions end and that gets a reset link, one that is deleted.
    pub owner_id: String,
    pub managed_id: String,
    pub doomed_id: String,
    /// A third account's id (its password is reset, which ends its
    /// sessions), for the test that mints its link (the outage test has no
    /// use for it).
    #[allow(dead_code)]
    pub resetter_id: String,
    /// Tokens of a reset link (the third account's) and of a verification
    /// link (the owner's address, [`OWNER_EMAIL`]). Well-formed stand-ins
    /// until a test that can mint real ones sets them: a request with them
    /// still reaches the store.
    pub reset_token: String,
    pub verify_token: String,
    /// A browser for the hosted pages: redirects not followed, the session
    /// cookie sent by hand (it is `Secure`, which a jar keeps off http).
    pub browser: reqwest::Client,
    /// A third-party client (consent pages), public, redirecting to
    /// [`CALLBACK`].
    pub partner_id: String,
    /// The PKCE challenge of every authorization request made here.
    challenge: String,
    /// The owner's browser session (signed in on the hosted page), and an
    /// ID token of theirs for logout's `id_token_hint` (its session is one
    /// of its own, which that logout ends): for the redirects the test of
    /// every answer asks for (the outage test has no use for them).
    #[allow(dead_code)]
    pub browser_session: String,
    #[allow(dead_code)]
    pub id_token_hint: String,
    /// The owner's access token granted `openid profile`, for UserInfo.
    pub openid_reader: String,
    /// Another account's token, issued to the partner once it consented:
    /// it withdraws that consent (which ends its sessions of the partner).
    pub withdrawing: String,
}

/// The address the owner's account has (set by the test that verifies it).
pub const OWNER_EMAIL: &str = "documented-owner@example.com";

/// The authorization request (code flow, PKCE) of `client_id` for
/// [`CALLBACK`], with `extra` parameters added.
pub fn authorization(
    client_id: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("scope", "openid profile"),
        ("state", "documented"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    params
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `params` as a query string.
pub fn query(params: &[(String, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.finish()
}

/// The `code` a redirect back to the client carries.
fn code_of(r: &reqwest::Response) -> String {
    let location = r
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .expect("a Location");
    let query = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"))
}

/// The browser session cookie a response sets.
fn session_cookie_of(r: &reqwest::Response) -> String {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{SESSION_COOKIE}=")))
        .and_then(|rest| rest.split(';').next())
        .expect("a browser session cookie")
        .to_owned()
}

impl Holder {
    /// `client_id` must be a confidential client with the `latchkey:admin`
    /// scope, registered with redirect URI [`CALLBACK`] and post-logout
    /// redirect URI [`AFTER_LOGOUT`]; `partner_id` a public third-party
    /// client with redirect URI [`CALLBACK`].
    pub async fn prepare(
        http: &reqwest::Client,
        base: &str,
        label: &str,
        client_id: &str,
        client_secret: &str,
        partner_id: &str,
    ) -> Self {
        let username = format!("{label}-owner");
        let changer = format!("{label}-changer");
        let resetter = format!("{label}-resetter");
        let consenting = format!("{label}-consenting");
        let mut ids = Vec::new();
        for name in [
            username.clone(),
            changer.clone(),
            format!("{label}-managed"),
            format!("{label}-doomed"),
            resetter,
            consenting.clone(),
        ] {
            let r = http
                .post(format!("{base}/v1/sign-up"))
                .json(&json!({"username": name, "password": PASSWORD}))
                .send()
                .await
                .expect("sign-up");
            assert_eq!(r.status(), 201, "sign-up of {name}");
            let account: Value = r.json().await.expect("account");
            ids.push(account["id"].as_str().expect("id").to_owned());
        }
        let r = http
            .post(format!("{base}/oauth/token"))
            .basic_auth(client_id, Some(client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "latchkey:admin"),
            ])
            .send()
            .await
            .expect("admin token");
        assert_eq!(r.status(), 200, "the client needs the latchkey:admin scope");
        let admin: Value = r.json().await.expect("token response");
        let admin = admin["access_token"].as_str().expect("token").to_owned();
        let sign_in = |name: String| {
            let http = http.clone();
            let url = format!("{base}/v1/sign-in");
            // No scope: the client's admin scope is for its own token.
            let body = json!({
                "username": name, "password": PASSWORD,
                "client_id": client_id, "client_secret": client_secret, "scope": "",
            });
            async move {
                let r = http.post(url).json(&body).send().await.expect("sign-in");
                assert_eq!(r.status(), 200, "sign-in");
                let t: Value = r.json().await.expect("token response");
                let field = |f: &str| t[f].as_str().expect("token").to_owned();
                (field("access_token"), field("refresh_token"))
            }
        };
        // Five sessions used by their access token, five by their refresh
        // token: no request ends a session another one uses.
        let mut access = Vec::new();
        let mut refresh = Vec::new();
        for i in 0..10 {
            let (a, r) = sign_in(username.clone()).await;
            if i < 5 {
                access.push(a);
            } else {
                refresh.push(r);
            }
        }
        let ended = access.pop().expect("five sessions");
        let sessions: Value = http
            .get(format!("{base}/v1/sessions"))
            .bearer_auth(&ended)
            .send()
            .await
            .expect("sessions")
            .json()
            .await
            .expect("json");
        let ended_session = sessions["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .find(|s| s["current"] == true)
            .and_then(|s| s["id"].as_str())
            .expect("the current session")
            .to_owned();
        let changing = sign_in(changer).await.0;
        let next = |v: &mut Vec<String>| v.pop().expect("enough sessions");

        // The code flow through the hosted pages, as a browser goes it.
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .expect("browser");
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        let sign_in_page = |client: &str, name: &str| {
            let mut form = authorization(client, &challenge, &[]);
            form.push(("username".into(), name.to_owned()));
            form.push(("password".into(), PASSWORD.into()));
            browser
                .post(format!("{base}/oauth/authorize/sign-in"))
                .header("sec-fetch-site", "same-origin")
                .form(&form)
        };
        let exchange = |code: String, client: &str| {
            let form = [
                ("grant_type", "authorization_code"),
                ("client_id", client),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ];
            let req = http.post(format!("{base}/oauth/token"));
            let req = match client == client_id {
                true => req.basic_auth(client_id, Some(client_secret)),
                false => req,
            };
            let req = req.form(&form);
            async move {
                let r = req.send().await.expect("code exchange");
                assert_eq!(r.status(), 200, "code exchange");
                r.json::<Value>().await.expect("token response")
            }
        };
        // The owner signs in on the hosted page: a code, and a browser
        // session that gets the next code without the password.
        let r = sign_in_page(client_id, &username)
            .send()
            .await
            .expect("hosted sign-in");
        assert_eq!(r.status(), 303, "hosted sign-in");
        let browser_session = session_cookie_of(&r);
        let openid = exchange(code_of(&r), client_id).await;
        let r = browser
            .get(format!(
                "{base}/oauth/authorize?{}",
                query(&authorization(client_id, &challenge, &[]))
            ))
            .header(
                header::COOKIE,
                format!("{SESSION_COOKIE}={browser_session}"),
            )
            .send()
            .await
            .expect("authorize");
        assert_eq!(r.status(), 303, "signed in: straight back with a code");
        let hinted = exchange(code_of(&r), client_id).await;
        // Another account consents to the partner.
        let r = sign_in_page(partner_id, &consenting)
            .send()
            .await
            .expect("hosted sign-in");
        assert_eq!(r.status(), 200, "the consent page");
        let mut allow = authorization(partner_id, &challenge, &[]);
        allow.push(("decision".into(), "allow".into()));
        let r = browser
            .post(format!("{base}/oauth/authorize/consent"))
            .header("sec-fetch-site", "same-origin")
            .header(
                header::COOKIE,
                format!("{SESSION_COOKIE}={}", session_cookie_of(&r)),
            )
            .form(&allow)
            .send()
            .await
            .expect("consent");
        assert_eq!(r.status(), 303, "consented");
        let withdrawing = exchange(code_of(&r), partner_id).await;
        let field = |t: &Value, f: &str| t[f].as_str().expect(f).to_owned();

        Self {
            base: base.to_owned(),
            http: http.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            reader: next(&mut access),
            signing_out: next(&mut access),
            cancelling: next(&mut access),
            ending: next(&mut access),
            ended_session,
            to_refresh: next(&mut refresh),
            to_revoke: next(&mut refresh),
            to_revoke_oauth: next(&mut refresh),
            to_introspect: next(&mut refresh),
            to_grant: next(&mut refresh),
            changing: (format!("{label}-changer"), changing),
            username,
            admin,
            owner_id: ids[0].clone(),
            managed_id: ids[2].clone(),
            doomed_id: ids[3].clone(),
            resetter_id: ids[4].clone(),
            reset_token: "A".repeat(43),
            verify_token: "A".repeat(43),
            openid_reader: field(&openid, "access_token"),
            id_token_hint: field(&hinted, "id_token"),
            withdrawing: field(&withdrawing, "access_token"),
            browser,
            partner_id: partner_id.to_owned(),
            challenge,
            browser_session,
        }
    }

    /// An authorization request of `client_id` (see [`authorization`]).
    pub fn authorization(&self, client_id: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        authorization(client_id, &self.challenge, extra)
    }

    /// A hosted page's form, posted from that page (a browser says so with
    /// `Sec-Fetch-Site`).
    pub fn hosted_post(&self, path: &str, form: &[(String, String)]) -> RequestBuilder {
        self.browser
            .post(self.url(path))
            .header("sec-fetch-site", "same-origin")
            .form(form)
    }

    /// `req` with the owner's browser session cookie.
    #[allow(dead_code)] // The outage test sends no redirect's request.
    pub fn signed_in(&self, req: RequestBuilder) -> RequestBuilder {
        req.header(
            header::COOKIE,
            format!("{SESSION_COOKIE}={}", self.browser_session),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn client(&self, req: RequestBuilder) -> RequestBuilder {
        req.basic_auth(&self.client_id, Some(&self.client_secret))
    }

    /// The request that succeeds at `operation` (given these credentials
    /// and a working store); `None` for an operation this table lacks.
    /// Each is meant to be sent once: most end or spend what they use.
    pub fn success(&self, operation: &str) -> Option<RequestBuilder> {
        let http = &self.http;
        let get = |path: &str| http.get(self.url(path));
        let post = |path: &str| http.post(self.url(path));
        Some(match operation {
            "jwks" => get("/.well-known/jwks.json"),
            "metadata" => get("/.well-known/oauth-authorization-server"),
            "openid_configuration" => get("/.well-known/openid-configuration"),
            "docs_page" => get("/docs"),
            "docs_file" => get("/docs/swagger-ui.css"),
            "account_page" => get("/account"),
            "account_file" => get("/account/account.js"),
            "account_client_module" => get("/account/client/index.js"),
            "reset_password_page" => get("/account/reset-password?token=x"),
            "verify_email_page" => get("/account/verify-email?token=x"),
            "forgot" => post("/v1/password/forgot").json(&json!({"username": self.username})),
            "reset" => post("/v1/password/reset").json(&json!({
                "token": self.reset_token, "new_password": "documented answers 4",
            })),
            "set_email" => post("/v1/email")
                .bearer_auth(&self.reader)
                .json(&json!({"email": OWNER_EMAIL})),
            "verify_email" => post("/v1/email/verify").json(&json!({"token": self.verify_token})),
            "healthz" => get("/healthz"),
            "readyz" => get("/readyz"),
            "render" => get("/metrics"),
            "document" => get("/openapi.json"),
            "me" => get("/v1/me").bearer_auth(&self.reader),
            "list" => get("/v1/sessions").bearer_auth(&self.reader),
            "end" => http
                .delete(self.url(&format!("/v1/sessions/{}", self.ended_session)))
                .bearer_auth(&self.ending),
            "sign_out" => post("/v1/sign-out").bearer_auth(&self.signing_out),
            "cancel" => post("/v1/tokens/cancel").bearer_auth(&self.cancelling),
            "change_password" => post("/v1/password").bearer_auth(&self.changing.1).json(
                &json!({"current_password": PASSWORD, "new_password": "documented answers 2"}),
            ),
            "sign_up" => post("/v1/sign-up").json(&json!({
                "username": format!("{}-new", self.username), "password": PASSWORD,
            })),
            "sign_in" => {
                post("/v1/sign-in").json(&json!({"username": self.username, "password": PASSWORD}))
            }
            "refresh" => post("/v1/tokens/refresh").json(&json!({
                "refresh_token": self.to_refresh,
                "client_id": self.client_id, "client_secret": self.client_secret,
            })),
            "revoke" => post("/v1/tokens/revoke").json(&json!({"refresh_token": self.to_revoke})),
            "revocations" => self.client(get("/v1/revocations")),
            "token" => self.client(post("/oauth/token")).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &self.to_grant),
            ]),
            "oauth_revoke" => self
                .client(post("/oauth/revoke"))
                .form(&[("token", &self.to_revoke_oauth)]),
            "introspect" => self
                .client(post("/oauth/introspect"))
                .form(&[("token", &self.to_introspect)]),
            "list_users" => get("/admin/v1/users").bearer_auth(&self.admin),
            "create_user" => post("/admin/v1/users")
                .bearer_auth(&self.admin)
                .json(&json!({"username": format!("{}-created", self.username)})),
            "show_user" => {
                get(&format!("/admin/v1/users/{}", self.owner_id)).bearer_auth(&self.admin)
            }
            "patch_user" => http
                .patch(self.url(&format!("/admin/v1/users/{}", self.owner_id)))
                .bearer_auth(&self.admin)
                .json(&json!({"roles": ["documented"]})),
            "delete_user" => http
                .delete(self.url(&format!("/admin/v1/users/{}", self.doomed_id)))
                .bearer_auth(&self.admin),
            "list_sessions" => {
                get(&format!("/admin/v1/users/{}/sessions", self.owner_id)).bearer_auth(&self.admin)
            }
            "end_sessions" => http
                .delete(self.url(&format!("/admin/v1/users/{}/sessions", self.managed_id)))
                .bearer_auth(&self.admin),
            "reset_link" => post(&format!(
                "/admin/v1/users/{}/password-reset",
                self.managed_id
            ))
            .bearer_auth(&self.admin),
            "create_invite" => post("/admin/v1/invites").bearer_auth(&self.admin),
            // The hosted pages' 200s: the sign-in page (no browser session),
            // the consent page (a third-party client), the logout
            // confirmation (no ID token hint).
            "authorize_get" => self.browser.get(self.url(&format!(
                "/oauth/authorize?{}",
                query(&self.authorization(&self.client_id, &[]))
            ))),
            "authorize_post" => self
                .browser
                .post(self.url("/oauth/authorize"))
                .form(&self.authorization(&self.client_id, &[])),
            "sign_in_form" => {
                let mut form = self.authorization(&self.partner_id, &[]);
                form.push(("username".into(), self.username.clone()));
                form.push(("password".into(), PASSWORD.into()));
                self.hosted_post("/oauth/authorize/sign-in", &form)
            }
            "consent_form" => {
                let mut form = self.authorization(&self.partner_id, &[]);
                form.push(("decision".into(), "allow".into()));
                self.hosted_post("/oauth/authorize/consent", &form)
            }
            "logout_get" => self.browser.get(self.url("/oauth/logout")),
            "logout_post" => self
                .browser
                .post(self.url("/oauth/logout"))
                .form(&[("client_id", &self.client_id)]),
            "userinfo" => get("/userinfo").bearer_auth(&self.openid_reader),
            "userinfo_post" => post("/userinfo").bearer_auth(&self.openid_reader),
            "consents" => get("/v1/consents").bearer_auth(&self.reader),
            "withdraw_consent" => http
                .delete(self.url(&format!("/v1/consents/{}", self.partner_id)))
                .bearer_auth(&self.withdrawing),
            _ => return None,
        })
    }
}
