//! The mail outbox: requests only put messages (and password-reset
//! requests) in it, and the server's mail worker, one per node, takes them
//! out through the steps here: claim a batch as a lease, then per message
//! sent (deleted: its bodies hold a secret link), failed (tried again with
//! exponential backoff, given up after [`MAX_MAIL_ATTEMPTS`] or a day), or,
//! for a reset request, answered (see `recovery`).

use uuid::Uuid;

use super::Authority;
use crate::mail::{MailTemplate, MailValues};
use crate::metrics;
use crate::model::{OutboxKind, OutboxMessage};
use crate::AuthError;

/// How long a claimed message is the claimer's alone: longer than one SMTP
/// exchange may take, so a live worker never loses its claim; a dead one's
/// messages are due again after it.
pub const OUTBOX_LEASE_SECONDS: i64 = 120;
/// Messages one claim takes at most.
const OUTBOX_BATCH: usize = 16;
/// Attempts before a message is given up...
pub const MAX_MAIL_ATTEMPTS: u32 = 10;
/// ...or this long after it was queued, whichever comes first.
const GIVE_UP_AFTER_SECONDS: i64 = 24 * 3600;
/// Backoff after the n-th failure: 5 s · 2^(n−1), at most an hour.
const FIRST_RETRY_SECONDS: i64 = 5;
const MAX_RETRY_SECONDS: i64 = 3600;

impl Authority {
    /// Registers what to call when something is put in the outbox (the
    /// mail worker's wake-up); `false` if one was registered already.
    pub fn set_outbox_listener(&self, listener: Box<dyn Fn() + Send + Sync>) -> bool {
        self.outbox_listener.set(listener).is_ok()
    }

    pub(super) async fn enqueue(
        &self,
        kind: OutboxKind,
        recipient: &str,
        subject: &str,
        (text_body, html_body): (String, String),
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let message = OutboxMessage {
            id: Uuid::new_v4(),
            kind,
            recipient: recipient.to_owned(),
            subject: subject.to_owned(),
            text_body,
            html_body,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
        };
        self.store.enqueue_outbox(&message).await?;
        if let Some(wake) = self.outbox_listener.get() {
            wake();
        }
        Ok(())
    }

    /// Puts a mail from `template` to `to` in the outbox.
    pub(super) async fn enqueue_mail(
        &self,
        to: &str,
        template: &MailTemplate,
        values: &MailValues<'_>,
    ) -> Result<(), AuthError> {
        self.enqueue(
            OutboxKind::Mail,
            to,
            &template.subject,
            template.render(values),
        )
        .await
    }

    /// Claims a batch of the messages due now under a new claim (see
    /// [`OUTBOX_LEASE_SECONDS`]), which the worker passes back with each.
    pub async fn claim_outbox(&self) -> Result<(Uuid, Vec<OutboxMessage>), AuthError> {
        let claim = Uuid::new_v4();
        let now = self.clock.now();
        let batch = self
            .store
            .claim_outbox(claim, now, now + OUTBOX_LEASE_SECONDS, OUTBOX_BATCH)
            .await?;
        Ok((claim, batch))
    }

    /// The SMTP server took `message`: it goes from the outbox.
    pub async fn mail_sent(&self, message: &OutboxMessage, claim: Uuid) -> Result<(), AuthError> {
        metrics::mail_sent();
        if !self.store.delete_outbox(message.id, claim).await? {
            tracing::warn!(message_id = %message.id, "a sent mail's claim had lapsed; it may be sent twice");
        }
        Ok(())
    }

    /// Sending `message` failed (`reason` says how, without secrets): it is
    /// tried again later, or given up and deleted.
    pub async fn mail_failed(
        &self,
        message: &OutboxMessage,
        claim: Uuid,
        reason: &str,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let failures = message.attempts.saturating_add(1);
        let give_up = failures >= MAX_MAIL_ATTEMPTS
            || now.saturating_sub(message.created_at) >= GIVE_UP_AFTER_SECONDS;
        metrics::mail_failed(give_up);
        if give_up {
            tracing::warn!(message_id = %message.id, attempts = failures, %reason, "mail given up");
            self.store.delete_outbox(message.id, claim).await?;
            return Ok(());
        }
        let backoff = FIRST_RETRY_SECONDS
            .saturating_mul(1 << (failures - 1).min(20))
            .min(MAX_RETRY_SECONDS);
        tracing::info!(message_id = %message.id, attempts = failures, retry_in_seconds = backoff, %reason, "mail not sent; will retry");
        self.store
            .retry_outbox(message.id, claim, now.saturating_add(backoff))
            .await?;
        Ok(())
    }

    /// Answers a password-reset request from the outbox (mailing a link if
    /// the account has a verified address) and removes it.
    pub async fn answer_outbox_request(
        &self,
        message: &OutboxMessage,
        claim: Uuid,
    ) -> Result<(), AuthError> {
        if message.kind == OutboxKind::PasswordResetRequest {
            self.answer_reset_request(&message.recipient).await?;
        }
        self.store.delete_outbox(message.id, claim).await?;
        Ok(())
    }

    /// Messages and requests waiting, store-wide (a metrics gauge).
    pub async fn outbox_depth(&self) -> Result<u64, AuthError> {
        Ok(self.store.outbox_depth().await?)
    }
}
