//! The PostgreSQL connection string as a setting: held as a secret, shown
//! with its passwords redacted.

use latchkey_core::secret::{Secret, REDACTED};
use serde::Deserialize;

/// A PostgreSQL connection string (`postgres://` URL or libpq key-value
/// form). The whole of it is held as a secret; its `Debug` (and so
/// `check-config`) shows it with the password replaced by `[redacted]`,
/// keeping user, host and database visible for operators.
#[derive(Clone)]
pub struct DatabaseUrl(Secret);

impl DatabaseUrl {
    /// For clap: any string is accepted here; the store parses it.
    pub fn parse_arg(s: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self::from(s))
    }

    /// The full string, password included: only for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The string with every password in it replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        redact_database_url(self.expose())
    }
}

impl From<&str> for DatabaseUrl {
    fn from(s: &str) -> Self {
        Self(Secret::from(s))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Secret::deserialize(d).map(Self)
    }
}

/// Redacts the passwords the PostgreSQL driver would read: in a URL the
/// part of the user info after the first `:` (the user info ends at the
/// first `@`, as the driver reads it) and any `password` query parameter;
/// in the key-value form the value of every `password` key. When in doubt
/// it redacts more: a query key with a `%` escape could spell `password`.
fn redact_database_url(url: &str) -> String {
    let Some(rest) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
    else {
        return redact_key_value_password(url);
    };
    let mut out = url[..url.len() - rest.len()].to_owned();
    let after_user_info = match rest.split_once('@') {
        Some((user_info, after)) => {
            match user_info.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(user_info),
            }
            out.push('@');
            after
        }
        None => rest,
    };
    let Some((head, query)) = after_user_info.split_once('?') else {
        out.push_str(after_user_info);
        return out;
    };
    out.push_str(head);
    out.push('?');
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if key == "password" || key.contains('%') => {
                format!("{key}={REDACTED}")
            }
            _ => param.to_owned(),
        })
        .collect();
    out.push_str(&params.join("&"));
    out
}

/// `host=db password='s e\'cret' user=me`: each value after a `password`
/// key, quoted (to its closing unescaped quote) or not (to the next
/// unescaped space), becomes `[redacted]`.
fn redact_key_value_password(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("password") {
        out.push_str(&rest[..at + "password".len()]);
        rest = &rest[at + "password".len()..];
        let after_key = rest.trim_start();
        let Some(value) = after_key.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        out.push_str(&rest[..rest.len() - value.len()]);
        out.push_str(REDACTED);
        let quoted = value.starts_with('\'');
        let mut chars = value.char_indices().skip(usize::from(quoted));
        let mut end = value.len();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next();
            } else if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                end = if quoted { i + 1 } else { i };
                break;
            }
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_debug_redacts_only_the_password() {
        let cases = [
            (
                "postgres://latchkey:s3cr%40t@db.internal:5432/auth",
                "postgres://latchkey:[redacted]@db.internal:5432/auth",
            ),
            (
                "postgresql://me:pw@h1,h2/db?sslmode=disable&password=pw2",
                "postgresql://me:[redacted]@h1,h2/db?sslmode=disable&password=[redacted]",
            ),
            (
                "postgres://me@host/db?pass%77ord=pw",
                "postgres://me@host/db?pass%77ord=[redacted]",
            ),
            ("postgres://host/db", "postgres://host/db"),
            (
                "host=db user=me password = 'p w\\'x' dbname=auth",
                "host=db user=me password = [redacted] dbname=auth",
            ),
            ("password=pw host=db", "password=[redacted] host=db"),
        ];
        for (url, shown) in cases {
            let url = DatabaseUrl::from(url);
            assert_eq!(url.redacted(), shown);
            assert_eq!(format!("{url:?}"), format!("{shown:?}"));
        }
    }
}
