//! The audit log: one record per authentication event, with when, who (if
//! known), which session, from which address and how it ended. Never a
//! password, a token or a hash: only ids a database reader could see anyway.
//!
//! Each event is stored (its own write, after the event's own) and emitted
//! as a structured `tracing` event with target `latchkey::audit`, so it can
//! be shipped with the logs or read back with `latchkey audit`.

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
    /// A client introspected a token: `success` if it was told the token is
    /// active, `failure` otherwise. User and session are set only when the
    /// token was one the client may be told about.
    Introspect,
}

impl AuditKind {
    pub const ALL: [AuditKind; 9] = [
        AuditKind::SignUp,
        AuditKind::SignIn,
        AuditKind::Refresh,
        AuditKind::ReuseDetected,
        AuditKind::Revoke,
        AuditKind::SignOut,
        AuditKind::PasswordChange,
        AuditKind::Lockout,
        AuditKind::Introspect,
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
            AuditKind::Introspect => "introspect",
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
            "audit"
        );
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
}
