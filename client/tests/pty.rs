//! Smoke test of the real `chorus-tui` binary in a pseudo-terminal (util-linux `script`): it
//! draws the seed's menu, `?` shows the keys, `3` quits cleanly and gives the terminal back.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// The terminal output as plain text: escape sequences and spaces dropped (the terminal
/// backend moves the cursor over blank cells instead of writing spaces).
fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte; others: ESC and one more char.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Waits until `text` (spaces ignored) shows in the output after byte `from`; returns the
/// output's length then.
fn wait_for(out: &Arc<Mutex<Vec<u8>>>, from: usize, text: &str) -> usize {
    let end = Instant::now() + DEADLINE;
    let want: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    loop {
        let (seen, len) = {
            let all = out.lock().unwrap();
            (plain(&all[from.min(all.len())..]), all.len())
        };
        if seen.contains(&want) {
            return len;
        }
        assert!(
            Instant::now() < end,
            "no {text:?} on the terminal within {DEADLINE:?}; it showed:\n{seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn binary_shows_the_menu_in_a_pty_and_quits() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but `script` (util-linux) is missing"
        );
        eprintln!("\n######## SKIPPED (no `script`): the pty smoke test ########\n");
        return;
    }
    let config = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_chorus-tui");
    // Nothing listens there: the menu needs no server.
    let cmd = format!("stty rows 30 cols 100; exec '{bin}' --server http://127.0.0.1:9");
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("CHORUS_TUI_CONFIG_DIR", config.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn script");
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                return;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });

    let at = wait_for(&out, 0, "1. Log in");
    wait_for(&out, 0, "2. Register");
    wait_for(&out, 0, "3. Quit");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"?").unwrap();
    stdin.flush().unwrap();
    wait_for(&out, at, "switch between the list and the composer");
    stdin.write_all(b" 3").unwrap();
    stdin.flush().unwrap();

    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("chorus-tui did not quit on `3`");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    // The alternate screen was left again (crossterm's `LeaveAlternateScreen`).
    let all = out.lock().unwrap().clone();
    assert!(
        all.windows(8).any(|w| w == b"\x1b[?1049l"),
        "the terminal was not restored"
    );
}
