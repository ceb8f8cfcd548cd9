//! The audit log: one record per authentication event, with when, who (if
//! known), which session, from which address and how it ended. Never a
//! password, a token or a hash: only ids a database reader could see anyway.
//!
//! Each event is stored (its own write, after the event's own) and emitted
//! as a structured `tracing` event with target `latchkey::audit`, so it can
//! be shipped with the logs or read back with `latchkey audit`.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::clock::UnixTime;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    SignUp,
    SignIn,
    Refresh,
    /// A rotated refresh token was presented again: the session was revoked.
    ReuseDetected,
    /// A refresh token (its session) or an access token was revoked.
    Revoke,
    /// The caller ended a session (sign-out or `DELETE /v1/sessions/{id}`).
    SignOut,
    PasswordChange,
    /// A failed sign-in used up an allowance: the account (`user_id` set if
    /// it exists) or the address is blocked. Its outcome is `throttled`.
    Lockout,
    /// A sign-in went over `max_sessions_per_user`: the least recently used
    /// session (`session_id`) was ended.
    SessionEvicted,
    /// A client introspected a token: `success` if it was told the token is
    /// active, `failure` otherwise. User and session are set only when the
    /// token was one the client may be told about.
    Introspect,
    /// An operator created an account (`user_id`); `actor` says who.
    AdminUserCreated,
    /// An operator changed an account's roles or email.
    AdminUserUpdated,
    /// An operator disabled an account: its sessions ended with it.
    AdminUserDisabled,
    AdminUserEnabled,
    /// An operator deleted an account; the record keeps its id.
    AdminUserDeleted,
    /// An operator ended every session of an account.
    AdminSessionsEnded,
    /// An operator issued a password-reset link for an account.
    AdminResetLink,
    /// An operator issued an invite code (no user yet).
    AdminInviteCreated,
    /// A password was set with a reset link's token: every session ended.
    PasswordReset,
    /// An account's owner set a new email address (unverified).
    EmailChanged,
    /// An address was proved with a verification link's token.
    EmailVerified,
    /// An authorization code was exchanged for tokens (`success`: its
    /// session opened) or refused (`failure`).
    CodeExchange,
    /// An authorization code was presented a second time: the session its
    /// first use opened was ended (RFC 6749 §4.1.2).
    CodeReuse,
    /// A user consented to a third-party client's scopes.
    ConsentGranted,
    /// A user withdrew a client's consent; its sessions ended with it.
    ConsentWithdrawn,
}

impl AuditKind {
    pub const ALL: [AuditKind; 25] = [
        AuditKind::SignUp,
        AuditKind::SignIn,
        AuditKind::Refresh,
        AuditKind::ReuseDetected,
        AuditKind::Revoke,
        AuditKind::SignOut,
        AuditKind::PasswordChange,
        AuditKind::Lockout,
        AuditKind::SessionEvicted,
        AuditKind::Introspect,
        AuditKind::AdminUserCreated,
        AuditKind::AdminUserUpdated,
        AuditKind::AdminUserDisabled,
        AuditKind::AdminUserEnabled,
        AuditKind::AdminUserDeleted,
        AuditKind::AdminSessionsEnded,
        AuditKind::AdminResetLink,
        AuditKind::AdminInviteCreated,
        AuditKind::PasswordReset,
        AuditKind::EmailChanged,
        AuditKind::EmailVerified,
        AuditKind::CodeExchange,
        AuditKind::CodeReuse,
        AuditKind::ConsentGranted,
        AuditKind::ConsentWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::SignUp => "sign_up",
            AuditKind::SignIn => "sign_in",
            AuditKind::Refresh => "refresh",
            AuditKind::ReuseDetected => "reuse_detected",
            AuditKind::Revoke => "revoke",
            AuditKind::SignOut => "sign_out",
            AuditKind::PasswordChange => "password_change",
            AuditKind::Lockout => "lockout",
            AuditKind::SessionEvicted => "session_evicted",
            AuditKind::Introspect => "introspect",
            AuditKind::AdminUserCreated => "admin_user_created",
            AuditKind::AdminUserUpdated => "admin_user_updated",
            AuditKind::AdminUserDisabled => "admin_user_disabled",
            AuditKind::AdminUserEnabled => "admin_user_enabled",
            AuditKind::AdminUserDeleted => "admin_user_deleted",
            AuditKind::AdminSessionsEnded => "admin_sessions_ended",
            AuditKind::AdminResetLink => "admin_reset_link",
            AuditKind::AdminInviteCreated => "admin_invite_created",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::EmailChanged => "email_changed",
            AuditKind::EmailVerified => "email_verified",
            AuditKind::CodeExchange => "code_exchange",
            AuditKind::CodeReuse => "code_reuse",
            AuditKind::ConsentGranted => "consent_granted",
            AuditKind::ConsentWithdrawn => "consent_withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    /// Refused by sign-in throttling without checking the password.
    Throttled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Throttled => "throttled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Outcome::Success, Outcome::Failure, Outcome::Throttled]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: UnixTime,
    pub kind: AuditKind,
    pub outcome: Outcome,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// The client's address, as the server saw it.
    pub ip: Option<String>,
    /// How many such events the record stands for: 1, except for throttled
    /// attempts, which are recorded one row per address and minute so a
    /// flood cannot flood the log.
    pub count: u32,
    /// The `x-request-id` of the request it came from, to find the
    /// request's log lines; `None` for aggregated rows and older records.
    pub request_id: Option<String>,
    /// Who acted, for operator actions: `client:<client_id>` through the
    /// administration API, `cli` for the command line; `None` for a
    /// user's own actions.
    pub actor: Option<String>,
}

impl AuditEvent {
    /// The `latchkey::audit` tracing line.
    pub fn emit(&self) {
        tracing::info!(
            target: "latchkey::audit",
            at = self.at,
            kind = self.kind.as_str(),
            outcome = self.outcome.as_str(),
            user_id = self.user_id.map(|u| u.to_string()),
            session_id = self.session_id.map(|u| u.to_string()),
            ip = self.ip.as_deref(),
            count = self.count,
            request_id = self.request_id.as_deref(),
            actor = self.actor.as_deref(),
            "audit"
        );
    }
}

/// Most addresses one tally tells apart; attempts from further addresses
/// are counted together, under no address, so memory stays bounded.
const MAX_TALLIED_ADDRESSES: usize = 10_000;

/// Throttled attempts per address between two flushes, so a flood of them
/// costs one audit row per address and minute instead of one each.
#[derive(Debug, Default)]
pub struct AttemptTally {
    counts: Mutex<HashMap<Option<String>, u32>>,
}

impl AttemptTally {
    pub fn note(&self, ip: Option<&str>) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = ip.map(str::to_owned).filter(|ip| {
            counts.len() < MAX_TALLIED_ADDRESSES || counts.contains_key(&Some(ip.clone()))
        });
        let count = counts.entry(key).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// The counts so far, leaving the tally empty.
    pub fn take(&self) -> Vec<(Option<String>, u32)> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *counts).into_iter().collect()
    }
}

/// Which events `Store::audit_events` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery {
    pub user_id: Option<Uuid>,
    /// Events at or after this time.
    pub since: Option<UnixTime>,
    /// The newest this many (returned oldest first).
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
        }
        for o in [Outcome::Success, Outcome::Failure, Outcome::Throttled] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }

    #[test]
    fn tally_counts_per_address_within_a_bound() {
        let tally = AttemptTally::default();
        for _ in 0..3 {
            tally.note(Some("10.0.0.1"));
        }
        tally.note(None);
        let mut counts = tally.take();
        counts.sort();
        assert_eq!(counts, vec![(None, 1), (Some("10.0.0.1".into()), 3)]);
        assert!(tally.take().is_empty());
        for i in 0..(MAX_TALLIED_ADDRESSES + 50) {
            tally.note(Some(&format!("ip{i}")));
        }
        let counts = tally.take();
        assert!(counts.len() <= MAX_TALLIED_ADDRESSES + 1);
        assert_eq!(
            counts.iter().map(|(_, n)| *n as usize).sum::<usize>(),
            MAX_TALLIED_ADDRESSES + 50
        );
    }
}
