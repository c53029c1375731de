//! The `chorus` binary: parse flags, load settings, run a node until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// A multi-node chat server.
///
/// Settings come from built-in defaults, then config/default.toml, then the file given with
/// --config (or config/{CHORUS_ENV}.toml), then CHORUS__SECTION__KEY environment variables
/// (e.g. CHORUS__SERVER__ADDR=127.0.0.1:9000, CHORUS__DATABASE__URL=postgres://...).
#[derive(Parser)]
#[command(name = "chorus", version, about)]
struct Cli {
    /// A TOML settings file, layered over the defaults.
    #[arg(short, long, env = "CHORUS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (the default).
    Serve,
    /// Print the OpenAPI document and exit.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", chorus::http::docs::openapi_json());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let settings =
        chorus::config::Settings::load(cli.config.as_deref()).context("loading settings")?;
    let server = chorus::Server::start(settings)
        .await
        .context("starting chorus")?;
    // Scripts and tests read these lines to learn the bound ports (`listening on` comes last).
    if let Some(line) = server.line_addr() {
        println!("line on {line}");
    }
    println!("listening on {}", server.addr());
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
