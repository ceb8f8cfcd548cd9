//! Administration: what an operator does to accounts, through the
//! administration API (`/admin/v1`, as a client with `latchkey:admin`) or
//! the `latchkey users` command line. Both call these methods, each with
//! the acting party (`client:<id>` or `cli`) recorded in its audit event.
//!
//! Disabling and deleting an account end its sessions through the same
//! store step as sign-out everywhere, which records a `sid` revocation
//! entry per session: this node's set learns them at once, other nodes and
//! the feed within the upkeep interval.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::SecretString;
use uuid::Uuid;

use super::{Authority, Origin, SessionView};
use crate::access_token::AccessClaims;
use crate::account_token;
use crate::audit::{AuditKind, Outcome};
use crate::clock::UnixTime;
use crate::email::Email;
use crate::model::{User, UserQuery};
use crate::password::Password;
use crate::store::UserUpdate;
use crate::throttle;
use crate::username::{search_key, Username, MAX_USERNAME_BYTES};
use crate::AuthError;

/// The link an account created without a password is sent to choose one
/// works this long (longer than a reset link: the person may not be
/// waiting for it).
pub const SET_PASSWORD_LINK_SECONDS: i64 = 7 * 24 * 3600;
/// The scope a client's token needs for the administration API.
pub const ADMIN_SCOPE: &str = "latchkey:admin";
/// The actor of the command line's actions in the audit log.
pub const CLI_ACTOR: &str = "cli";

/// Accounts on a page of the list unless asked otherwise, and at most.
pub const DEFAULT_PAGE_USERS: usize = 50;
pub const MAX_PAGE_USERS: usize = 200;
/// Most roles an account has, and the longest role in bytes.
pub const MAX_ROLES: usize = 32;
pub const MAX_ROLE_BYTES: usize = 64;
/// Longest opaque cursor accepted, checked before decoding: a username
/// key is at most 64 characters of up to 4 bytes, plus base64's third.
const MAX_CURSOR_CHARS: usize = 400;

/// An account an operator creates.
#[derive(Default)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    /// `None`: the account cannot be signed in to until a password is set
    /// through the returned link.
    pub password: Option<&'a str>,
    pub email: Option<&'a str>,
    pub roles: Vec<String>,
}

/// The created account, and the link to set its password if it has none.
pub struct CreatedAccount {
    pub user: User,
    pub set_password_link: Option<OneTimeLink>,
}

/// A one-time link and when it stops working.
pub struct OneTimeLink {
    pub link: SecretString,
    pub expires_at: UnixTime,
}

/// What an operator changes of an account; `None` leaves it.
#[derive(Debug, Default)]
pub struct AccountChange {
    pub disabled: Option<bool>,
    pub roles: Option<Vec<String>>,
    /// A new address (unverified); an empty string removes it.
    pub email: Option<String>,
}

/// One page of the account list.
pub struct UserPage {
    pub users: Vec<User>,
    /// Where the next page starts (opaque); `None` on the last page.
    pub next_cursor: Option<String>,
}

impl Authority {
    /// The acting party of an administration request: a client's own
    /// token (client credentials: no session, `sub` = `client:<id>`) that
    /// carries [`ADMIN_SCOPE`]. A user's token, or a client's without the
    /// scope, is `InsufficientScope` (403), whatever the user's roles.
    pub fn administrator(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        let is_client = claims.sid.is_none() && claims.sub.starts_with("client:");
        let has_scope = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| s == ADMIN_SCOPE));
        if is_client && has_scope {
            Ok(claims.sub.clone())
        } else {
            Err(AuthError::InsufficientScope)
        }
    }

    /// Accounts whose normalised username or email contains `query`
    /// (substring), by normalised username, `limit` (default 50, at most
    /// 200) a page; `cursor` is a previous page's `next_cursor`.
    pub async fn admin_users(
        &self,
        query: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<UserPage, AuthError> {
        let limit = match limit {
            None => DEFAULT_PAGE_USERS,
            Some(n) if (1..=MAX_PAGE_USERS).contains(&n) => n,
            Some(_) => {
                return Err(AuthError::InvalidRequest(format!(
                    "limit must be 1 to {MAX_PAGE_USERS}"
                )))
            }
        };
        let contains = match query {
            Some(q) if q.len() > MAX_USERNAME_BYTES => {
                return Err(AuthError::InvalidRequest(
                    "query must be at most 256 bytes".into(),
                ))
            }
            Some(q) => search_key(q),
            None => String::new(),
        };
        let after = cursor.map(decode_cursor).transpose()?;
        let mut users = self
            .store
            .users(&UserQuery {
                contains,
                after,
                limit: limit + 1,
            })
            .await?;
        let next_cursor = if users.len() > limit {
            users.truncate(limit);
            users
                .last()
                .map(|u| URL_SAFE_NO_PAD.encode(u.username_key.as_bytes()))
        } else {
            None
        };
        Ok(UserPage { users, next_cursor })
    }

    /// The account with this id (a UUID, else 400); 404 if there is none.
    pub async fn admin_user(&self, id: &str) -> Result<User, AuthError> {
        let id = parse_user_id(id)?;
        self.store.user_by_id(id).await?.ok_or(AuthError::NotFound)
    }

    /// The account named by id or, failing that, by username (the command
    /// line takes either).
    pub async fn find_user(&self, id_or_username: &str) -> Result<User, AuthError> {
        if let Ok(id) = Uuid::parse_str(id_or_username) {
            if let Some(user) = self.store.user_by_id(id).await? {
                return Ok(user);
            }
        }
        let name = Username::parse(id_or_username).map_err(|_| AuthError::NotFound)?;
        self.store
            .user_by_key(&name.key)
            .await?
            .ok_or(AuthError::NotFound)
    }

    /// Creates an account under the sign-up rules (username, password,
    /// email), with `roles`.
    pub async fn admin_create_user(
        &self,
        new: NewAccount<'_>,
        actor: &str,
        from: &Origin,
    ) -> Result<CreatedAccount, AuthError> {
        let name = Username::parse(new.username)?;
        let password = match new.password {
            Some(p) => Some(Password::new_for_account(p)?),
            None => None,
        };
        let email = new.email.map(Email::parse).transpose()?;
        let roles = valid_roles(new.roles)?;
        let phc = match password {
            Some(p) => self.hasher.hash(p).await?,
            // A hash of a secret nobody keeps: sign-in verifies against it
            // like any wrong password (same cost, same answer) until the
            // link sets a real one.
            None => {
                let unknowable = account_token::mint()?;
                let unknowable =
                    Password::for_check(secrecy::ExposeSecret::expose_secret(&unknowable.token))?;
                self.hasher.hash(unknowable).await?
            }
        };
        let user = self.insert_account(name, phc, roles, email).await?;
        let set_password_link = match new.password {
            Some(_) => None,
            None => Some(OneTimeLink {
                link: self
                    .password_reset_link(user.id, SET_PASSWORD_LINK_SECONDS)
                    .await?,
                expires_at: self.clock.now().saturating_add(SET_PASSWORD_LINK_SECONDS),
            }),
        };
        self.admin_audit(AuditKind::AdminUserCreated, Some(user.id), actor, from)
            .await;
        tracing::info!(user_id = %user.id, actor, "account created by an operator");
        Ok(CreatedAccount {
            user,
            set_password_link,
        })
    }

    /// Inserts a new account; 409 for a taken username or email.
    pub(super) async fn insert_account(
        &self,
        name: Username,
        phc: String,
        roles: Vec<String>,
        email: Option<Email>,
    ) -> Result<User, AuthError> {
        let user = User {
            id: Uuid::new_v4(),
            username: name.display,
            username_key: name.key,
            password_hash: phc,
            roles,
            created_at: self.clock.now(),
            email,
            email_verified_at: None,
            disabled_at: None,
        };
        if !self.store.insert_user(&user).await? {
            // One of the two unique keys collided; the username is the
            // one people choose, so it is named first.
            return Err(
                if self.store.user_by_key(&user.username_key).await?.is_some() {
                    AuthError::UsernameTaken
                } else {
                    AuthError::EmailTaken
                },
            );
        }
        Ok(user)
    }

    /// Changes roles, email or whether the account is disabled. Disabling
    /// ends every session at once; a new email is unverified.
    pub async fn admin_update_user(
        &self,
        user: &User,
        change: AccountChange,
        actor: &str,
        from: &Origin,
    ) -> Result<User, AuthError> {
        let mut updated = user.clone();
        if let Some(roles) = change.roles {
            updated.roles = valid_roles(roles)?;
        }
        if let Some(email) = change.email {
            let email = match email.as_str() {
                "" => None,
                raw => Some(Email::parse(raw)?),
            };
            if email.as_ref().map(|e| &e.key) != user.email.as_ref().map(|e| &e.key) {
                updated.email_verified_at = None;
            }
            updated.email = email;
        }
        match change.disabled {
            Some(true) if user.disabled_at.is_none() => {
                updated.disabled_at = Some(self.clock.now());
            }
            Some(false) => updated.disabled_at = None,
            _ => {}
        }
        match self.store.update_user(&updated).await? {
            UserUpdate::Updated => {}
            UserUpdate::NotFound => return Err(AuthError::NotFound),
            UserUpdate::EmailTaken => return Err(AuthError::EmailTaken),
        }
        if updated.disabled_at.is_some() {
            // Also when it was disabled already: a session opened by a
            // sign-in racing the first disable ends here.
            self.end_sessions_of(user.id, None, "account_disabled")
                .await?;
        }
        if updated.roles != user.roles || updated.email != user.email {
            self.admin_audit(AuditKind::AdminUserUpdated, Some(user.id), actor, from)
                .await;
        }
        match (user.disabled_at, updated.disabled_at) {
            (None, Some(_)) => {
                tracing::info!(user_id = %user.id, actor, "account disabled; sessions ended");
                self.admin_audit(AuditKind::AdminUserDisabled, Some(user.id), actor, from)
                    .await;
            }
            (Some(_), None) => {
                self.admin_audit(AuditKind::AdminUserEnabled, Some(user.id), actor, from)
                    .await;
            }
            _ => {}
        }
        Ok(updated)
    }

    /// Deletes the account: its sessions end (revocations published), then
    /// it goes with its sessions, account tokens and throttle counter. The
    /// audit log keeps its id.
    pub async fn admin_delete_user(
        &self,
        user: &User,
        actor: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let expires_at = now.saturating_add(self.policy.revocation_lifetime());
        let ended = self
            .store
            .delete_user(
                user.id,
                &throttle::user_key(&user.username_key),
                now,
                expires_at,
            )
            .await?
            .ok_or(AuthError::NotFound)?;
        self.publish_session_revocations(&ended, expires_at);
        tracing::info!(user_id = %user.id, actor, sessions_ended = ended.len(), "account deleted");
        self.admin_audit(AuditKind::AdminUserDeleted, Some(user.id), actor, from)
            .await;
        Ok(())
    }

    /// The account's live sessions, oldest first.
    pub async fn admin_sessions(&self, user: &User) -> Result<Vec<SessionView>, AuthError> {
        self.live_session_views(user.id, None).await
    }

    /// Ends every session of the account; returns how many ended.
    pub async fn admin_end_sessions(
        &self,
        user: &User,
        actor: &str,
        from: &Origin,
    ) -> Result<usize, AuthError> {
        let ended = self
            .end_sessions_of(user.id, None, "ended_by_operator")
            .await?;
        self.admin_audit(AuditKind::AdminSessionsEnded, Some(user.id), actor, from)
            .await;
        Ok(ended)
    }

    /// A one-time password-reset link for the account, good for
    /// [`super::RESET_LINK_SECONDS`].
    pub async fn admin_reset_link(
        &self,
        user: &User,
        actor: &str,
        from: &Origin,
    ) -> Result<OneTimeLink, AuthError> {
        let lifetime = super::RESET_LINK_SECONDS;
        let link = self.password_reset_link(user.id, lifetime).await?;
        self.admin_audit(AuditKind::AdminResetLink, Some(user.id), actor, from)
            .await;
        Ok(OneTimeLink {
            link,
            expires_at: self.clock.now().saturating_add(lifetime),
        })
    }

    /// Records an operator's action with who took it.
    pub(super) async fn admin_audit(
        &self,
        kind: AuditKind,
        user_id: Option<Uuid>,
        actor: &str,
        from: &Origin,
    ) {
        let mut event = self.audit_event(kind, Outcome::Success, user_id, None, from);
        event.actor = Some(actor.to_owned());
        self.record(event).await;
    }
}

/// A user id from a path: a UUID, else a precise 400.
fn parse_user_id(id: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(id).map_err(|_| AuthError::InvalidRequest("user id must be a UUID".into()))
}

fn decode_cursor(cursor: &str) -> Result<String, AuthError> {
    let invalid = || AuthError::InvalidRequest("cursor is not one this server gave out".into());
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// Roles as given, each checked (non-empty, at most 64 bytes of printable
/// ASCII without spaces), at most 32, duplicates dropped.
pub fn valid_roles(roles: Vec<String>) -> Result<Vec<String>, AuthError> {
    if roles.len() > MAX_ROLES {
        return Err(AuthError::InvalidRequest(format!(
            "at most {MAX_ROLES} roles"
        )));
    }
    let mut kept: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        let fits = !role.is_empty()
            && role.len() <= MAX_ROLE_BYTES
            && role.bytes().all(|b| b.is_ascii_graphic());
        if !fits {
            return Err(AuthError::InvalidRequest(format!(
                "a role is 1 to {MAX_ROLE_BYTES} printable ASCII characters without spaces"
            )));
        }
        if !kept.contains(&role) {
            kept.push(role);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_checked_and_deduplicated() {
        let ok = valid_roles(vec!["admin".into(), "a:b/c".into(), "admin".into()]);
        assert_eq!(ok.ok(), Some(vec!["admin".to_owned(), "a:b/c".to_owned()]));
        for bad in ["", "has space", "é", &"x".repeat(65)] {
            assert!(valid_roles(vec![bad.to_owned()]).is_err(), "{bad:?}");
        }
        assert!(valid_roles((0..33).map(|i| format!("r{i}")).collect()).is_err());
        assert!(valid_roles((0..32).map(|i| format!("r{i}")).collect()).is_ok());
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = URL_SAFE_NO_PAD.encode("ann".as_bytes());
        assert_eq!(decode_cursor(&c).ok().as_deref(), Some("ann"));
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&"A".repeat(1000)).is_err());
    }
}
