//! `loadtest`: drives any OpenAI- or Anthropic-compatible endpoint (and optionally a second
//! one, alternating phases) and reports latency, time to first token, inter-token gaps,
//! errors, throughput, and the CPU and memory of the serving processes.

mod body;
mod cli;
mod client;
mod http;
mod load;
mod mock;
mod procfs;
mod report;
mod reqlog;
mod sse;
mod stats;
mod svg;

use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cli::{Command, Mode, Options};
use crate::load::{Live, Plan, Window};
use crate::report::{PhaseResult, RunInfo, TargetResult};
use crate::sse::Dialect;
use crate::stats::Stats;

/// Time between starting the threads of a phase and its first request, so every thread has
/// built its runtime before the schedule begins.
const PHASE_SETUP: Duration = Duration::from_millis(20);
/// How often the end of a phase is checked once its window has closed.
const FINISH_POLL: Duration = Duration::from_millis(2);
/// Progress line refresh interval.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// The `anthropic-version` sent unless the user gives one; Anthropic endpoints require it.
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Bytes of a failing probe's body shown in the error.
const PROBE_BODY_SHOWN: usize = 300;

/// A failure that ends the run.
#[derive(Debug)]
enum Fatal {
    Cli(cli::CliError),
    Mock(mock::MockError),
    Url(String, http::HttpError),
    Resolve(String),
    Probe(String, String),
    Load(load::LoadError),
    Stats(stats::StatsError),
    Thread,
    Write(String, std::io::Error),
    NoTarget,
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fatal::Cli(e) => e.fmt(f),
            Fatal::Mock(e) => e.fmt(f),
            Fatal::Url(u, e) => write!(f, "{u}: {e}"),
            Fatal::Resolve(u) => write!(f, "{u}: cannot resolve the host"),
            Fatal::Probe(u, e) => write!(f, "{u}: first request failed: {e}"),
            Fatal::Load(e) => e.fmt(f),
            Fatal::Stats(e) => e.fmt(f),
            Fatal::Thread => f.write_str("a load thread could not start or panicked"),
            Fatal::Write(p, e) => write!(f, "cannot write {p}: {e}"),
            Fatal::NoTarget => f.write_str("give a target URL or --spawn-mock (see --help)"),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match cli::parse(&args) {
        Ok(Command::Help) => {
            let _ = std::io::stdout().lock().write_all(cli::USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(o)) => o,
        Err(e) => {
            eprintln!("loadtest: {}", Fatal::Cli(e));
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadtest: a target completed no request successfully");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One target as the run drives it.
struct Target {
    role: &'static str,
    url: String,
    plan: Plan,
    pid: Option<u32>,
}

fn resolve(url: &str, opts: &Options, body: &[u8]) -> Result<(SocketAddr, Bytes), Fatal> {
    let default_path = match opts.dialect {
        Dialect::OpenAi => "/v1/chat/completions",
        Dialect::Anthropic => "/v1/messages",
    };
    let parsed = http::parse_url(url, default_path).map_err(|e| Fatal::Url(url.to_owned(), e))?;
    let addr = parsed
        .authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Fatal::Resolve(url.to_owned()))?;
    let mut headers = opts.headers.clone();
    if opts.dialect == Dialect::Anthropic
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("anthropic-version"))
    {
        headers.push(("anthropic-version".into(), ANTHROPIC_VERSION.into()));
    }
    Ok((addr, Bytes::from(http::build_post(&parsed, &headers, body))))
}

fn run(opts: &Options) -> Result<bool, Fatal> {
    let mock = if opts.spawn_mock {
        let bin = mock::find_ringway().map_err(Fatal::Mock)?;
        let m = mock::spawn(&bin, opts.mock_ttft_ms, opts.mock_itl_ms).map_err(Fatal::Mock)?;
        eprintln!(
            "loadtest: mock provider (pid {}) on http://{}",
            m.pid(),
            m.addr
        );
        Some(m)
    } else {
        None
    };
    let mock_url = mock.as_ref().map(|m| format!("http://{}", m.addr));
    let mock_pid = mock.as_ref().map(mock::Mock::pid);
    let (main_url, main_is_mock) = match (&opts.url, &mock_url) {
        (Some(u), _) => (u.clone(), false),
        (None, Some(m)) => (m.clone(), true),
        (None, None) => return Err(Fatal::NoTarget),
    };
    let (compare_url, compare_is_mock) = match (&opts.compare, &mock_url) {
        (Some(u), _) => (Some(u.clone()), false),
        (None, Some(m)) => (Some(m.clone()), true),
        (None, None) => (None, false),
    };

    let body = body::build(opts.dialect, opts.body, opts.model(), opts.stream);
    let log = match &opts.request_log {
        Some(path) => Some(Arc::new(
            reqlog::RequestLog::create(path).map_err(|e| Fatal::Write(path.clone(), e))?,
        )),
        None => None,
    };
    let plan_for = |url: &str| -> Result<Plan, Fatal> {
        let (addr, request) = resolve(url, opts, &body)?;
        Ok(Plan {
            addr,
            request,
            stream: opts.stream,
            dialect: opts.dialect,
            mode: opts.mode,
            threads: opts.threads,
            max_conns: opts.max_conns,
            timeout: opts.timeout,
            driver: opts.driver,
            log: None,
        })
    };
    let mut main_plan = plan_for(&main_url)?;
    main_plan.log = log.clone();
    let mut targets = vec![Target {
        role: "target",
        plan: main_plan,
        url: main_url,
        pid: opts
            .target_pid
            .or(if main_is_mock { mock_pid } else { None }),
    }];
    if let Some(url) = compare_url {
        targets.push(Target {
            role: "compare",
            plan: plan_for(&url)?,
            url,
            pid: opts
                .compare_pid
                .or(if compare_is_mock { mock_pid } else { None }),
        });
    }
    for t in &targets {
        probe(t)?;
    }

    let phases = opts.phases(targets.len() > 1);
    let ticks = procfs::clk_tck();
    let mut results: Vec<TargetResult> = targets
        .iter()
        .map(|t| {
            Ok(TargetResult {
                role: t.role,
                url: t.url.clone(),
                stats: Stats::new().map_err(Fatal::Stats)?,
                phases: Vec::new(),
                pid: t.pid,
                cpu: t.pid.map(|_| Duration::ZERO),
                memory: None,
                loadgen_cpu: Some(Duration::ZERO),
                cpu_wall: Duration::ZERO,
            })
        })
        .collect::<Result<_, Fatal>>()?;
    let total = phases as usize * targets.len();
    let mut index = 0u32;
    for round in 0..phases {
        // Alternate targets phase by phase so slow drift (thermal, neighbours) hits both.
        for (t, result) in targets.iter().zip(results.iter_mut()) {
            let label = format!(
                "{} {}/{} (phase {}/{total})",
                t.role,
                round + 1,
                phases,
                index + 1
            );
            let outcome = run_phase(t, opts, ticks, &label)?;
            result.stats.merge(&outcome.stats).map_err(Fatal::Stats)?;
            result.phases.push(PhaseResult {
                index,
                seconds: opts.duration.as_secs_f64(),
                ok: outcome.stats.ok,
                errors: outcome.stats.error_total(),
            });
            result.cpu = add_opt(result.cpu, outcome.target_cpu);
            result.cpu_wall += outcome.cpu_wall;
            result.loadgen_cpu = add_opt(result.loadgen_cpu, outcome.self_cpu);
            index += 1;
        }
    }
    for r in &mut results {
        r.memory = r.pid.and_then(procfs::memory_kib);
    }
    if let Some(log) = &log {
        log.flush();
    }
    drop(mock);

    let info = RunInfo {
        mode: match opts.mode {
            Mode::Open { .. } => "open",
            Mode::Closed { .. } => "closed",
        },
        conns: match opts.mode {
            Mode::Closed { conns } => Some(conns),
            Mode::Open { .. } => None,
        },
        rate: match opts.mode {
            Mode::Open { rate } => Some(rate),
            Mode::Closed { .. } => None,
        },
        threads: opts.threads,
        format: match opts.dialect {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        },
        body: opts.body.name(),
        body_bytes: body.len(),
        stream: opts.stream,
        model: opts.model().to_owned(),
        duration: opts.duration,
        warmup: opts.warmup,
        phases,
    };
    let text = report::table(&info, &results);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if let Some(path) = &opts.json {
        let doc = report::json(&info, &results);
        let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        bytes.push(b'\n');
        std::fs::write(path, bytes).map_err(|e| Fatal::Write(path.clone(), e))?;
    }
    if let Some(path) = &opts.plot {
        let title = format!(
            "latency by percentile — {} {} {}",
            info.format,
            info.body,
            if info.stream {
                "streaming"
            } else {
                "non-streaming"
            }
        );
        let svg = svg::render(&title, &report::plot_series(&results, opts.stream));
        std::fs::write(path, svg).map_err(|e| Fatal::Write(path.clone(), e))?;
    }
    Ok(results.iter().all(|r| r.stats.ok > 0))
}

fn add_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    Some(a? + b?)
}

/// One request before the run, so a wrong model, path or key fails with the server's words
/// instead of a table full of errors.
fn probe(t: &Target) -> Result<(), Fatal> {
    let fail = |msg: String| Fatal::Probe(t.url.clone(), msg);
    let (reply, body) = load::probe(&t.plan).map_err(fail)?;
    if !(200..300).contains(&reply.status) {
        let shown = body.get(..body.len().min(PROBE_BODY_SHOWN)).unwrap_or(&[]);
        return Err(fail(format!(
            "status {}: {}",
            reply.status,
            String::from_utf8_lossy(shown).trim()
        )));
    }
    match reply.stream_error {
        Some(kind) => Err(fail(kind.to_string())),
        None => Ok(()),
    }
}

struct PhaseOutcome {
    stats: Stats,
    target_cpu: Option<Duration>,
    self_cpu: Option<Duration>,
    cpu_wall: Duration,
}

fn cpu_delta(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    Some(b?.saturating_sub(a?))
}

fn run_phase(t: &Target, opts: &Options, ticks: u64, label: &str) -> Result<PhaseOutcome, Fatal> {
    let live = Arc::new(Live::default());
    let start = Instant::now() + PHASE_SETUP;
    let measure = start + opts.warmup;
    let window = Window {
        start,
        measure,
        end: measure + opts.duration,
    };
    let mut threads = Vec::with_capacity(opts.threads);
    for i in 0..opts.threads {
        let plan = t.plan.clone();
        let live = live.clone();
        let h = std::thread::Builder::new()
            .name(format!("load-{i}"))
            .spawn(move || load::run_thread(&plan, window, i, live))
            .map_err(|_| Fatal::Thread)?;
        threads.push(h);
    }

    let me = std::process::id();
    let sample = || {
        (
            t.pid.and_then(|p| procfs::cpu_time(p, ticks)),
            procfs::cpu_time(me, ticks),
        )
    };
    let tty = !opts.quiet && std::io::stderr().is_terminal();
    let mut at_measure = None;
    let mut last = (Instant::now(), 0u64);
    // CPU is sampled from the start of measurement until the last counted request has
    // finished, so the work for every counted request is inside the interval.
    let at_finish = loop {
        let now = Instant::now();
        if at_measure.is_none() && now >= window.measure {
            at_measure = Some((sample(), now));
        }
        if threads.iter().all(|h| h.is_finished()) {
            break (sample(), Instant::now());
        }
        if tty {
            let ok = live.ok.load(Ordering::Relaxed);
            let rate = ratio_per_sec(ok.saturating_sub(last.1), now - last.0);
            last = (now, ok);
            let stage = if now < window.measure {
                format!("warm-up {:.1}s", (window.measure - now).as_secs_f64())
            } else if now < window.end {
                format!("{:.1}s left", (window.end - now).as_secs_f64())
            } else {
                "finishing".to_owned()
            };
            eprint!(
                "\r\x1b[K[{label}] {stage} | {ok} ok {} errors | {rate:.0}/s | {} connects",
                live.errors.load(Ordering::Relaxed),
                live.connects.load(Ordering::Relaxed)
            );
        }
        // Wake for the next progress tick, exactly at the CPU sampling point, or soon after
        // the threads are due to finish.
        let mut wake = now + PROGRESS_EVERY;
        if at_measure.is_none() {
            wake = wake.min(window.measure);
        }
        if now < window.end {
            wake = wake.min(window.end);
        } else {
            wake = wake.min(now + FINISH_POLL);
        }
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    };
    let mut stats = Stats::new().map_err(Fatal::Stats)?;
    for h in threads {
        let s = h.join().map_err(|_| Fatal::Thread)?.map_err(Fatal::Load)?;
        stats.merge(&s).map_err(Fatal::Stats)?;
    }
    if tty {
        eprint!("\r\x1b[K");
    }
    if !opts.quiet {
        eprintln!("[{label}] {} ok, {} errors", stats.ok, stats.error_total());
    }
    let ((m_target, m_self), m_at) = at_measure.unwrap_or(((None, None), at_finish.1));
    let ((e_target, e_self), e_at) = at_finish;
    Ok(PhaseOutcome {
        stats,
        target_cpu: cpu_delta(m_target, e_target),
        self_cpu: cpu_delta(m_self, e_self),
        cpu_wall: e_at.saturating_duration_since(m_at),
    })
}

fn ratio_per_sec(n: u64, d: Duration) -> f64 {
    stats::ratio(n as f64, d.as_secs_f64()).unwrap_or(0.0)
}
