//! `latchkey users …`: operator commands on accounts. Every node sees the
//! change on its next sign-in, since throttling state lives in the store.

use clap::{Args, Subcommand};
use latchkey_core::Authority;
use serde_json::json;

use super::CommandError;
use crate::config::DataArgs;
use crate::server::{open_data, IfMissing};

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub location: DataArgs,
    #[command(subcommand)]
    pub action: UsersAction,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Clear an account's failed sign-in counter, ending any block at once
    /// (the name is normalised as at sign-in; unknown names are accepted,
    /// since they are throttled too)
    Unlock { username: String },
}

/// Runs one action; returns what to print (JSON).
pub async fn run(args: UsersArgs) -> Result<serde_json::Value, CommandError> {
    let settings = args.location.settings()?;
    let (_dir, store) = open_data(&settings, IfMissing::Refuse).await?;
    match args.action {
        UsersAction::Unlock { username } => {
            let cleared = Authority::unlock_account(&*store, &username).await?;
            Ok(json!({ "username": username, "unlocked": cleared }))
        }
    }
}
