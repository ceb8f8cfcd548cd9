//! The `latchkey` command.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use latchkey_core::clock::SystemClock;
use latchkey_server::audit_command::AuditArgs;
use latchkey_server::client_admin::ClientsArgs;
use latchkey_server::config::ServeArgs;
use latchkey_server::key_commands::KeysArgs;
use latchkey_server::user_admin::UsersArgs;
use latchkey_server::{RunningServer, Settings};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Authentication token service")]
struct Cli {
    /// Log as JSON lines instead of text
    #[arg(long, global = true, env = "LATCHKEY_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (zero configuration: 127.0.0.1:8080, ./latchkey-data)
    Serve(ServeArgs),
    /// Check a configuration and print the resolved settings
    CheckConfig(ServeArgs),
    /// Signing keys: `rotate` (current retires, next signs, a new next is
    /// published) and `list`
    Keys(KeysArgs),
    /// Manage OAuth clients (apps)
    Clients(ClientsArgs),
    /// Operator commands on accounts: `unlock <username>` clears its failed
    /// sign-in counter
    Users(UsersArgs),
    /// Recent authentication events as JSON lines, oldest first
    /// (`--user NAME`, `--since 1h`, `--limit N`)
    Audit(AuditArgs),
}

const POSTGRES_DRIVER_LOG_CAP: &str = "tokio_postgres=info";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"))
        // The PostgreSQL driver logs every statement's parameters at debug:
        // password hashes, client-secret hashes, sealed keys. Never shown.
        .add_directive(POSTGRES_DRIVER_LOG_CAP.parse()?);
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Clients(args) => {
            let out = runtime()?.block_on(latchkey_server::client_admin::run(args))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Audit(args) => {
            let events =
                runtime()?.block_on(latchkey_server::audit_command::run(args, &SystemClock))?;
            for event in events {
                println!("{event}");
            }
            Ok(())
        }
        Command::Users(args) => {
            let out = runtime()?.block_on(latchkey_server::user_admin::run(args))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Keys(args) => {
            let out =
                runtime()?.block_on(latchkey_server::key_commands::run(args, &SystemClock))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::CheckConfig(args) => {
            let settings = Settings::resolve(&args)?;
            println!("{settings:#?}");
            Ok(())
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    runtime()?.block_on(async {
        let mut server = RunningServer::start(settings, Arc::new(SystemClock)).await?;
        tokio::select! {
            result = server.wait() => result.context("server stopped")?,
            _ = shutdown_signal() => {
                tracing::info!("shutting down");
                server.stop().await;
            }
        }
        Ok(())
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
