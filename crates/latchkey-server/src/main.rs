//! The `latchkey` command: parses the command line ([`latchkey_server::cli`]),
//! sets up logging, runs the subcommand and prints its answer.
//!
//! stdout carries a command's answer and nothing else (`latchkey keys
//! rotate | jq` works); logs, warnings and errors go to stderr, coloured
//! only when stderr is a terminal and `NO_COLOR` is not set.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser};
use latchkey_core::clock::SystemClock;
use latchkey_server::cli::{self, Cli, Command};
use latchkey_server::config::ServeArgs;
use latchkey_server::{RunningServer, Settings};
use tracing_subscriber::EnvFilter;

const POSTGRES_DRIVER_LOG_CAP: &str = "tokio_postgres=info";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_json) {
        print_error(&e);
        return ExitCode::FAILURE;
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"))
        // The PostgreSQL driver logs every statement's parameters at debug:
        // password hashes, client-secret hashes, sealed keys. Never shown.
        .add_directive(POSTGRES_DRIVER_LOG_CAP.parse()?);
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    Ok(())
}

/// `error: <message>`, then each cause not already part of the message
/// before it, on stderr; the backtrace only if `RUST_BACKTRACE` asks.
fn print_error(e: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let mut last = e.to_string();
    let _ = writeln!(stderr, "error: {last}");
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !last.ends_with(&text) {
            let _ = writeln!(stderr, "caused by: {text}");
        }
        last = text;
    }
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        let _ = writeln!(stderr, "backtrace:\n{}", e.backtrace());
    }
}

/// `out` and a newline on stdout.
fn print_out(out: impl std::fmt::Display) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{out}").context("writing to stdout")
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(&args),
        Command::CheckConfig(args) => {
            let settings = Settings::resolve(&args)?;
            if let Some(warning) = settings.unusable_issuer_warning() {
                eprintln!("warning: {warning}");
            }
            print_out(settings.to_toml().trim_end())
        }
        Command::Keys(args) => {
            let out = runtime()?.block_on(cli::keys::run(args, &SystemClock))?;
            print_out(serde_json::to_string_pretty(&out)?)
        }
        Command::Clients(args) => {
            let out = runtime()?.block_on(cli::clients::run(args))?;
            print_out(serde_json::to_string_pretty(&out)?)
        }
        Command::Users(args) => {
            let format = args.format;
            let out = runtime()?.block_on(cli::users::run(args))?;
            print_out(cli::users::render(format, &out))
        }
        Command::Audit(args) => {
            let events = runtime()?.block_on(cli::audit::run(args, &SystemClock))?;
            for event in events {
                print_out(event)?;
            }
            Ok(())
        }
        Command::Completions { shell } => std::io::stdout()
            .lock()
            .write_all(&shell.script(&mut Cli::command()))
            .context("writing to stdout"),
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    if let Some(warning) = settings.unusable_issuer_warning() {
        tracing::warn!("{warning}");
    }
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
