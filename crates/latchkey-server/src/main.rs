//! The `latchkey` command: parses the command line ([`latchkey_server::cli`]),
//! sets up logging, runs the subcommand and prints its answer.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use latchkey_core::clock::SystemClock;
use latchkey_server::cli::{self, Cli, Command};
use latchkey_server::config::ServeArgs;
use latchkey_server::{RunningServer, Settings};
use tracing_subscriber::EnvFilter;

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
        Command::CheckConfig(args) => {
            let settings = Settings::resolve(&args)?;
            println!("{settings:#?}");
            Ok(())
        }
        Command::Keys(args) => {
            let out = runtime()?.block_on(cli::keys::run(args, &SystemClock))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Clients(args) => {
            let out = runtime()?.block_on(cli::clients::run(args))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Users(args) => {
            let out = runtime()?.block_on(cli::users::run(args))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Audit(args) => {
            let events = runtime()?.block_on(cli::audit::run(args, &SystemClock))?;
            for event in events {
                println!("{event}");
            }
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

/// Ctrl-C, or SIGTERM where there is one.
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
