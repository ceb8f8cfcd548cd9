//! `application/x-www-form-urlencoded` bodies of the OAuth endpoints.
//! Repeated parameters are an error (RFC 6749 §3.2); empty ones count as
//! absent (§3.1).

use std::collections::HashMap;

/// What is wrong with a form body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("parameter {0} is repeated")]
    Repeated(String),
    #[error("missing parameter {0}")]
    Missing(String),
}

/// The parameters of a form body, each at most once. Values carry client
/// secrets, refresh tokens and passwords, so `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form(HashMap<String, String>);

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_tuple("Form").field(&names).finish()
    }
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(FormError::Repeated(name.into_owned()));
            }
        }
        Ok(Form(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, FormError> {
        self.get(name)
            .ok_or_else(|| FormError::Missing(name.to_owned()))
    }

    /// Every parameter, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_repeats_are_refused() {
        let form =
            Form::parse(b"grant_type=refresh_token&scope=&refresh_token=a%2Bb+c").expect("parses");
        assert_eq!(form.get("refresh_token"), Some("a+b c"));
        assert_eq!(form.get("scope"), None);
        assert_eq!(
            form.require("token"),
            Err(FormError::Missing("token".into()))
        );
        assert_eq!(
            Form::parse(b"token=a&token=b"),
            Err(FormError::Repeated("token".into()))
        );
        // An empty repeat is no repeat: empty means absent.
        assert!(Form::parse(b"token=a&token=").is_ok());
    }

    #[test]
    fn debug_names_the_parameters_and_never_shows_a_value() {
        let form = Form::parse(b"grant_type=client_credentials&client_secret=planted-s3cret")
            .expect("parses");
        let shown = format!("{form:?}");
        assert_eq!(shown, r#"Form(["client_secret", "grant_type"])"#);
        assert!(!shown.contains("planted-s3cret"));
    }
}
