//! End to end: the real loadtest binary spawns the real mock provider and drives it in both
//! loop modes; the JSON report must show successes, no errors, and percentiles for both targets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::ringway_bin;

use serde_json::Value;

fn run_loadtest(name: &str, args: &[&str]) -> Value {
    let ringway = ringway_bin();
    let dir = std::env::temp_dir().join(format!("loadtest-e2e-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let svg = dir.join("out.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--spawn-mock",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--phases",
            "1",
        ])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .env("RINGWAY_BIN", &ringway)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("latency ms"), "{stdout}");
    assert!(stdout.contains("added ms"), "{stdout}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    check_plot(&svg);
    let _ = std::fs::remove_dir_all(&dir);
    doc
}

fn check_plot(svg: &Path) {
    let text = std::fs::read_to_string(svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.matches("<polyline").count() >= 2);
}

fn check_targets(doc: &Value, stream: bool) {
    for role in ["target", "compare"] {
        let t = &doc["targets"][role];
        assert!(t["ok"].as_u64().unwrap() > 0, "{role}: {t}");
        assert_eq!(t["errors"], 0, "{role}: {}", t["errors_by_kind"]);
        for p in ["p50", "p99"] {
            assert!(t["latency_ms"][p].as_f64().unwrap() > 0.0, "{role} {p}");
            if stream {
                assert!(t["ttft_ms"][p].as_f64().unwrap() > 0.0, "{role} ttft {p}");
            }
        }
        // The spawned mock is both targets here, so its process is measured.
        assert!(t["process"]["vm_hwm_kib"].as_u64().unwrap() > 0);
    }
    assert!(doc["compare"]["added_latency_ms"]["p50"].is_f64());
    assert!(doc["compare"]["throughput_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn closed_loop_against_spawned_mock() {
    let doc = run_loadtest("closed", &["--conns", "2"]);
    assert_eq!(doc["config"]["mode"], "closed");
    check_targets(&doc, false);
}

#[test]
fn open_loop_streaming_against_spawned_mock() {
    let doc = run_loadtest(
        "open",
        &["--rate", "50", "--stream", "--format", "anthropic"],
    );
    assert_eq!(doc["config"]["mode"], "open");
    // 50 req/s for 2 s, give or take a request at the window edges.
    let ok = doc["targets"]["target"]["ok"].as_u64().unwrap();
    assert!((95..=101).contains(&ok), "{ok}");
    check_targets(&doc, true);
}
