//! Network namespaces for tests that need more than loopback allows: a namespace of the test's
//! own (`ip netns add chorus-<random>`) with its loopback up, where the test re-runs its own
//! binary, so whatever it starts there (nodes, databases, iptables rules) is invisible to the
//! machine and to other tests, and vanishes with the namespace.
//!
//! How a suite uses it: the outer `#[test]` checks [`unavailable`], makes a [`Netns`] and calls
//! [`Netns::run_inner`] with the name of an `#[ignore]`d inner test, which runs only inside
//! (it sees [`INNER_ENV`] set). A guard deletes the namespace (and kills anything left in it)
//! also when the test fails.
//!
//! iptables: Debian 12's default `iptables` (1.8.9, nf_tables backend) works inside the
//! namespace on this kernel, and so does `iptables-legacy`; [`Netns::drop_udp`] tries
//! `iptables` first and falls back to `iptables-legacy`. (The kernel has no `tc netem`, hence
//! iptables `statistic`.)

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// The full name libtest gives the test `name` of the module `module` (its `module_path!()`):
/// the module path without the crate's own name, e.g.
/// `cluster_netns::lossy_cluster_inside_namespace` in the `cluster` binary. `--exact` needs it.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

/// Set only for the inner run inside the namespace.
pub const INNER_ENV: &str = "CHORUS_NETNS_INNER";

/// Whether this process is the inner run (inside the test's namespace).
pub fn inside() -> bool {
    std::env::var_os(INNER_ENV).is_some()
}

/// Why a namespace test cannot run here, if it cannot: not root, or one of `tools` (each a
/// command and an argument that makes it print its version) is missing or fails.
pub fn unavailable(tools: &[[&str; 2]]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and iptables need root)".into());
    }
    let base = [["ip", "-V"], ["iptables", "--version"]];
    for tool in base.iter().chain(tools) {
        match Command::new(tool[0]).arg(tool[1]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Some(format!("`{} {}` failed: {:?}", tool[0], tool[1], o.status)),
            Err(e) => return Some(format!("`{}` is not available: {e}", tool[0])),
        }
    }
    None
}

/// Skips (a loud warning) or, under `CI`, fails: `what` cannot run because of `why`.
/// Returns normally only when skipping.
pub fn skip_or_fail(what: &str, why: &str, how: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what} cannot run: {why}");
    }
    eprintln!(
        "\n################################################################\n\
         # WARNING: SKIPPED {what}: {why}.\n\
         # {how}\n\
         ################################################################\n"
    );
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The iptables rule dropping a random share `probability` ("0.2") of incoming UDP datagrams.
fn loss_rule(probability: &str) -> [&str; 12] {
    [
        "-A",
        "INPUT",
        "-p",
        "udp",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        probability,
        "-j",
        "DROP",
    ]
}

/// Adds the UDP loss rule in the current namespace (the inner run is already inside):
/// `iptables`, else `iptables-legacy`; returns the one that worked.
pub fn drop_udp_here(probability: &str) -> &'static str {
    let mut errors = Vec::new();
    for bin in ["iptables", "iptables-legacy"] {
        match Command::new(bin).args(loss_rule(probability)).output() {
            Ok(o) if o.status.success() => return bin,
            Ok(o) => errors.push(format!("{bin}: {}", String::from_utf8_lossy(&o.stderr))),
            Err(e) => errors.push(format!("{bin}: {e}")),
        }
    }
    panic!("cannot add the packet-loss rule: {errors:?}");
}

/// The packet counter of the loss rule in `iptables -L INPUT -v -n -x` output.
pub fn dropped_packets(listing: &str) -> Option<u64> {
    listing
        .lines()
        .find(|l| l.contains("statistic"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A network namespace that is deleted (with whatever still runs in it) when dropped.
pub struct Netns {
    pub name: String,
}

/// How the inner run ended.
pub struct Inner {
    /// `None` when it hung past its deadline (and was killed).
    pub status: Option<ExitStatus>,
    /// Everything it printed (stdout and stderr together).
    pub output: String,
    /// Where that output is (kept until the caller removes it).
    pub log: PathBuf,
}

impl Netns {
    pub fn create() -> Netns {
        let name = format!(
            "chorus-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Adds the loss rule with `iptables`, else `iptables-legacy`; returns the one that worked.
    pub fn drop_udp(&self, probability: &str) -> &'static str {
        let mut errors = Vec::new();
        for bin in ["iptables", "iptables-legacy"] {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.name, bin])
                .args(loss_rule(probability))
                .output();
            match out {
                Ok(o) if o.status.success() => return bin,
                Ok(o) => errors.push(format!("{bin}: {}", String::from_utf8_lossy(&o.stderr))),
                Err(e) => errors.push(format!("{bin}: {e}")),
            }
        }
        panic!("cannot add the packet-loss rule: {errors:?}");
    }

    /// Re-runs this test binary inside the namespace, only the (ignored) test `inner` (its full
    /// name, module path included: see [`test_name`]), with
    /// [`INNER_ENV`] and `env` set; its output goes to a file in `log_dir`. Waits at most
    /// `deadline`, then kills it.
    pub fn run_inner(
        &self,
        inner: &str,
        env: &[(&str, String)],
        log_dir: &Path,
        deadline: Duration,
    ) -> Inner {
        let exe = std::env::current_exe().expect("current exe");
        let log_path = log_dir.join(format!("{}-inner.log", self.name));
        let log = std::fs::File::create(&log_path).expect("inner log");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(&exe)
            .args([
                "--exact",
                inner,
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(INNER_ENV, "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("dup log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("run the inner test in the namespace");
        // Waited for on a thread, so the deadline needs no polling.
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(deadline) {
            Ok(status) => Some(status.expect("wait for the inner test")),
            Err(_) => {
                // SAFETY: kill(2) on the pid of the child this test started.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                None
            }
        };
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        Inner {
            status,
            output,
            log: log_path,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still running in there was started by this test (a hung inner run).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .status()
        {
            Ok(s) if s.success() => {}
            other => eprintln!("warning: ip netns del {}: {other:?}", self.name),
        }
    }
}
