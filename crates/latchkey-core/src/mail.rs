//! The mails Latchkey sends (password-reset and email-verification links):
//! their templates, how they are filled in, and how often one account may
//! be sent one. Sending is the server's (its mail worker reads the outbox);
//! this module has no network in it.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::clock::UnixTime;

/// A message's plain-text and HTML bodies with `{{link}}`, `{{username}}`
/// and `{{expires_in_minutes}}` in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplate {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Every template, the embedded defaults unless the operator put their
/// own beside the configuration file (the server loads those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplates {
    pub password_reset: MailTemplate,
    pub verify_email: MailTemplate,
}

impl Default for MailTemplates {
    fn default() -> Self {
        Self {
            password_reset: MailTemplate {
                subject: "Reset your password".to_owned(),
                text: include_str!("mail/password-reset.txt").to_owned(),
                html: include_str!("mail/password-reset.html").to_owned(),
            },
            verify_email: MailTemplate {
                subject: "Confirm your email address".to_owned(),
                text: include_str!("mail/verify-email.txt").to_owned(),
                html: include_str!("mail/verify-email.html").to_owned(),
            },
        }
    }
}

/// What is filled into a template.
pub struct MailValues<'a> {
    pub link: &'a str,
    pub username: &'a str,
    pub expires_in_minutes: i64,
}

impl MailTemplate {
    /// The plain-text and HTML bodies with `values` filled in (HTML-escaped
    /// in the HTML one). One pass over the template: a value that itself
    /// contains `{{...}}` is not expanded again.
    pub fn render(&self, values: &MailValues<'_>) -> (String, String) {
        (
            fill(&self.text, values, false),
            fill(&self.html, values, true),
        )
    }
}

fn fill(template: &str, values: &MailValues<'_>, html: bool) -> String {
    let minutes = values.expires_in_minutes.to_string();
    let mut out = String::with_capacity(template.len() + values.link.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let value = match after[..end].trim() {
            "link" => Some(values.link),
            "username" => Some(values.username),
            "expires_in_minutes" => Some(minutes.as_str()),
            _ => None,
        };
        match value {
            Some(v) if html => out.push_str(&escape_html(v)),
            Some(v) => out.push_str(v),
            // Unknown names stay as written, so a typo shows in the mail.
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `&`, `<`, `>`, `"` and `'` as character references: safe in HTML text
/// and quoted attribute values (the mails' and the hosted pages').
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// At most one mail per account a minute and [`MAILS_PER_HOUR`] an hour,
/// so nobody can make us flood someone's mailbox. Kept in each node's
/// memory (like the per-address rate limits): N nodes allow up to N times
/// as many, which still bounds the flood.
pub const MAILS_PER_HOUR: usize = 5;
const MIN_GAP_SECONDS: i64 = 60;
const HOUR: i64 = 3600;
/// Accounts tracked at most; when full, those with nothing in the last
/// hour are forgotten, and if none are, no mail is allowed (fail closed).
const MAX_TRACKED_ACCOUNTS: usize = 100_000;

#[derive(Default)]
pub struct MailAllowance {
    sent: Mutex<HashMap<Uuid, Vec<UnixTime>>>,
}

impl MailAllowance {
    /// Takes one mail's allowance for `user_id` at `now`; `Err(seconds)` to
    /// wait when there is none.
    pub fn take(&self, user_id: Uuid, now: UnixTime) -> Result<(), i64> {
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sent.len() >= MAX_TRACKED_ACCOUNTS && !sent.contains_key(&user_id) {
            sent.retain(|_, times| times.iter().any(|&t| t > now - HOUR));
            if sent.len() >= MAX_TRACKED_ACCOUNTS {
                return Err(MIN_GAP_SECONDS);
            }
        }
        let times = sent.entry(user_id).or_default();
        times.retain(|&t| t > now - HOUR);
        if let Some(&last) = times.last() {
            if now - last < MIN_GAP_SECONDS {
                return Err(MIN_GAP_SECONDS - (now - last));
            }
        }
        if times.len() >= MAILS_PER_HOUR {
            let oldest = times.first().copied().unwrap_or(now);
            return Err((oldest + HOUR - now).max(1));
        }
        times.push(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_filled_once_and_escaped_in_html() {
        let t = MailTemplate {
            subject: "s".into(),
            text: "Hi {{username}}: {{ link }} ({{expires_in_minutes}} min) {{other}} {{".into(),
            html: "<b>{{username}}</b> <a href=\"{{link}}\">x</a>".into(),
        };
        let (text, html) = t.render(&MailValues {
            link: "https://x.example/r?token=a&b={{username}}",
            username: "<Zoë & \"co\">",
            expires_in_minutes: 30,
        });
        assert_eq!(
            text,
            "Hi <Zoë & \"co\">: https://x.example/r?token=a&b={{username}} (30 min) {{other}} {{"
        );
        assert_eq!(
            html,
            "<b>&lt;Zoë &amp; &quot;co&quot;&gt;</b> \
             <a href=\"https://x.example/r?token=a&amp;b={{username}}\">x</a>"
        );
    }

    #[test]
    fn the_default_templates_name_every_value() {
        let d = MailTemplates::default();
        for t in [&d.password_reset, &d.verify_email] {
            for body in [&t.text, &t.html] {
                for name in ["{{link}}", "{{username}}", "{{expires_in_minutes}}"] {
                    assert!(body.contains(name), "{name} in {body}");
                }
            }
        }
    }

    #[test]
    fn one_mail_a_minute_and_five_an_hour_per_account() {
        let allowance = MailAllowance::default();
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = 1_700_000_000;
        assert_eq!(allowance.take(ann, t0), Ok(()));
        assert_eq!(allowance.take(ann, t0 + 10), Err(50));
        assert_eq!(allowance.take(bob, t0 + 10), Ok(()), "accounts are apart");
        for i in 1..5 {
            assert_eq!(allowance.take(ann, t0 + 60 * i), Ok(()));
        }
        assert_eq!(allowance.take(ann, t0 + 600), Err(HOUR - 600));
        assert_eq!(allowance.take(ann, t0 + HOUR + 1), Ok(()));
    }
}
