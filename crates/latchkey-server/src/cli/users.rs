//! `latchkey users …`: operator commands on accounts, on the data
//! directory or database like the other operator commands, with the server
//! running or not. They call the same core methods as the administration
//! API (`/admin/v1`), audited with the actor `cli`. Sessions they end are
//! recorded in the store's revocation set, which every running node reads
//! within 200 ms.
//!
//! An account is named by its id or, failing that, its username (normalised
//! as at sign-in).

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use latchkey_core::clock::SystemClock;
use latchkey_core::service::administration::{AccountChange, NewAccount, CLI_ACTOR};
use latchkey_core::service::Origin;
use latchkey_core::Authority;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{table, CommandError};
use crate::config::{parse_duration, whole_seconds, DataArgs};
use crate::routes::admin::admin_user;
use crate::server::{open_data, password_hasher, IfMissing};

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub location: DataArgs,
    /// How to print the answer: `json` (for `jq`) or a plain `table`
    #[arg(long, value_enum, default_value_t = Format::Json, global = true)]
    pub format: Format,
    #[command(subcommand)]
    pub action: UsersAction,
}

/// How an answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Table,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// List accounts by normalised username, a page at a time
    List {
        /// Only accounts whose normalised username or email contains this
        #[arg(long)]
        query: Option<String>,
        /// Accounts per page, 1 to 200
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// A previous page's `next_cursor`
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one account (by id or username)
    Show { user: String },
    /// Create an account; without `--password-stdin`, print a one-time
    /// link (7 days) to set its password
    Create {
        username: String,
        /// Read the password from the first line of stdin (never a flag:
        /// flags show in the process list)
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        email: Option<String>,
        /// A role; repeat for several
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Disable an account: it cannot sign in and its sessions end now
    Disable { user: String },
    /// Enable a disabled account
    Enable { user: String },
    /// Delete an account with its sessions (ended first)
    Delete { user: String },
    /// Replace an account's roles (none: clear them)
    SetRoles { user: String, roles: Vec<String> },
    /// An account's live sessions
    Sessions { user: String },
    /// End every session of an account
    EndSessions { user: String },
    /// Print a one-time password-reset link (30 minutes) for an account
    ResetLink { user: String },
    /// Issue a single-use invite code for sign-up by invitation
    Invite {
        /// How long the code works, e.g. `7d` [default: 7d]
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
        /// A role the invited account starts with; repeat for several
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Clear an account's failed sign-in counter, ending any block at once
    /// (the name is normalised as at sign-in; unknown names are accepted,
    /// since they are throttled too)
    Unlock { username: String },
}

/// The text of an answer in `format`.
pub fn render(format: Format, answer: &Value) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(answer).unwrap_or_default(),
        Format::Table => table::render(answer),
    }
}

/// Runs one action; returns its answer (printed by [`render`]).
pub async fn run(args: UsersArgs) -> Result<Value, CommandError> {
    let settings = args.location.settings()?;
    let (dir, store) = open_data(&settings, IfMissing::Refuse).await?;
    // One thread: a command hashes at most one password.
    let hasher = password_hasher(&settings, 1)?;
    let (auth, _) = Authority::open(
        store.clone(),
        Arc::new(SystemClock),
        hasher,
        &dir.secret,
        settings.policy.clone(),
    )
    .await?;
    let from = Origin::default();
    let refused = |e: latchkey_core::AuthError| CommandError::Refused(e.to_string());
    let find = |user: String| {
        let auth = &auth;
        async move {
            auth.find_user(&user).await.map_err(|e| match e {
                latchkey_core::AuthError::NotFound => {
                    CommandError::Refused(format!("no account has the id or username {user:?}"))
                }
                other => refused(other),
            })
        }
    };
    let change = |user, change: AccountChange| {
        let (auth, from) = (&auth, &from);
        async move {
            let user = find(user).await?;
            let user = auth
                .admin_update_user(&user, change, CLI_ACTOR, from)
                .await
                .map_err(refused)?;
            Ok::<_, CommandError>(json!(admin_user(user)))
        }
    };
    Ok(match args.action {
        UsersAction::List {
            query,
            limit,
            cursor,
        } => {
            let page = auth
                .admin_users(query.as_deref(), Some(limit), cursor.as_deref())
                .await
                .map_err(refused)?;
            let users: Vec<_> = page.users.into_iter().map(admin_user).collect();
            json!({ "users": users, "next_cursor": page.next_cursor })
        }
        UsersAction::Show { user } => json!(admin_user(find(user).await?)),
        UsersAction::Create {
            username,
            password_stdin,
            email,
            roles,
        } => {
            let password = password_stdin.then(read_password).transpose()?;
            let created = auth
                .admin_create_user(
                    NewAccount {
                        username: &username,
                        password: password.as_deref(),
                        email: email.as_deref(),
                        roles,
                    },
                    CLI_ACTOR,
                    &from,
                )
                .await
                .map_err(refused)?;
            let mut out = json!(admin_user(created.user));
            if let Some(link) = created.set_password_link {
                out["set_password_link"] = link.link.expose_secret().into();
                out["set_password_link_expires_at"] = link.expires_at.into();
            }
            out
        }
        UsersAction::Disable { user } => {
            let disable = AccountChange {
                disabled: Some(true),
                ..AccountChange::default()
            };
            change(user, disable).await?
        }
        UsersAction::Enable { user } => {
            let enable = AccountChange {
                disabled: Some(false),
                ..AccountChange::default()
            };
            change(user, enable).await?
        }
        UsersAction::SetRoles { user, roles } => {
            let set = AccountChange {
                roles: Some(roles),
                ..AccountChange::default()
            };
            change(user, set).await?
        }
        UsersAction::Delete { user } => {
            let user = find(user).await?;
            auth.admin_delete_user(&user, CLI_ACTOR, &from)
                .await
                .map_err(refused)?;
            json!({ "id": user.id.to_string(), "deleted": true })
        }
        UsersAction::Sessions { user } => {
            let user = find(user).await?;
            let sessions = auth.admin_sessions(&user).await.map_err(refused)?;
            let sessions: Vec<Value> = sessions
                .into_iter()
                .map(|v| {
                    json!({
                        "id": v.session.id.to_string(),
                        "client_id": v.session.client_id,
                        "created_at": v.session.created_at,
                        "last_refreshed_at": v.session.last_refreshed_at,
                        "expires_at": v.expires_at,
                        "ip": v.session.ip,
                        "user_agent": v.session.user_agent,
                    })
                })
                .collect();
            json!({ "sessions": sessions })
        }
        UsersAction::EndSessions { user } => {
            let user = find(user).await?;
            let ended = auth
                .admin_end_sessions(&user, CLI_ACTOR, &from)
                .await
                .map_err(refused)?;
            json!({ "id": user.id.to_string(), "ended": ended })
        }
        UsersAction::ResetLink { user } => {
            let user = find(user).await?;
            let link = auth
                .admin_reset_link(&user, CLI_ACTOR, &from)
                .await
                .map_err(refused)?;
            json!({ "link": link.link.expose_secret(), "expires_at": link.expires_at })
        }
        UsersAction::Invite { expires_in, roles } => {
            let invite = auth
                .create_invite(expires_in.map(whole_seconds), roles, CLI_ACTOR, &from)
                .await
                .map_err(refused)?;
            json!({
                "code": invite.code.expose_secret(),
                "expires_at": invite.expires_at,
                "roles": invite.roles,
            })
        }
        UsersAction::Unlock { username } => {
            let cleared = Authority::unlock_account(&*store, &username).await?;
            json!({ "username": username, "unlocked": cleared })
        }
    })
}

/// The first line of stdin, without its line ending.
fn read_password() -> Result<String, CommandError> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| CommandError::Refused(format!("reading the password from stdin: {e}")))?;
    let line = input.lines().next().unwrap_or("");
    Ok(line.to_owned())
}
