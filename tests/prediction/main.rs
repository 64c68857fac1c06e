//! The simulator against a real run: `agentc bench` measures a small workflow on this machine
//! (calibrating with `agentc profile` first) and simulates the same configuration; the predicted
//! p50 latency and throughput must be within a factor of two of the measured ones. The machine
//! may be shared, so the bound is generous; docs/placement.md has the exact figures.
//!
//! A test binary of its own: cargo runs test binaries one at a time, so the device profile it
//! calibrates with and the runs it measures see the same machine, not one shared with the
//! end-to-end tests running in parallel (which made the ratio swing past 2x).

use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn agentc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("agentc runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How far a prediction may be from the measurement, as a ratio either way.
const MAX_RATIO: f64 = 2.0;

#[test]
fn simulated_p50_and_throughput_are_within_2x_of_a_real_run() {
    if !agentc_runtime::bundled::present(&root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().display().to_string();
    let out = agentc(&[
        "bench",
        "tests/fixtures/suites/validate.yaml",
        "-o",
        &out_dir,
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let results: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results.json")).expect("results.json written"),
    )
    .expect("results.json is JSON");
    let rows = results["measured"].as_array().expect("measured rows");
    assert_eq!(rows.len(), 1, "one configuration measured: {stderr}");
    let row = &rows[0];
    assert_eq!(row["measured"]["runs"], 4);
    assert_eq!(row["measured"]["failed"], 0);
    let figure = |side: &str, key: &str| {
        row[side][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{side}.{key} in {row}"))
    };
    for (measured, simulated) in [("p50_ms", "p50_ms"), ("runs_per_s", "runs_per_s")] {
        let m = figure("measured", measured);
        let s = figure("simulated", simulated);
        assert!(
            m > 0.0 && s > 0.0,
            "{measured}: measured {m}, simulated {s}"
        );
        let ratio = s / m;
        assert!(
            (1.0 / MAX_RATIO..=MAX_RATIO).contains(&ratio),
            "{measured}: simulated {s:.3} vs measured {m:.3} (x{ratio:.2}), load {}",
            results["load_average"]
        );
    }
}
