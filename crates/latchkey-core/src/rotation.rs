//! The refresh-token rotation state machine: given a session's state and the
//! counter a client presented, what happens. Pure, so it can be tested
//! exhaustively; the service applies the decision with a compare-and-set.

use crate::clock::UnixTime;
use crate::model::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRules {
    /// How long after a rotation the previous token still yields the current
    /// one (parallel tabs refreshing at once).
    pub grace_seconds: i64,
    /// A session not refreshed for this long is over.
    pub idle_timeout_seconds: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The presented token is current: rotate from this counter.
    Rotate { from: u64 },
    /// The presented token was rotated moments ago: answer with the current
    /// token, change nothing.
    ReissueCurrent,
    /// An old token came back: somebody holds a copy. End the session.
    Reuse,
    /// Expired (idle or absolute) or already revoked: refuse, change nothing.
    Refuse(RefuseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    Revoked,
    IdleExpired,
    AbsoluteExpired,
    /// A counter ahead of the session's: cannot be minted without the secret.
    FutureCounter,
}

/// What rotating a presented token requires of the session as stored: the
/// presenting client's own session on which [`decide`] says `Rotate`. A
/// store that reads and advances in one step (one round trip) applies it
/// beside its read, as: counter equal to `counter`, not revoked,
/// `expires_at > now`, `last_refreshed_at > idle_cutoff()`, `client_id`
/// equal to `client_id`; [`RotationGuard::admits`] is the same rule in Rust.
#[derive(Debug, Clone)]
pub struct RotationGuard {
    pub counter: u64,
    pub client_id: String,
    pub now: UnixTime,
    pub rules: RefreshRules,
}

impl RotationGuard {
    /// `last_refreshed_at` must be after this for the session not to be idle.
    pub fn idle_cutoff(&self) -> UnixTime {
        self.now.saturating_sub(self.rules.idle_timeout_seconds)
    }

    pub fn admits(&self, session: &Session) -> bool {
        session.client_id == self.client_id
            && decide(session, self.counter, self.now, &self.rules)
                == RefreshDecision::Rotate { from: self.counter }
    }
}

pub fn decide(
    session: &Session,
    presented: u64,
    now: UnixTime,
    rules: &RefreshRules,
) -> RefreshDecision {
    use RefreshDecision::*;
    if session.revoked_at.is_some() {
        return Refuse(RefuseReason::Revoked);
    }
    if now >= session.expires_at {
        return Refuse(RefuseReason::AbsoluteExpired);
    }
    let current = session.counter;
    if presented > current {
        return Refuse(RefuseReason::FutureCounter);
    }
    if presented == current {
        if now
            >= session
                .last_refreshed_at
                .saturating_add(rules.idle_timeout_seconds)
        {
            return Refuse(RefuseReason::IdleExpired);
        }
        return Rotate { from: current };
    }
    let within_grace = now
        < session
            .last_refreshed_at
            .saturating_add(rules.grace_seconds);
    if presented + 1 == current && within_grace {
        ReissueCurrent
    } else {
        Reuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    const RULES: RefreshRules = RefreshRules {
        grace_seconds: 10,
        idle_timeout_seconds: 1000,
    };

    fn session(counter: u64, last: UnixTime) -> Session {
        Session {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            client_id: "default".into(),
            audience: "latchkey".into(),
            scope: String::new(),
            counter,
            created_at: 0,
            last_refreshed_at: last,
            expires_at: 10_000,
            user_agent: None,
            ip: None,
            revoked_at: None,
            revoke_reason: None,
        }
    }

    #[test]
    fn current_token_rotates() {
        assert_eq!(
            decide(&session(3, 100), 3, 105, &RULES),
            RefreshDecision::Rotate { from: 3 }
        );
    }

    #[test]
    fn previous_token_inside_grace_gets_current() {
        assert_eq!(
            decide(&session(3, 100), 2, 109, &RULES),
            RefreshDecision::ReissueCurrent
        );
    }

    #[test]
    fn previous_token_after_grace_is_reuse() {
        assert_eq!(
            decide(&session(3, 100), 2, 110, &RULES),
            RefreshDecision::Reuse
        );
    }

    #[test]
    fn older_token_is_reuse_even_inside_grace() {
        assert_eq!(
            decide(&session(3, 100), 1, 101, &RULES),
            RefreshDecision::Reuse
        );
    }

    #[test]
    fn first_token_of_a_fresh_session_has_no_predecessor() {
        assert_eq!(
            decide(&session(0, 100), 0, 100, &RULES),
            RefreshDecision::Rotate { from: 0 }
        );
    }

    #[test]
    fn expiry_and_revocation_refuse() {
        let s = session(3, 100);
        assert_eq!(
            decide(&s, 3, 1100, &RULES),
            RefreshDecision::Refuse(RefuseReason::IdleExpired)
        );
        assert_eq!(
            decide(&s, 3, 10_000, &RULES),
            RefreshDecision::Refuse(RefuseReason::AbsoluteExpired)
        );
        assert_eq!(
            decide(&s, 4, 101, &RULES),
            RefreshDecision::Refuse(RefuseReason::FutureCounter)
        );
        let mut revoked = s.clone();
        revoked.revoked_at = Some(100);
        assert_eq!(
            decide(&revoked, 3, 101, &RULES),
            RefreshDecision::Refuse(RefuseReason::Revoked)
        );
    }

    /// A model of a session driven by arbitrary refresh attempts, applying
    /// each decision as the service does. Checks the invariants the whole
    /// design rests on.
    #[derive(Debug, Clone)]
    enum Step {
        Wait(i64),
        Present(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0i64..30).prop_map(Step::Wait),
            (0u64..8).prop_map(Step::Present),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_for_any_sequence(steps in proptest::collection::vec(step(), 1..60)) {
            let mut s = session(0, 0);
            let mut now = 0;
            for st in steps {
                match st {
                    Step::Wait(d) => now += d,
                    Step::Present(c) => {
                        let before = s.clone();
                        match decide(&s, c, now, &RULES) {
                            RefreshDecision::Rotate { from } => {
                                // Only the current token rotates, only forward by one.
                                prop_assert_eq!(from, before.counter);
                                prop_assert_eq!(c, before.counter);
                                prop_assert!(before.revoked_at.is_none());
                                s.counter += 1;
                                s.last_refreshed_at = now;
                            }
                            RefreshDecision::ReissueCurrent => {
                                prop_assert_eq!(c + 1, before.counter);
                                prop_assert!(now - before.last_refreshed_at < RULES.grace_seconds);
                            }
                            RefreshDecision::Reuse => {
                                prop_assert!(c < before.counter);
                                s.revoked_at = Some(now);
                            }
                            RefreshDecision::Refuse(_) => {}
                        }
                        // A revoked session never comes back.
                        if before.revoked_at.is_some() {
                            prop_assert!(s.revoked_at.is_some());
                            prop_assert_eq!(s.counter, before.counter);
                        }
                    }
                }
            }
        }

        /// The guard's statement of the rule, as the stores write it in
        /// SQL, agrees with `decide` everywhere.
        #[test]
        fn the_guards_sql_form_is_decides_rotate(
            counter in 0u64..4,
            presented in 0u64..4,
            revoked in proptest::bool::ANY,
            own_client in proptest::bool::ANY,
            last in 0i64..3000,
            expires in 0i64..3000,
            now in 0i64..3000,
        ) {
            let mut s = session(counter, last);
            s.expires_at = expires;
            s.revoked_at = revoked.then_some(last);
            let guard = RotationGuard {
                counter: presented,
                client_id: if own_client { s.client_id.clone() } else { "other".into() },
                now,
                rules: RULES,
            };
            let sql_form = s.counter == guard.counter
                && s.revoked_at.is_none()
                && s.expires_at > guard.now
                && s.last_refreshed_at > guard.idle_cutoff()
                && s.client_id == guard.client_id;
            prop_assert_eq!(sql_form, guard.admits(&s));
        }

        #[test]
        fn tokens_older_than_previous_never_work(current in 2u64..1000, back in 2u64..1000, dt in 0i64..20) {
            prop_assume!(back <= current);
            let s = session(current, 100);
            prop_assert_eq!(decide(&s, current - back, 100 + dt, &RULES), RefreshDecision::Reuse);
        }
    }
}
