//! The `latchkey` command line: the clap definitions of every subcommand
//! (their doc comments are the `--help` text).
//!
//! `serve` and `check-config` take the settings flags ([`ServeArgs`]). The
//! operator commands — [`keys`], [`clients`], [`users`], [`audit`] — take
//! only what locates the data ([`DataArgs`](crate::config::DataArgs):
//! data directory, config file, database URL) and work on the store
//! directly, with the server running or not. Each returns what to print;
//! `main` prints it, on stdout, and nothing else goes there.

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;
use crate::StartError;

pub mod audit;
pub mod clients;
pub mod keys;
mod table;
pub mod users;

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Authentication token service")]
pub struct Cli {
    /// Log as JSON lines instead of text
    #[arg(long, global = true, env = "LATCHKEY_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (zero configuration: 127.0.0.1:8080, ./latchkey-data)
    Serve(ServeArgs),
    /// Check a configuration and print the resolved settings as TOML, in
    /// the config file's key names (secrets redacted)
    CheckConfig(ServeArgs),
    /// Signing keys: `rotate` (current retires, next signs, a new next is
    /// published) and `list`
    Keys(keys::KeysArgs),
    /// Manage OAuth clients (apps)
    Clients(clients::ClientsArgs),
    /// Operator commands on accounts: list, show, create, disable, enable,
    /// delete, set-roles, sessions, end-sessions, reset-link, invite,
    /// unlock (JSON on stdout, or `--format table`)
    Users(users::UsersArgs),
    /// Recent authentication events as JSON lines, oldest first
    /// (`--user NAME`, `--since 1h`, `--limit N`)
    Audit(audit::AuditArgs),
    /// Print a shell completion script, e.g.
    /// `latchkey completions bash > /etc/bash_completion.d/latchkey`
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// The shells `latchkey completions` writes scripts for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    /// The completion script for `cmd`.
    pub fn script(self, cmd: &mut clap::Command) -> Vec<u8> {
        let shell = match self {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        };
        let mut script = Vec::new();
        clap_complete::generate(shell, cmd, "latchkey", &mut script);
        script
    }
}

/// Why an operator command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The settings, data directory or store could not be used.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The request itself was refused (unknown client, bad name, …).
    #[error("{0}")]
    Refused(String),
}

impl From<crate::config::ConfigError> for CommandError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Start(e.into())
    }
}

impl From<latchkey_core::store::StoreError> for CommandError {
    fn from(e: latchkey_core::store::StoreError) -> Self {
        Self::Start(e.into())
    }
}

impl From<latchkey_core::AuthError> for CommandError {
    fn from(e: latchkey_core::AuthError) -> Self {
        Self::Start(e.into())
    }
}
