//! The load generator of `make bench` (`scripts/bench.sh` starts the systems and calls this).
//!
//! `chorus-bench run` drives one running system — Chorus, the bare relay (`bench/relay`) or
//! Socket.IO (`bench/socketio`) — through the same scenarios, checks that every delivery
//! arrived exactly once and in order per sender, and appends one JSON line of results:
//! - idle: K connections held open; server memory per connection from `/proc/<pid>/status`;
//! - private: N sender→recipient pairs, W sends in flight each, for S seconds;
//! - group: G groups of M members, every member sending (W' in flight), each message reaching
//!   the other M-1;
//! - offered-load steps: the pairs again, each sender rate-limited, at rising total rates.
//!
//! `chorus-bench report` turns the JSON lines into the side-by-side table and an SVG chart of
//! throughput and p99 against offered load.
//!
//! Traffic goes only to the `--server`s given (the script uses 127.0.0.1).

mod proto;
mod report;
mod scenario;
mod worker;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::proto::System;

#[derive(Parser)]
#[command(about = "Chorus, Socket.IO and a bare relay under the same load, every delivery checked")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every scenario against one system and appends its results to `--out`.
    Run(RunArgs),
    /// Prints the table of a results file and writes the chart.
    Report {
        /// The JSON-lines file `run` appended to.
        results: PathBuf,
        /// Where to write the SVG chart.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

/// Sizes and targets of one run.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    #[arg(long, value_enum)]
    pub system: System,
    /// A node's base URL (`http://127.0.0.1:PORT`); repeat for several. Pair recipients and
    /// group members are spread over them, so with several nodes most traffic crosses nodes.
    #[arg(long = "server", required = true)]
    pub servers: Vec<String>,
    /// The row's name in the table.
    #[arg(long)]
    pub label: String,
    /// The first node's process id (its memory is measured for the idle scenario).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Sender→recipient pairs.
    #[arg(long, default_value_t = 20)]
    pub pairs: usize,
    /// Private sends in flight per sender.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seconds of sending in the private and group scenarios.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Groups (0 skips the group scenario).
    #[arg(long, default_value_t = 5)]
    pub groups: usize,
    /// Members per group.
    #[arg(long, default_value_t = 20)]
    pub members: usize,
    /// Group sends in flight per member.
    #[arg(long, default_value_t = 8)]
    pub group_window: usize,
    /// Idle connections (0 skips the idle scenario).
    #[arg(long, default_value_t = 3000)]
    pub idle: usize,
    /// Offered loads in deliveries/s for the steps, comma-separated (`0` skips the steps).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,5000,10000,20000,50000,100000,200000,500000"
    )]
    pub rates: Vec<u64>,
    /// Seconds per offered-load step.
    #[arg(long, default_value_t = 3.0)]
    pub step_seconds: f64,
    /// Sends in flight per sender at most during the steps.
    #[arg(long, default_value_t = 256)]
    pub step_window: usize,
    /// The JSON-lines file to append the results to.
    #[arg(long)]
    pub out: PathBuf,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => scenario::run(args).await,
        Command::Report { results, svg } => report::report(&results, svg.as_deref()),
    };
    if let Err(e) = result {
        eprintln!("chorus-bench: {e}");
        std::process::exit(1);
    }
}
