//! The HTTP calls the tests make, and what they read from the answers.

use std::time::Duration;

use serde_json::{json, Value};

/// The password of the accounts [`account`] makes.
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl From<Value> for Tokens {
    fn from(v: Value) -> Self {
        Self {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

/// Asserts the standard error shape and returns the error code.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.expect("error body is JSON");
    assert!(
        v["error_description"].is_string(),
        "no error_description in {v}"
    );
    v["error"].as_str().expect("error code").to_owned()
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client")
}

/// Status and JSON body (`null` if none); `Err` for transport failures.
pub async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let r = req.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

pub async fn post(
    http: &reqwest::Client,
    url: String,
    body: Value,
) -> Result<(u16, Value), String> {
    send(http.post(url).json(&body)).await
}

pub async fn refresh(http: &reqwest::Client, base: &str, rt: &str) -> Result<(u16, Value), String> {
    post(
        http,
        format!("{base}/v1/tokens/refresh"),
        json!({ "refresh_token": rt }),
    )
    .await
}

pub async fn me(http: &reqwest::Client, base: &str, at: &str) -> Result<(u16, Value), String> {
    send(http.get(format!("{base}/v1/me")).bearer_auth(at)).await
}

pub async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    user: &str,
) -> Result<(u16, Value), String> {
    post(
        http,
        format!("{base}/v1/sign-in"),
        json!({ "username": user, "password": PASSWORD }),
    )
    .await
}

/// Signs `user` up on `base` and in; returns (access, refresh).
pub async fn account(http: &reqwest::Client, base: &str, user: &str) -> (String, String) {
    let r = post(
        http,
        format!("{base}/v1/sign-up"),
        json!({ "username": user, "password": PASSWORD }),
    )
    .await
    .expect("sign-up");
    assert_eq!(r.0, 201, "sign-up of {user}: {}", r.1);
    let (status, t) = sign_in(http, base, user).await.expect("sign-in");
    assert_eq!(status, 200, "sign-in of {user}: {t}");
    (token(&t, "access_token"), token(&t, "refresh_token"))
}

pub fn token(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
