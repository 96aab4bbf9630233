//! Results: the per-target record of a run, the human-readable table, the JSON document and
//! the plot series. Pure formatting; the caller writes the output.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::stats::{added, curve, ratio, summarize, Added, Stats, Summary, PERCENTILES};
use crate::svg::Series;

/// Plot and JSON curve resolution: points per nine on the percentile axis.
pub const CURVE_STEPS_PER_NINE: u32 = 10;

/// How the run was configured, for the header line and the JSON `config`.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Closed-loop connections.
    pub conns: Option<usize>,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// Load threads.
    pub threads: usize,
    /// `openai` or `anthropic`.
    pub format: &'static str,
    /// Body preset name.
    pub body: &'static str,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// Streaming requests.
    pub stream: bool,
    /// Model sent.
    pub model: String,
    /// Measured time per phase.
    pub duration: Duration,
    /// Warm-up per phase.
    pub warmup: Duration,
    /// Phases per target.
    pub phases: u32,
}

/// One measured phase of one target.
#[derive(Clone, Debug)]
pub struct PhaseResult {
    /// Position in the run (0-based, counting both targets' phases).
    pub index: u32,
    /// Measured seconds.
    pub seconds: f64,
    /// Successes.
    pub ok: u64,
    /// Failures.
    pub errors: u64,
}

/// Everything measured for one target over its phases.
#[derive(Clone, Debug)]
pub struct TargetResult {
    /// `target` or `compare`.
    pub role: &'static str,
    /// The URL driven.
    pub url: String,
    /// Merged measurements.
    pub stats: Stats,
    /// Per-phase counts.
    pub phases: Vec<PhaseResult>,
    /// Process measured in this target's phases.
    pub pid: Option<u32>,
    /// That process's CPU time over the measured windows.
    pub cpu: Option<Duration>,
    /// Peak and current resident memory of that process at the end, KiB.
    pub memory: Option<(u64, u64)>,
    /// This load generator's own CPU time over the measured windows.
    pub loadgen_cpu: Option<Duration>,
    /// Wall time of the CPU sampling intervals: measurement start until the phase's last
    /// counted request finished.
    pub cpu_wall: Duration,
}

impl TargetResult {
    /// Measured seconds over all phases.
    pub fn seconds(&self) -> f64 {
        self.phases.iter().map(|p| p.seconds).sum()
    }

    /// Successes per second.
    pub fn rate(&self) -> f64 {
        ratio(self.stats.ok as f64, self.seconds()).unwrap_or(0.0)
    }

    /// Process CPU microseconds per successful request.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        ratio(self.cpu?.as_secs_f64() * 1e6, self.stats.ok as f64)
    }

    /// Average cores the process used while measured.
    pub fn cpu_cores(&self) -> Option<f64> {
        ratio(self.cpu?.as_secs_f64(), self.cpu_wall.as_secs_f64())
    }

    /// Average cores the load generator used while measured.
    pub fn loadgen_cores(&self) -> Option<f64> {
        ratio(self.loadgen_cpu?.as_secs_f64(), self.cpu_wall.as_secs_f64())
    }
}

/// The target-versus-compare numbers, when there are two targets.
#[derive(Clone, Copy, Debug)]
pub struct Comparison {
    /// Added total latency.
    pub latency: Option<Added>,
    /// Added time to first token.
    pub ttft: Option<Added>,
    /// Added inter-token gap.
    pub itl: Option<Added>,
    /// Target successes per second over compare successes per second.
    pub throughput_ratio: Option<f64>,
}

/// Compare the first target against the second.
pub fn compare(target: &TargetResult, other: &TargetResult) -> Comparison {
    let pair = |a: &hdrhistogram::Histogram<u64>, b: &hdrhistogram::Histogram<u64>| {
        Some(added(&summarize(a)?, &summarize(b)?))
    };
    Comparison {
        latency: pair(&target.stats.latency, &other.stats.latency),
        ttft: pair(&target.stats.ttft, &other.stats.ttft),
        itl: pair(&target.stats.itl, &other.stats.itl),
        throughput_ratio: ratio(target.rate(), other.rate()),
    }
}

fn header(info: &RunInfo) -> String {
    let load = match (info.conns, info.rate) {
        (Some(c), _) => format!("closed loop, {c} conns"),
        (None, Some(r)) => format!("open loop, {r} req/s"),
        (None, None) => info.mode.to_owned(),
    };
    format!(
        "loadtest: {load}, {} thread(s) | {} {} body ({} B), {}, model {} | {} phase(s) of {}s per target, warm-up {}s",
        info.threads,
        info.format,
        info.body,
        info.body_bytes,
        if info.stream { "streaming" } else { "non-streaming" },
        info.model,
        info.phases,
        info.duration.as_secs_f64(),
        info.warmup.as_secs_f64(),
    )
}

fn summary_row(out: &mut String, name: &str, s: Option<Summary>) {
    let _ = write!(out, "  {name:<9}");
    match s {
        Some(s) => {
            for v in s.pct {
                let _ = write!(out, " {v:>9.3}");
            }
            let _ = writeln!(out, " {:>9.3} {:>9.3}", s.max, s.mean);
        }
        None => {
            let _ = writeln!(out, " {:>9}", "-");
        }
    }
}

fn pct_header(out: &mut String, title: &str, with_mean: bool) {
    let _ = write!(out, "{title:<11}");
    for (label, _) in PERCENTILES {
        let _ = write!(out, " {label:>9}");
    }
    if with_mean {
        let _ = writeln!(out, " {:>9} {:>9}", "max", "mean");
    } else {
        let _ = writeln!(out, " {:>9}", "max");
    }
}

fn added_row(out: &mut String, name: &str, a: &Added) {
    let _ = write!(out, "  {name:<9}");
    for v in a.pct {
        let _ = write!(out, " {v:>+9.3}");
    }
    let _ = writeln!(out, " {:>+9.3}", a.max);
}

/// The human-readable report.
pub fn table(info: &RunInfo, targets: &[TargetResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", header(info));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<11} {:>10} {:>10} {:>8}  url",
        "", "ok", "ok/s", "errors"
    );
    for t in targets {
        let _ = writeln!(
            out,
            "  {:<9} {:>10} {:>10.1} {:>8}  {}",
            t.role,
            t.stats.ok,
            t.rate(),
            t.stats.error_total(),
            t.url
        );
    }
    let _ = writeln!(out);
    pct_header(&mut out, "latency ms", true);
    for t in targets {
        summary_row(&mut out, t.role, summarize(&t.stats.latency));
    }
    if info.stream {
        pct_header(&mut out, "TTFT ms", true);
        for t in targets {
            summary_row(&mut out, t.role, summarize(&t.stats.ttft));
        }
        pct_header(&mut out, "ITL ms", true);
        for t in targets {
            summary_row(&mut out, t.role, summarize(&t.stats.itl));
        }
    }
    if let [target, other] = targets {
        let c = compare(target, other);
        let _ = writeln!(out);
        pct_header(&mut out, "added ms", false);
        if let Some(a) = &c.latency {
            added_row(&mut out, "latency", a);
        }
        if let Some(a) = &c.ttft {
            added_row(&mut out, "TTFT", a);
        }
        if let Some(a) = &c.itl {
            added_row(&mut out, "ITL", a);
        }
        if let Some(r) = c.throughput_ratio {
            let _ = writeln!(out, "throughput ratio target/compare: {r:.3}");
        }
    }
    let measured: Vec<&TargetResult> = targets.iter().filter(|t| t.pid.is_some()).collect();
    if !measured.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<11} {:>8} {:>14} {:>7} {:>12} {:>12}",
            "process", "pid", "cpu/request", "cores", "VmHWM", "VmRSS"
        );
        for t in measured {
            let opt = |v: Option<f64>, unit: &str, prec: usize| {
                v.map_or("-".to_owned(), |v| format!("{v:.prec$}{unit}"))
            };
            let mem = |i: usize| {
                t.memory.map_or("-".to_owned(), |(hwm, rss)| {
                    let kib = if i == 0 { hwm } else { rss };
                    format!("{:.1} MiB", kib as f64 / 1024.0)
                })
            };
            let _ = writeln!(
                out,
                "  {:<9} {:>8} {:>14} {:>7} {:>12} {:>12}",
                t.role,
                t.pid.map_or("-".to_owned(), |p| p.to_string()),
                opt(t.cpu_us_per_request(), " µs", 1),
                opt(t.cpu_cores(), "", 2),
                mem(0),
                mem(1)
            );
        }
    }
    let _ = writeln!(out);
    for t in targets {
        let phases: Vec<String> = t
            .phases
            .iter()
            .map(|p| format!("{:.0}", ratio(p.ok as f64, p.seconds).unwrap_or(0.0)))
            .collect();
        let _ = write!(
            out,
            "{}: ok/s per phase [{}]; load generator {} cores",
            t.role,
            phases.join(", "),
            t.loadgen_cores()
                .map_or("-".to_owned(), |c| format!("{c:.2}"))
        );
        if let Some(s) = summarize(&t.stats.start_delay) {
            let _ = write!(
                out,
                "; send delay p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
                s.pct[0], s.pct[2], s.max
            );
        }
        let _ = writeln!(out);
        if !t.stats.errors.is_empty() {
            let kinds: Vec<String> = t
                .stats
                .errors
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            let _ = writeln!(out, "  errors: {}", kinds.join(" "));
        }
    }
    out
}

/// Milliseconds rounded to the microsecond, the histograms' unit: more digits are noise.
fn ms_json(v: f64) -> Value {
    json!((v * 1000.0).round() / 1000.0)
}

fn summary_json(s: Option<Summary>) -> Value {
    let Some(s) = s else { return Value::Null };
    let mut m = Map::new();
    m.insert("count".into(), json!(s.count));
    for ((label, _), v) in PERCENTILES.iter().zip(s.pct) {
        m.insert((*label).into(), ms_json(v));
    }
    m.insert("max".into(), ms_json(s.max));
    m.insert("mean".into(), ms_json(s.mean));
    Value::Object(m)
}

fn added_json(a: Option<Added>) -> Value {
    let Some(a) = a else { return Value::Null };
    let mut m = Map::new();
    for ((label, _), v) in PERCENTILES.iter().zip(a.pct) {
        m.insert((*label).into(), ms_json(v));
    }
    m.insert("max".into(), ms_json(a.max));
    Value::Object(m)
}

fn curve_json(h: &hdrhistogram::Histogram<u64>) -> Value {
    Value::Array(
        curve(h, CURVE_STEPS_PER_NINE)
            .into_iter()
            .map(|(p, ms)| json!([(p * 10_000.0).round() / 10_000.0, ms_json(ms)]))
            .collect(),
    )
}

/// The machine-readable report. Times are milliseconds unless a key says otherwise.
pub fn json(info: &RunInfo, targets: &[TargetResult]) -> Value {
    let mut tmap = Map::new();
    for t in targets {
        let errors: Map<String, Value> = t
            .stats
            .errors
            .iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect();
        tmap.insert(
            t.role.into(),
            json!({
                "url": t.url,
                "ok": t.stats.ok,
                "errors": t.stats.error_total(),
                "errors_by_kind": errors,
                "seconds": t.seconds(),
                "rate": t.rate(),
                "latency_ms": summary_json(summarize(&t.stats.latency)),
                "ttft_ms": summary_json(summarize(&t.stats.ttft)),
                "itl_ms": summary_json(summarize(&t.stats.itl)),
                "send_delay_ms": summary_json(summarize(&t.stats.start_delay)),
                "latency_curve": curve_json(&t.stats.latency),
                "ttft_curve": curve_json(&t.stats.ttft),
                "process": t.pid.map(|pid| json!({
                    "pid": pid,
                    "cpu_us_per_request": t.cpu_us_per_request(),
                    "cpu_cores": t.cpu_cores(),
                    "vm_hwm_kib": t.memory.map(|m| m.0),
                    "vm_rss_kib": t.memory.map(|m| m.1),
                })),
                "loadgen_cpu_cores": t.loadgen_cores(),
                "phases": t.phases.iter().map(|p| json!({
                    "index": p.index,
                    "seconds": p.seconds,
                    "ok": p.ok,
                    "errors": p.errors,
                    "rate": ratio(p.ok as f64, p.seconds),
                })).collect::<Vec<_>>(),
            }),
        );
    }
    let comparison = match targets {
        [target, other] => {
            let c = compare(target, other);
            json!({
                "added_latency_ms": added_json(c.latency),
                "added_ttft_ms": added_json(c.ttft),
                "added_itl_ms": added_json(c.itl),
                "throughput_ratio": c.throughput_ratio,
            })
        }
        _ => Value::Null,
    };
    json!({
        "config": {
            "mode": info.mode,
            "conns": info.conns,
            "rate": info.rate,
            "threads": info.threads,
            "format": info.format,
            "body": info.body,
            "body_bytes": info.body_bytes,
            "stream": info.stream,
            "model": info.model,
            "duration_s": info.duration.as_secs_f64(),
            "warmup_s": info.warmup.as_secs_f64(),
            "phases": info.phases,
        },
        "targets": tmap,
        "compare": comparison,
    })
}

/// Plot series: each target's latency curve, and its TTFT curve dashed when streaming.
pub fn plot_series(targets: &[TargetResult], stream: bool) -> Vec<Series> {
    let mut out = Vec::new();
    for t in targets {
        out.push(Series {
            name: format!("{} latency ({})", t.role, t.url),
            dashed: false,
            points: curve(&t.stats.latency, CURVE_STEPS_PER_NINE),
        });
    }
    if stream {
        for t in targets {
            out.push(Series {
                name: format!("{} TTFT", t.role),
                dashed: true,
                points: curve(&t.stats.ttft, CURVE_STEPS_PER_NINE),
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::stats::ErrorKind;

    fn target(role: &'static str, base_us: u64, ok: u64) -> TargetResult {
        let mut stats = Stats::new().unwrap();
        for v in 1..=1000 {
            stats.latency.record(base_us + v).unwrap();
        }
        stats.ok = ok;
        TargetResult {
            role,
            url: format!("http://{role}"),
            stats,
            phases: vec![PhaseResult {
                index: 0,
                seconds: 2.0,
                ok,
                errors: 0,
            }],
            pid: Some(7),
            cpu: Some(Duration::from_millis(500)),
            memory: Some((2048, 1024)),
            loadgen_cpu: None,
            cpu_wall: Duration::from_secs(2),
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            mode: "closed",
            conns: Some(2),
            rate: None,
            threads: 1,
            format: "openai",
            body: "tiny",
            body_bytes: 100,
            stream: false,
            model: "m".into(),
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
            phases: 1,
        }
    }

    #[test]
    fn json_has_both_targets_and_the_difference() {
        let mut t = target("target", 500, 1000);
        t.stats.error(ErrorKind::Status(502));
        let c = target("compare", 0, 2000);
        let v = json(&info(), &[t, c]);
        for role in ["target", "compare"] {
            assert!(v["targets"][role]["latency_ms"]["p50"].is_f64());
            assert!(v["targets"][role]["latency_ms"]["p99"].is_f64());
        }
        assert_eq!(v["targets"]["target"]["errors_by_kind"]["status_502"], 1);
        let added = v["compare"]["added_latency_ms"]["p50"].as_f64().unwrap();
        assert!((added - 0.5).abs() < 0.01, "{added}");
        assert_eq!(v["compare"]["throughput_ratio"], 0.5);
        // 0.5 s of CPU over 1000 requests.
        let cpu = v["targets"]["target"]["process"]["cpu_us_per_request"]
            .as_f64()
            .unwrap();
        assert!((cpu - 500.0).abs() < 1e-6);
        assert!(v["targets"]["target"]["ttft_ms"].is_null());
    }

    #[test]
    fn table_mentions_everything() {
        let text = table(
            &info(),
            &[target("target", 500, 1000), target("compare", 0, 2000)],
        );
        for needle in [
            "closed loop, 2 conns",
            "latency ms",
            "added ms",
            "throughput ratio target/compare: 0.500",
            "500.0 µs",
            "2.0 MiB",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        let series = plot_series(&[target("target", 1, 1)], true);
        assert_eq!(series.len(), 2);
        assert!(series[1].dashed && series[1].points.is_empty());
    }
}
