//! `results.json` and a self-contained `report.html` with inline SVG plots.
//!
//! The plots are hand-written SVG (polylines, axes, a legend): a plotting crate such as
//! `plotters` would add its font and color dependencies to a cold 2-core CI build for four
//! line charts.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::study::StudyRow;
use crate::cli::run::BatchSummary;

/// Simulated figures for a measured configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Simulated {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub runs_per_s: f64,
    pub sla_attainment: f64,
}

/// One measured configuration with its simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRow {
    pub workload: String,
    pub system: String,
    pub concurrency: usize,
    pub measured: BatchSummary,
    pub simulated: Option<Simulated>,
}

impl MeasuredRow {
    /// Relative errors (simulated - measured) / measured of p50, p95 and throughput.
    pub fn errors(&self) -> Option<[f64; 3]> {
        let s = self.simulated.as_ref()?;
        let m = &self.measured;
        let rel = |sim: f64, meas: f64| {
            if meas > 0.0 {
                (sim - meas) / meas
            } else {
                f64::NAN
            }
        };
        Some([
            rel(s.p50_ms, m.p50_ms),
            rel(s.p95_ms, m.p95_ms),
            rel(s.runs_per_s, m.runs_per_s),
        ])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub suite: String,
    /// 1-minute load average when the suite started and ended (other work on the machine).
    pub load_average: (f64, f64),
    pub profile: Option<String>,
    pub measured: Vec<MeasuredRow>,
    pub skipped: Vec<String>,
    pub study: Vec<StudyRow>,
}

const W: f64 = 560.0;
const H: f64 = 320.0;
const MARGIN: f64 = 56.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A series of points for a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line chart (or points only, with `lines` false) as an `<svg>` element.
pub fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series], lines: bool) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let fin = |v: f64| if v.is_finite() { v } else { 0.0 };
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    for &(x, y) in &all {
        x0 = x0.min(fin(x));
        x1 = x1.max(fin(x));
        y1 = y1.max(fin(y));
    }
    if all.is_empty() {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    let x0 = x0.min(0.0);
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 > 0.0 { y1 * 1.05 } else { 1.0 };
    let px = |x: f64| MARGIN + (fin(x) - x0) / (x1 - x0) * (W - 2.0 * MARGIN);
    let py = |y: f64| H - MARGIN + 10.0 - fin(y) / y1 * (H - 2.0 * MARGIN);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">",
        H + 20.0 * series.len().div_ceil(2) as f64
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        W / 2.0,
        esc(title)
    );
    let (bx, by) = (MARGIN, H - MARGIN + 10.0);
    let _ = write!(
        s,
        "<line x1=\"{bx}\" y1=\"{by}\" x2=\"{}\" y2=\"{by}\" stroke=\"black\"/>",
        W - MARGIN
    );
    let _ = write!(
        s,
        "<line x1=\"{bx}\" y1=\"{by}\" x2=\"{bx}\" y2=\"{}\" stroke=\"black\"/>",
        MARGIN - 10.0
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let (xv, yv) = (x0 + f * (x1 - x0), f * y1);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            px(xv),
            by + 14.0,
            tick(xv)
        );
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            bx - 4.0,
            py(yv) + 4.0,
            tick(yv)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        W / 2.0,
        by + 30.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        "<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}</text>",
        H / 2.0,
        H / 2.0,
        esc(y_label)
    );
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let dash = if ser.dashed {
            " stroke-dasharray=\"5,3\""
        } else {
            ""
        };
        if lines && ser.points.len() > 1 {
            let pts: Vec<String> = ser
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = write!(
                s,
                "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.8\"{dash} points=\"{}\"/>",
                pts.join(" ")
            );
        }
        for &(x, y) in &ser.points {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                px(x),
                py(y)
            );
        }
        let (lx, ly) = (
            MARGIN + (i % 2) as f64 * (W / 2.0 - 20.0),
            H + 4.0 + 20.0 * (i / 2) as f64,
        );
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            ly - 4.0,
            lx + 16.0,
            ly + 1.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn tick(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 10_000.0) {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{v:.1e}")
    }
}

/// The HTML report: tables of the results and four SVG plots.
pub fn html(r: &Results) -> String {
    let mut plots = Vec::new();
    // Latency CDFs of the measured runs.
    let cdf: Vec<Series> = r
        .measured
        .iter()
        .map(|m| {
            let n = m.measured.latencies.len() as f64;
            Series {
                name: format!("{} {} c={}", m.workload, m.system, m.concurrency),
                points: m
                    .measured
                    .latencies
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (l / 1e3, (i + 1) as f64 / n))
                    .collect(),
                dashed: m.system != "agentc",
            }
        })
        .collect();
    plots.push(chart(
        "Latency CDF (measured)",
        "latency (s)",
        "fraction of runs",
        &cdf,
        true,
    ));
    let mut tput = Vec::new();
    let mut sla = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    for m in &r.measured {
        let k = (m.workload.clone(), m.system.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (w, sys) in &keys {
        let rows: Vec<&MeasuredRow> = r
            .measured
            .iter()
            .filter(|m| &m.workload == w && &m.system == sys)
            .collect();
        let pts = |f: &dyn Fn(&MeasuredRow) -> Option<f64>| -> Vec<(f64, f64)> {
            rows.iter()
                .filter_map(|m| f(m).map(|v| (m.concurrency as f64, v)))
                .collect()
        };
        tput.push(Series {
            name: format!("{w} {sys} measured"),
            points: pts(&|m| Some(m.measured.runs_per_s)),
            dashed: false,
        });
        tput.push(Series {
            name: format!("{w} {sys} simulated"),
            points: pts(&|m| m.simulated.as_ref().map(|s| s.runs_per_s)),
            dashed: true,
        });
        sla.push(Series {
            name: format!("{w} {sys} measured"),
            points: pts(&|m| Some(m.measured.sla_met as f64 / m.measured.runs.max(1) as f64)),
            dashed: false,
        });
        sla.push(Series {
            name: format!("{w} {sys} simulated"),
            points: pts(&|m| m.simulated.as_ref().map(|s| s.sla_attainment)),
            dashed: true,
        });
    }
    plots.push(chart(
        "Throughput vs concurrency",
        "runs in flight",
        "runs/s",
        &tput,
        true,
    ));
    plots.push(chart(
        "SLA attainment vs load",
        "runs in flight",
        "fraction within SLA",
        &sla,
        true,
    ));
    let pareto: Vec<Series> = r
        .study
        .iter()
        .map(|row| Series {
            name: row.workload.clone(),
            points: pareto_front(row),
            dashed: false,
        })
        .collect();
    plots.push(chart(
        "Placements: cost vs sustainable load (Pareto front per workload)",
        "cluster $/hour",
        "max runs/s at the SLA attainment target",
        &pareto,
        true,
    ));
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>agentc bench: {}</title><style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}</style></head><body>\n<h1>agentc bench: {}</h1>\n<p>1-minute load average at start / end: {:.2} / {:.2} (other processes on the machine make measured figures noisy). Profile: {}.</p>\n<pre>{}</pre>\n",
        esc(&r.suite),
        esc(&r.suite),
        r.load_average.0,
        r.load_average.1,
        esc(r.profile.as_deref().unwrap_or("none")),
        esc(&super::table(r))
    );
    for p in plots {
        out.push_str("<div>");
        out.push_str(&p);
        out.push_str("</div>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// Candidates not dominated by a cheaper one with at least their load, sorted by $/hour.
fn pareto_front(row: &StudyRow) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = row
        .candidates
        .iter()
        .filter_map(|c| c.2.map(|rps| (c.1, rps)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in pts {
        if front.last().is_none_or(|l| p.1 > l.1) {
            front.push(p);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> Results {
        let measured = BatchSummary {
            runs: 2,
            runs_per_s: 0.5,
            p50_ms: 1000.0,
            p95_ms: 2000.0,
            sla_met: 1,
            latencies: vec![1000.0, 2000.0],
            ..BatchSummary::default()
        };
        Results {
            suite: "t<1>".into(),
            load_average: (1.0, 2.0),
            profile: None,
            measured: vec![MeasuredRow {
                workload: "w".into(),
                system: "agentc".into(),
                concurrency: 2,
                measured,
                simulated: Some(Simulated {
                    p50_ms: 1100.0,
                    p95_ms: 1800.0,
                    runs_per_s: 0.6,
                    sla_attainment: 1.0,
                }),
            }],
            skipped: vec!["x: failed".into()],
            study: vec![StudyRow {
                workload: "w".into(),
                homogeneous: None,
                heterogeneous: None,
                saving: None,
                candidates: vec![
                    ("a".into(), 1.0, Some(2.0), true),
                    ("b".into(), 2.0, Some(1.0), false),
                    ("c".into(), 3.0, Some(5.0), false),
                    ("d".into(), 0.5, None, false),
                ],
            }],
        }
    }

    #[test]
    fn results_round_trip_and_the_report_holds_the_plots() {
        let r = results();
        let json = serde_json::to_string_pretty(&r).expect("json");
        let back: Results = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
        let errors = r.measured[0].errors().expect("simulated");
        assert!((errors[0] - 0.1).abs() < 1e-12 && (errors[1] + 0.1).abs() < 1e-12);
        assert!((errors[2] - 0.2).abs() < 1e-12);
        let html = html(&r);
        assert_eq!(html.matches("<svg ").count(), 4);
        assert_eq!(html.matches("</svg>").count(), 4);
        assert!(html.contains("agentc bench: t&lt;1&gt;"));
        // Lines: the CDF of two runs and the front (a, c); one concurrency level gives points only.
        assert_eq!(html.matches("class=\"series\"").count(), 2);
        assert_eq!(pareto_front(&r.study[0]), vec![(1.0, 2.0), (3.0, 5.0)]);
        assert!(
            !html.contains("http://") || html.matches("http://").count() == 4,
            "no external resources"
        );
    }
}
