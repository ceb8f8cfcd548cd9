//! `latchkey audit`: recent authentication events from the store, as JSON
//! lines (oldest first), for operators.

use clap::Args;
use latchkey_core::audit::{AuditEvent, AuditQuery};
use latchkey_core::clock::Clock;
use latchkey_core::username::Username;
use latchkey_core::Authority;
use serde_json::json;

use super::CommandError;
use crate::config::{parse_duration, whole_seconds, DataArgs};
use crate::server::{open_data, IfMissing};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub location: DataArgs,
    /// Only events of this account (the name is normalised as at sign-in)
    #[arg(long)]
    pub user: Option<String>,
    /// Only events this recent, e.g. `1h` or `7d`
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
    /// At most this many (the newest)
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// One JSON object per event.
pub fn describe(e: &AuditEvent) -> serde_json::Value {
    json!({
        "at": e.at,
        "kind": e.kind.as_str(),
        "outcome": e.outcome.as_str(),
        "user_id": e.user_id.map(|u| u.to_string()),
        "session_id": e.session_id.map(|u| u.to_string()),
        "ip": e.ip,
        "count": e.count,
        "request_id": e.request_id,
        "actor": e.actor,
    })
}

/// The matching events, oldest first; an unknown `--user` has none.
pub async fn run(
    args: AuditArgs,
    clock: &dyn Clock,
) -> Result<Vec<serde_json::Value>, CommandError> {
    let settings = args.location.settings()?;
    let (_dir, store) = open_data(&settings, IfMissing::Refuse).await?;
    let user_id = match &args.user {
        Some(name) => {
            let key = Username::parse(name)
                .map_err(|e| CommandError::Refused(e.to_string()))?
                .key;
            match store.user_by_key(&key).await? {
                Some(user) => Some(user.id),
                None => return Ok(Vec::new()),
            }
        }
        None => None,
    };
    let since = args
        .since
        .map(|d| clock.now().saturating_sub(whole_seconds(d)));
    let query = AuditQuery {
        user_id,
        since,
        limit: args.limit,
    };
    let events = Authority::audit_events(&*store, &query).await?;
    Ok(events.iter().map(describe).collect())
}
