//! The scenarios of one run (idle, private pairs, group fan-out, offered-load steps) and the
//! exactly-once accounting over all workers of a phase.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::proto::{self, Identity, Kind, System, Ws};
use crate::worker::{self, Outcome, Phase, SendPlan};
use crate::RunArgs;

/// Chorus allows 32 sockets per user by default; idle connections share accounts this many
/// to a user, which keeps the log-ins (Argon2) of a big idle run to a few hundred.
const IDLE_PER_CHORUS_USER: usize = 25;

/// Deliveries that stop growing for this long end a phase (what is missing is lost).
const DRAIN_QUIET: Duration = Duration::from_secs(5);

/// [`DRAIN_QUIET`], or `BENCH_DRAIN_QUIET_SECS` (to tell a late delivery from a lost one).
fn drain_quiet() -> Duration {
    std::env::var("BENCH_DRAIN_QUIET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DRAIN_QUIET, Duration::from_secs_f64)
}

/// How long senders may take to see their last acks after sending stops.
const ACK_GRACE: Duration = Duration::from_secs(60);

/// Figures of one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseStats {
    /// Sends acknowledged.
    pub sent: u64,
    /// Deliveries that should have arrived (sent × recipients).
    pub expected: u64,
    /// First-time deliveries.
    pub delivered: u64,
    pub lost: u64,
    pub dup: u64,
    pub out_of_order: u64,
    pub refused: u64,
    /// Deliveries per second, from the start of sending to the last delivery.
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The first failure seen, if any.
    pub problem: Option<String>,
    /// CPU seconds the first node used during the phase (from `/proc/<pid>/stat`).
    #[serde(default)]
    pub server_cpu_s: Option<f64>,
    /// CPU seconds this load generator used during the phase: when it is close to the wall
    /// time on this 2-core machine, the generator, not the server, may be the limit.
    #[serde(default)]
    pub load_cpu_s: Option<f64>,
}

/// One offered-load step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Offered deliveries per second (all senders together).
    pub offered: u64,
    #[serde(flatten)]
    pub stats: PhaseStats,
}

/// Memory per idle connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleStats {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_conn: f64,
    /// Connections the server dropped while idle.
    pub dropped: usize,
}

/// One JSON line of a results file: everything measured for one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub label: String,
    pub system: System,
    pub nodes: usize,
    pub pairs: usize,
    pub window: usize,
    pub groups: usize,
    pub members: usize,
    pub group_window: usize,
    pub seconds: f64,
    /// The machine's 1-minute load average when the run started (the bench shares the cores).
    #[serde(default)]
    pub load_avg: Option<f64>,
    pub idle: Option<IdleStats>,
    pub private: Option<PhaseStats>,
    pub group: Option<PhaseStats>,
    pub steps: Vec<Step>,
}

/// Runs every scenario against one system and appends the result line to `args.out`.
pub async fn run(args: RunArgs) -> Result<(), String> {
    let clock = Instant::now();
    let run_tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| format!("{:x}", d.as_millis() % 0xff_ffff))
        .unwrap_or_default();
    let mut result = RunResult {
        label: args.label.clone(),
        system: args.system,
        nodes: args.servers.len(),
        pairs: args.pairs,
        window: args.window,
        groups: args.groups,
        members: args.members,
        group_window: args.group_window,
        seconds: args.seconds,
        load_avg: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok()),
        idle: None,
        private: None,
        group: None,
        steps: Vec::new(),
    };
    say(&args, "");
    if args.idle > 0 {
        let stats = idle(&args, &run_tag).await?;
        say(
            &args,
            &format!(
                "idle: {} connections, {:.1} KiB each ({} dropped)",
                stats.connections, stats.kib_per_conn, stats.dropped
            ),
        );
        result.idle = Some(stats);
    }
    if args.pairs > 0 {
        let mut conns = pairs(&args, &run_tag).await?;
        let stats = private_phase(&args, &mut conns, clock, args.window, None, "p").await?;
        say(&args, &format!("private: {}", line(&stats)));
        result.private = Some(stats);
        if args.groups > 0 && args.members > 1 {
            let stats = group(&args, &run_tag, clock).await?;
            say(&args, &format!("group: {}", line(&stats)));
            result.group = Some(stats);
        }
        for (i, &rate) in args.rates.iter().filter(|&&r| r > 0).enumerate() {
            let interval = Duration::from_secs_f64(args.pairs as f64 / rate.max(1) as f64);
            let tag = format!("r{i}x");
            let stats = private_phase(
                &args,
                &mut conns,
                clock,
                args.step_window,
                Some(interval),
                &tag,
            )
            .await?;
            say(&args, &format!("offered {rate}/s: {}", line(&stats)));
            let saturated = stats.per_sec < 0.8 * rate as f64 || stats.p99_ms > 2_000.0;
            let failed = stats.problem.is_some();
            result.steps.push(Step {
                offered: rate,
                stats,
            });
            if saturated || failed {
                break;
            }
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    let text = serde_json::to_string(&result).map_err(|e| e.to_string())?;
    writeln!(file, "{text}").map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(())
}

fn say(args: &RunArgs, what: &str) {
    if what.is_empty() {
        println!("== {} ({} node(s))", args.label, args.servers.len());
    } else {
        println!("   {what}");
    }
}

fn line(s: &PhaseStats) -> String {
    let cpu = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.1}"));
    format!(
        "{:.0} deliveries/s, p50 {:.1} ms, p99 {:.1} ms; {} delivered of {}, lost {}, dup {}, out of order {}, refused {}; CPU s server {} / load {}{}",
        s.per_sec,
        s.p50_ms,
        s.p99_ms,
        s.delivered,
        s.expected,
        s.lost,
        s.dup,
        s.out_of_order,
        s.refused,
        cpu(s.server_cpu_s),
        cpu(s.load_cpu_s),
        s.problem.as_deref().map(|p| format!(" ({p})")).unwrap_or_default()
    )
}

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS for {pid}"))
}

/// CPU seconds (user + system) process `pid` ("self" for this one) has used.
fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// Connects `who[i]` to `servers[i]`, many at a time.
async fn connect_all(system: System, targets: Vec<(String, Identity)>) -> Result<Vec<Ws>, String> {
    let jobs = targets.into_iter().map(|(server, who)| async move {
        let who = proto::on_server(&who, &server)?;
        proto::connect(system, &server, &who).await
    });
    futures_util::stream::iter(jobs)
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn idle(args: &RunArgs, run_tag: &str) -> Result<IdleStats, String> {
    let pid = args.pid.ok_or("--pid is needed for the idle scenario")?;
    let users = match args.system {
        System::Chorus => args.idle.div_ceil(IDLE_PER_CHORUS_USER),
        System::Relay | System::Socketio => args.idle,
    };
    let names = (0..users).map(|i| format!("i{run_tag}n{i}")).collect();
    let who = proto::identities(args.system, &args.servers[0], names).await?;
    // Let the log-ins' memory settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;
    let targets = (0..args.idle)
        .map(|i| (args.servers[0].clone(), who[i % who.len()].clone()))
        .collect();
    let conns = connect_all(args.system, targets).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| tokio::spawn(worker::idle(ws, args.system, stop_rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    let _ = stop_tx.send(true);
    let mut dropped = 0;
    for t in tasks {
        if !t.await.unwrap_or(false) {
            dropped += 1;
        }
    }
    // Give the server a moment to let go of the closed connections.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(IdleStats {
        connections: args.idle,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_conn: after.saturating_sub(before) as f64 / args.idle as f64,
        dropped,
    })
}

/// The pairs' connections: `[sender0, recipient0, sender1, recipient1, ...]` and each
/// recipient's address. Pair `i` sends from node `i` to node `i + 1` (mod the nodes).
struct Pairs {
    conns: Vec<Option<Ws>>,
    to: Vec<String>,
}

async fn pairs(args: &RunArgs, run_tag: &str) -> Result<Pairs, String> {
    let n = args.servers.len();
    let names = (0..args.pairs)
        .flat_map(|i| [format!("s{run_tag}n{i}"), format!("r{run_tag}n{i}")])
        .collect();
    let who = proto::identities(args.system, &args.servers[0], names).await?;
    let to = (0..args.pairs).map(|i| who[2 * i + 1].address()).collect();
    let targets = who
        .into_iter()
        .enumerate()
        .map(|(j, w)| (args.servers[(j / 2 + j % 2) % n].clone(), w))
        .collect();
    let conns = connect_all(args.system, targets).await?;
    Ok(Pairs {
        conns: conns.into_iter().map(Some).collect(),
        to,
    })
}

async fn private_phase(
    args: &RunArgs,
    p: &mut Pairs,
    clock: Instant,
    window: usize,
    interval: Option<Duration>,
    tag: &str,
) -> Result<PhaseStats, String> {
    let conns = std::mem::take(&mut p.conns)
        .into_iter()
        .map(|c| c.ok_or("a pair's connection failed in an earlier phase"))
        .collect::<Result<Vec<_>, _>>()?;
    let plans = (0..conns.len())
        .map(|j| {
            (j % 2 == 0).then(|| SendPlan {
                sender: j as u32,
                kind: Kind::Private,
                to: p.to[j / 2].clone(),
                window,
                interval,
                tag: tag.to_owned(),
                fanout: 1,
            })
        })
        .collect();
    let receivers = (0..conns.len())
        .map(|j| if j % 2 == 0 { vec![j + 1] } else { vec![] })
        .collect::<Vec<_>>();
    let seconds = if interval.is_some() {
        args.step_seconds
    } else {
        args.seconds
    };
    let (back, stats) = run_phase(args, conns, plans, &receivers, seconds, clock).await;
    p.conns = back;
    Ok(stats)
}

async fn group(args: &RunArgs, run_tag: &str, clock: Instant) -> Result<PhaseStats, String> {
    let n = args.servers.len();
    let m = args.members;
    let names = (0..args.groups * m)
        .map(|i| format!("g{run_tag}n{i}"))
        .collect();
    let who = proto::identities(args.system, &args.servers[0], names).await?;
    let targets = who
        .iter()
        .enumerate()
        .map(|(i, w)| (args.servers[(i % m) % n].clone(), w.clone()))
        .collect();
    let mut conns = connect_all(args.system, targets).await?;
    let mut addresses = Vec::new();
    for g in 0..args.groups {
        let name = format!("grp{run_tag}n{g}");
        let range = g * m..(g + 1) * m;
        addresses.push(
            proto::make_group(args.system, &name, &who[range.clone()], &mut conns[range]).await?,
        );
    }
    let plans = (0..conns.len())
        .map(|i| {
            Some(SendPlan {
                sender: i as u32,
                kind: Kind::Group,
                to: addresses[i / m].clone(),
                window: args.group_window,
                interval: None,
                tag: "g".into(),
                fanout: (m - 1) as u64,
            })
        })
        .collect();
    let receivers = (0..conns.len())
        .map(|i| {
            let g = i / m;
            (g * m..(g + 1) * m).filter(|&j| j != i).collect()
        })
        .collect::<Vec<_>>();
    let (_, stats) = run_phase(args, conns, plans, &receivers, args.seconds, clock).await;
    Ok(stats)
}

/// Runs one phase over `conns` (worker `i` sends by `plans[i]`; `receivers[i]` are the
/// workers that must get each of its messages) and does the exactly-once accounting.
async fn run_phase(
    args: &RunArgs,
    conns: Vec<Ws>,
    plans: Vec<Option<SendPlan>>,
    receivers: &[Vec<usize>],
    seconds: f64,
    clock: Instant,
) -> (Vec<Option<Ws>>, PhaseStats) {
    let system = args.system;
    let server_pid = args.pid.map(|p| p.to_string());
    let server_cpu = || server_pid.as_deref().and_then(cpu_s);
    let cpu_at_start = (server_cpu(), cpu_s("self"));
    let begin = Instant::now() + Duration::from_millis(100);
    let until = begin + Duration::from_secs_f64(seconds);
    let phase = Arc::new(Phase {
        clock,
        begin,
        until,
        unique: Default::default(),
        expected: Default::default(),
        senders_done: Default::default(),
    });
    let senders = plans.iter().filter(|p| p.is_some()).count() as u64;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = conns
        .into_iter()
        .zip(plans)
        .map(|(ws, plan)| {
            tokio::spawn(worker::run(
                ws,
                system,
                plan,
                phase.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let mut problem = None;
    while phase.senders_done.load(Ordering::SeqCst) < senders {
        if Instant::now() > until + ACK_GRACE {
            problem = Some("some sends were never acknowledged".to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = phase.expected.load(Ordering::SeqCst);
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let got = phase.unique.load(Ordering::Relaxed);
        if got >= expected {
            break;
        }
        if got != last {
            (last, last_change) = (got, Instant::now());
        } else if last_change.elapsed() > drain_quiet() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Late duplicates would show up now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);
    let mut back = Vec::new();
    let mut outcomes = Vec::new();
    for t in tasks {
        match t.await {
            Ok((ws, out)) => {
                back.push(ws);
                outcomes.push(out);
            }
            Err(e) => {
                back.push(None);
                outcomes.push(Outcome {
                    problem: Some(format!("worker panicked: {e}")),
                    ..Default::default()
                });
            }
        }
    }
    let mut stats = account(&outcomes, receivers, begin - clock);
    stats.problem = stats.problem.or(problem);
    stats.server_cpu_s = server_cpu().zip(cpu_at_start.0).map(|(b, a)| b - a);
    stats.load_cpu_s = cpu_s("self").zip(cpu_at_start.1).map(|(b, a)| b - a);
    (back, stats)
}

/// Exactly-once accounting: for each sender and each of its receivers, every message the
/// sender had acknowledged must have arrived once.
fn account(outcomes: &[Outcome], receivers: &[Vec<usize>], begin: Duration) -> PhaseStats {
    let mut s = PhaseStats::default();
    let mut latencies = Vec::new();
    let mut last_us = 0;
    for (i, out) in outcomes.iter().enumerate() {
        s.sent += out.sent;
        s.refused += out.refused;
        if s.problem.is_none() {
            s.problem.clone_from(&out.problem);
        }
        for r in &receivers[i] {
            s.expected += out.sent;
            let unique = outcomes[*r].tracks.get(&(i as u32)).map_or(0, |t| t.unique);
            s.lost += out.sent.saturating_sub(unique);
            if std::env::var_os("BENCH_LOST_DETAIL").is_some() && unique < out.sent {
                // Worker numbers; `pairs` and `group` say which server each one is on.
                eprintln!(
                    "lost: sender {i} -> receiver {r}: sent {}, arrived {unique}",
                    out.sent
                );
            }
        }
        for t in out.tracks.values() {
            s.delivered += t.unique;
            s.dup += t.dup;
            s.out_of_order += t.out_of_order;
        }
        latencies.extend_from_slice(&out.latencies);
        last_us = last_us.max(out.last_delivery_us);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(f64::NAN, |&us| us as f64 / 1e3)
    };
    s.p50_ms = pct(0.50);
    s.p99_ms = pct(0.99);
    let span = (last_us as f64 - begin.as_micros() as f64).max(1.0) / 1e6;
    s.per_sec = s.delivered as f64 / span;
    s
}
