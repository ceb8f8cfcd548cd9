//! Sending mail: the SMTP settings, the templates an operator may put
//! beside the configuration file, and the mail worker, one per node, that
//! empties the outbox in the store (requests only enqueue, so a slow or
//! down mail server never holds up or fails a request, and a restart loses
//! nothing). The worker wakes at once when this node enqueues and polls
//! every [`POLL_EVERY`] for what other nodes enqueued or what is due again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::mail::{MailTemplate, MailTemplates};
use latchkey_core::model::{OutboxKind, OutboxMessage};
use latchkey_core::secret::Secret;
use latchkey_core::service::OUTBOX_LEASE_SECONDS;
use latchkey_core::Authority;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::ConfigError;

pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the worker looks at the outbox when nothing woke it.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// How much of a claim's lease the worker uses before it stops starting
/// sends: half, so a send begun just before still ends within it.
const LEASE_USE: Duration = Duration::from_secs(OUTBOX_LEASE_SECONDS.unsigned_abs() / 2);

/// Where and as whom mail is sent.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `smtp://`, `smtp://…?tls=starttls` or `smtps://`, maybe with a user
    /// and password: a secret (its `Debug` is redacted; `check-config`
    /// shows it without the password).
    pub url: Secret,
    /// The `From` of every mail.
    pub from: String,
    /// Longest wait for the mail server (connect, each command).
    pub timeout: Duration,
}

/// lettre's URL form: `tls=starttls` is our name for its `tls=required`
/// (STARTTLS and nothing less).
fn lettre_url(url: &str) -> String {
    url.replace("tls=starttls", "tls=required")
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

fn transport(smtp: &SmtpSettings) -> Result<Transport, String> {
    let url = smtp.url.expose();
    if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
        return Err("smtp_url must start with smtp:// or smtps://".to_owned());
    }
    // lettre's message may quote the URL, password and all: not passed on.
    let builder = Transport::from_url(&lettre_url(url))
        .map_err(|_| "smtp_url is not a valid SMTP URL".to_owned())?;
    Ok(builder.timeout(Some(smtp.timeout)).build())
}

fn sender(smtp: &SmtpSettings) -> Result<Mailbox, String> {
    smtp.from.parse().map_err(|_| {
        "smtp_from must be a mail address, e.g. `Latchkey <noreply@example.com>`".to_owned()
    })
}

/// Checks the settings as the worker will use them.
pub fn validate(smtp: &SmtpSettings) -> Result<(), String> {
    transport(smtp)?;
    sender(smtp)?;
    if smtp.timeout.is_zero() {
        return Err("smtp_timeout must be at least 1 s".to_owned());
    }
    Ok(())
}

/// `url` with the password of its user info replaced, for display.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:[redacted]@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// The templates: each of `<config dir>/templates/{password-reset,
/// verify-email}.{txt,html}` that exists replaces the embedded default.
pub fn load_templates(config_dir: Option<&Path>) -> Result<MailTemplates, ConfigError> {
    let mut templates = MailTemplates::default();
    let Some(dir) = config_dir.map(|d| d.join("templates")) else {
        return Ok(templates);
    };
    let load = |template: &mut MailTemplate, name: &str| -> Result<(), ConfigError> {
        for (ext, body) in [("txt", &mut template.text), ("html", &mut template.html)] {
            let path = dir.join(format!("{name}.{ext}"));
            match std::fs::read_to_string(&path) {
                Ok(text) => *body = text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ConfigError::Read { path, source }),
            }
        }
        Ok(())
    };
    load(&mut templates.password_reset, "password-reset")?;
    load(&mut templates.verify_email, "verify-email")?;
    Ok(templates)
}

/// Starts this node's mail worker.
pub fn spawn_worker(auth: Arc<Authority>, smtp: &SmtpSettings) -> Result<JoinHandle<()>, String> {
    let transport = transport(smtp)?;
    let from = sender(smtp)?;
    let wake = Arc::new(Notify::new());
    let signal = wake.clone();
    auth.set_outbox_listener(Box::new(move || signal.notify_one()));
    tracing::info!(smtp = %redacted_url(smtp.url.expose()), "mail worker started");
    Ok(tokio::spawn(async move {
        loop {
            let worked = deliver_due(&auth, &transport, &from).await;
            if !worked {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                }
            }
        }
    }))
}

/// Claims what is due and works through it; whether there was any.
async fn deliver_due(auth: &Authority, transport: &Transport, from: &Mailbox) -> bool {
    let (claim, batch) = match auth.claim_outbox().await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "reading the mail outbox failed");
            return false;
        }
    };
    let worked = !batch.is_empty();
    let claimed_at = Instant::now();
    for message in batch {
        // A slow mail server must not keep us sending past our lease, when
        // another worker may claim the rest: those wait for it to lapse.
        if claimed_at.elapsed() > LEASE_USE {
            tracing::info!("mail server slow: the rest of the batch waits for its lease to lapse");
            break;
        }
        let result = match message.kind {
            OutboxKind::PasswordResetRequest => auth
                .answer_outbox_request(&message, claim)
                .await
                .map_err(|e| e.to_string()),
            OutboxKind::Mail => match send(transport, from, &message).await {
                Ok(()) => auth
                    .mail_sent(&message, claim)
                    .await
                    .map_err(|e| e.to_string()),
                Err(reason) => Err(reason),
            },
        };
        if let Err(reason) = result {
            if let Err(e) = auth.mail_failed(&message, claim, &reason).await {
                tracing::warn!(error = %e, message_id = %message.id, "recording a mail failure failed");
            }
        }
    }
    worked
}

async fn send(transport: &Transport, from: &Mailbox, m: &OutboxMessage) -> Result<(), String> {
    let to: Mailbox = m
        .recipient
        .parse()
        .map_err(|_| "the recipient is not a mail address".to_owned())?;
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(m.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            m.text_body.clone(),
            m.html_body.clone(),
        ))
        .map_err(|e| format!("building the message: {e}"))?;
    transport
        .send(message)
        .await
        .map(drop)
        .map_err(|e| format!("SMTP: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        assert_eq!(
            redacted_url("smtps://mailer:s3cret@smtp.example.com:465?x=1"),
            "smtps://mailer:[redacted]@smtp.example.com:465?x=1"
        );
        assert_eq!(redacted_url("smtp://127.0.0.1:25"), "smtp://127.0.0.1:25");
        assert_eq!(redacted_url("nonsense"), "[redacted]");
    }

    #[test]
    fn templates_beside_the_config_file_replace_the_defaults_one_by_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let templates = dir.path().join("templates");
        std::fs::create_dir(&templates).expect("mkdir");
        std::fs::write(templates.join("password-reset.txt"), "Reset: {{link}}").expect("write");
        std::fs::write(templates.join("verify-email.html"), "<p>{{username}}</p>").expect("write");
        let loaded = load_templates(Some(dir.path())).expect("load");
        let defaults = MailTemplates::default();
        assert_eq!(loaded.password_reset.text, "Reset: {{link}}");
        assert_eq!(loaded.password_reset.html, defaults.password_reset.html);
        assert_eq!(loaded.verify_email.html, "<p>{{username}}</p>");
        assert_eq!(loaded.verify_email.text, defaults.verify_email.text);
        assert_eq!(load_templates(None).expect("defaults"), defaults);
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            load_templates(Some(empty.path())).expect("none there"),
            defaults
        );
    }

    #[test]
    fn settings_are_checked_as_used() {
        let smtp = |url: &str, from: &str| SmtpSettings {
            url: Secret::from(url),
            from: from.to_owned(),
            timeout: DEFAULT_SMTP_TIMEOUT,
        };
        assert!(validate(&smtp("smtp://127.0.0.1:2525", "a@example.com")).is_ok());
        assert!(validate(&smtp("smtp://h:587?tls=starttls", "L <a@example.com>")).is_ok());
        assert!(validate(&smtp("smtps://u:p@h", "a@example.com")).is_ok());
        assert!(validate(&smtp("http://h", "a@example.com")).is_err());
        assert!(validate(&smtp("smtp://h", "not an address")).is_err());
        let err = validate(&smtp("smtp://u:pw-secret@h?tls=bogus", "a@example.com"))
            .expect_err("bad tls");
        assert!(!err.contains("pw-secret"));
    }
}
