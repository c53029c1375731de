//! `chorus-tui`: the terminal client. `chorus-tui --server http://127.0.0.1:8080`; `?` shows
//! the keys.

use std::path::PathBuf;
use std::time::Duration;

use chorus_client::tui::{view, Event, Model, Runtime, SessionStore};
use chorus_client::{Api, ChatOptions};
use clap::Parser;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};

/// A terminal client for Chorus.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server's base URL.
    #[arg(long, env = "CHORUS_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Where the remembered session lives (default: `$XDG_CONFIG_HOME/chorus` or
    /// `~/.config/chorus`).
    #[arg(long, env = "CHORUS_TUI_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Do not remember the session (and do not use a remembered one).
    #[arg(long)]
    no_remember: bool,
    /// Write logs to this file (the terminal belongs to the UI).
    #[arg(long, env = "CHORUS_TUI_LOG")]
    log: Option<PathBuf>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.log {
        match std::fs::File::create(path) {
            Ok(file) => tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init(),
            Err(e) => eprintln!("chorus-tui: cannot write the log {}: {e}", path.display()),
        }
    }
    let api = match Api::new(&args.server) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chorus-tui: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let store = if args.no_remember {
        None
    } else {
        args.config_dir
            .clone()
            .or_else(SessionStore::default_dir)
            .map(SessionStore::in_dir)
    };
    let mut model = Model::new(api.base().as_str().trim_end_matches('/'));
    let mut rt = Runtime::new(api, store, ChatOptions::default());
    rt.restore();

    // Keys come from a thread of their own: crossterm's read blocks.
    let keys = rt.sender();
    std::thread::spawn(move || loop {
        match event::read() {
            Ok(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => {
                if !keys.send(Event::Key(k)) {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    });

    let mut terminal = ratatui::init();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        if let Err(e) = terminal.draw(|f| view::draw(f, &model)) {
            break Err(e);
        }
        let ev = tokio::select! {
            e = rt.next() => e,
            _ = tick.tick() => Event::Tick(now_ms()),
        };
        rt.apply(&mut model, ev);
        if model.quit {
            break Ok(());
        }
    };
    ratatui::restore();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-tui: terminal: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
