//! The side-by-side table (Markdown, printed) and the chart (plain SVG text) of a results file.

use std::fmt::Write as _;
use std::path::Path;

use crate::proto::System;
use crate::scenario::{PhaseStats, RunResult};

/// Line colours of the chart, one per row in order (colour-blind-safe Okabe-Ito palette).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Reads `results`, prints the table, writes the chart to `svg` if given.
pub fn report(results: &Path, svg: Option<&Path>) -> Result<(), String> {
    let text =
        std::fs::read_to_string(results).map_err(|e| format!("{}: {e}", results.display()))?;
    let rows = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<RunResult>(l).map_err(|e| format!("{l}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", table(&rows));
    if let Some(path) = svg {
        std::fs::write(path, chart(&rows)).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("\nchart: {}", path.display());
    }
    Ok(())
}

fn per_sec(s: Option<&PhaseStats>) -> Option<f64> {
    s.map(|s| s.per_sec).filter(|v| v.is_finite())
}

/// `1234567.0` → `1,234,567`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{} ms", thousands(v))
    }
}

/// The Markdown table: one row per system, ratios against Socket.IO with as many nodes (or
/// one node when there is no such row).
pub fn table(rows: &[RunResult]) -> String {
    let socketio = |nodes: usize| {
        rows.iter()
            .find(|r| r.system == System::Socketio && r.nodes == nodes)
            .or_else(|| {
                rows.iter()
                    .find(|r| r.system == System::Socketio && r.nodes == 1)
            })
    };
    let mut out = String::new();
    out.push_str("| system | private deliveries/s | p99 | group deliveries/s | p99 | idle KiB/conn | MiB after log-ins | lost | dup | × Socket.IO (private / group) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut notes = Vec::new();
    for r in rows {
        let phases = [r.private.as_ref(), r.group.as_ref()]
            .into_iter()
            .flatten()
            .chain(r.steps.iter().map(|s| &s.stats));
        let (mut lost, mut dup, mut ooo, mut refused) = (0, 0, 0, 0);
        for p in phases {
            lost += p.lost;
            dup += p.dup;
            ooo += p.out_of_order;
            refused += p.refused;
            if let Some(problem) = &p.problem {
                notes.push(format!("{}: {problem}", r.label));
            }
        }
        if ooo > 0 || refused > 0 {
            notes.push(format!(
                "{}: {ooo} out of order, {refused} refused",
                r.label
            ));
        }
        let ratio = |mine: Option<f64>, theirs: Option<f64>| match (mine, theirs) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let base = socketio(r.nodes);
        let ratios = format!(
            "{} / {}",
            ratio(
                per_sec(r.private.as_ref()),
                base.and_then(|b| per_sec(b.private.as_ref()))
            ),
            ratio(
                per_sec(r.group.as_ref()),
                base.and_then(|b| per_sec(b.group.as_ref()))
            ),
        );
        let cell = |s: Option<&PhaseStats>| match s {
            Some(s) => (thousands(s.per_sec), ms(s.p99_ms)),
            None => ("–".into(), "–".into()),
        };
        let (pv, pp) = cell(r.private.as_ref());
        let (gv, gp) = cell(r.group.as_ref());
        let idle = r
            .idle
            .as_ref()
            .map_or("–".into(), |i| format!("{:.1}", i.kib_per_conn));
        // The whole process before the idle connections: what the accounts' log-ins left.
        let logged_in = r.idle.as_ref().map_or("–".into(), |i| {
            format!("{:.0}", i.rss_before_kib as f64 / 1024.0)
        });
        let _ = writeln!(
            out,
            "| {} | {pv} | {pp} | {gv} | {gp} | {idle} | {logged_in} | {lost} | {dup} | {ratios} |",
            r.label
        );
    }
    if let Some(r) = rows.first() {
        let idle = rows
            .iter()
            .find_map(|r| r.idle.as_ref())
            .map_or(0, |i| i.connections);
        let _ = writeln!(
            out,
            "\n{} sender→recipient pairs, {} sends in flight each; {} groups of {} members, {} in flight each; {:.0} s of sending per scenario; {idle} idle connections. Lost and dup count every scenario and offered-load step of the row.",
            r.pairs, r.window, r.groups, r.members, r.group_window, r.seconds
        );
    }
    let loads: Vec<String> = rows
        .iter()
        .filter_map(|r| r.load_avg.map(|l| format!("{l:.1}")))
        .collect();
    if !loads.is_empty() {
        let _ = writeln!(
            out,
            "Machine load average (1 min) as each row started, in order: {}.",
            loads.join(", ")
        );
    }
    for n in notes {
        let _ = writeln!(out, "- {n}");
    }
    out
}

/// Maps a value onto a log axis.
struct LogAxis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl LogAxis {
    fn new(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Self {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            (lo, hi) = (1.0, 10.0);
        }
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
        LogAxis { lo, hi, from, to }
    }

    fn at(&self, v: f64) -> f64 {
        let t = (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.from + t * (self.to - self.from)
    }

    /// Tick values: 1, 2, 5 per decade.
    fn ticks(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut decade = self.lo;
        while decade <= self.hi * 1.0001 {
            for m in [1.0, 2.0, 5.0] {
                let v = decade * m;
                if v >= self.lo * 0.9999 && v <= self.hi * 1.0001 {
                    out.push(v);
                }
            }
            decade *= 10.0;
        }
        out
    }
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v}")
    } else {
        format!("{v:.1}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two panels, offered load on both x axes (log): delivered per second (left) and p99
/// delivery latency (right), one line per system.
pub fn chart(rows: &[RunResult]) -> String {
    let (w, h) = (960.0, 470.0);
    let panel_w = 380.0;
    let (top, bottom) = (50.0, 330.0);
    let lefts = [70.0, 550.0];
    let offered = || {
        rows.iter()
            .flat_map(|r| r.steps.iter().map(|s| s.offered as f64))
    };
    let x_axes = lefts.map(|l| LogAxis::new(offered(), l, l + panel_w));
    let y_tp = LogAxis::new(
        offered().chain(
            rows.iter()
                .flat_map(|r| r.steps.iter().map(|s| s.stats.per_sec)),
        ),
        bottom,
        top,
    );
    let y_lat = LogAxis::new(
        rows.iter()
            .flat_map(|r| r.steps.iter().map(|s| s.stats.p99_ms)),
        bottom,
        top,
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let titles = [
        "Delivered per second against offered load",
        "p99 delivery latency (ms) against offered load",
    ];
    for (panel, (x, title)) in x_axes.iter().zip(titles).enumerate() {
        let y = if panel == 0 { &y_tp } else { &y_lat };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="30" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>"#,
            x.from + panel_w / 2.0
        );
        for t in x.ticks() {
            let px = x.at(t);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}" stroke="#e4e4e4"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                bottom + 16.0,
                short(t)
            );
        }
        for t in y.ticks() {
            let py = y.at(t);
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x.from,
                x.to,
                x.from - 6.0,
                py + 4.0,
                short(t)
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{top}" width="{panel_w}" height="{}" fill="none" stroke="#888"/>"##,
            x.from,
            bottom - top
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">offered load (deliveries/s, log)</text>"#,
            x.from + panel_w / 2.0,
            bottom + 34.0
        );
        if panel == 0 {
            // Where delivered equals offered.
            let (a, b) = (x.lo.max(y_tp.lo), x.hi.min(y_tp.hi));
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4 4"/>"##,
                x.at(a),
                y.at(a),
                x.at(b),
                y.at(b)
            );
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (panel, x) in x_axes.iter().enumerate() {
            let points: Vec<(f64, f64)> = r
                .steps
                .iter()
                .filter_map(|st| {
                    let v = if panel == 0 {
                        st.stats.per_sec
                    } else {
                        st.stats.p99_ms
                    };
                    let y = if panel == 0 { &y_tp } else { &y_lat };
                    (v.is_finite() && v > 0.0).then(|| (x.at(st.offered as f64), y.at(v)))
                })
                .collect();
            let path = points
                .iter()
                .map(|(px, py)| format!("{px:.1},{py:.1}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                r#"<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>"#
            );
            for (px, py) in points {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="{colour}"/>"#
                );
            }
        }
        let (lx, ly) = (70.0 + (i % 3) as f64 * 300.0, 395.0 + (i / 3) as f64 * 22.0);
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            esc(&r.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }

    #[test]
    fn log_axis_ticks_span_decades() {
        let a = LogAxis::new([1500.0, 90_000.0].into_iter(), 0.0, 100.0);
        assert_eq!(a.lo, 1000.0);
        assert_eq!(a.hi, 100_000.0);
        assert_eq!(a.ticks().first(), Some(&1000.0));
        assert!((a.at(10_000.0) - 50.0).abs() < 1e-9);
    }
}
