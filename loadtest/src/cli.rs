//! Command line: a hand-written parser (no dependency) into [`Options`], and the help text.

use std::fmt;
use std::time::Duration;

use crate::body::Preset;
use crate::sse::Dialect;

/// Default measured time per phase.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default unmeasured warm-up before each phase.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(2);
/// Default closed-loop connections when neither `--rate` nor `--conns` is given.
pub const DEFAULT_CONNS: usize = 32;
/// Default open-loop connection cap.
pub const DEFAULT_MAX_CONNS: usize = 1024;
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Phases per target with `--compare`: alternating, so drift hits both targets alike.
pub const DEFAULT_PHASES_COMPARE: u32 = 2;
/// Most load threads accepted.
pub const MAX_THREADS: usize = 256;
/// Most phases per target accepted; the run must stay bounded.
pub const MAX_PHASES: u32 = 100;
/// Longest `--duration`, `--warmup` or `--timeout` accepted.
pub const MAX_SECONDS: f64 = 24.0 * 3600.0;
/// Highest open-loop rate accepted (requests per second).
pub const MAX_RATE: f64 = 10_000_000.0;

/// Usage text for `--help`.
pub const USAGE: &str = "\
loadtest — load generator for LLM API gateways (OpenAI Chat Completions, Anthropic Messages)

USAGE:
  loadtest [URL] [OPTIONS]

  URL is http://HOST:PORT[/PATH]. With no path (or /) the format's endpoint is used
  (/v1/chat/completions or /v1/messages); any other path is used as given. Plain HTTP only.

LOAD:
  --conns N           closed loop: N connections, each sends its next request when the last ends
                      (default 32 when --rate is not given)
  --rate R            open loop: R requests/s on a fixed schedule; a request sent late is timed
                      from its intended send time, so stalls cannot hide (coordinated omission)
  --max-conns N       open loop: connection cap (default 1024); beyond it requests queue
  --threads N         load threads, each with its own runtime (default 1)
  --duration D        measured time per phase (default 10s; D like 10, 10s, 500ms, 1.5)
  --warmup D          unmeasured warm-up before each phase (default 2s)
  --phases N          phases per target; with --compare they alternate target/compare
                      (default 2 with --compare, else 1)
  --timeout D         per-request timeout (default 30s)
  --driver KIND       auto | io_uring | epoll (default auto)

REQUEST:
  --format F          openai | anthropic (default openai)
  --stream            streaming (SSE); reports time to first token and inter-token gap
  --body B            tiny | 10k | 100k | tools | pii (default tiny)
  --model NAME        model (default mock-gpt for openai, mock-claude for anthropic; through a
                      gateway give a route name)
  --header 'K: V'     extra request header, repeatable (e.g. authorization)

COMPARE AND MEASURE:
  --compare URL       second target (typically the provider directly) driven with the same load
                      in alternating phases; prints the latency the target adds per percentile
                      and the throughput ratio
  --target-pid PID    report CPU per request and peak RSS of this process during target phases
  --compare-pid PID   the same for the compare target's process
  --spawn-mock        start `ringway mock-upstream` on 127.0.0.1 (binary next to this one or
                      $RINGWAY_BIN); it becomes --compare when none is given, and the target when
                      no URL is given
  --mock-ttft-ms N    spawned mock: delay before the first token
  --mock-itl-ms N     spawned mock: delay between tokens

OUTPUT:
  --json FILE         write results as JSON
  --plot FILE.svg     write a latency-percentile plot of every target
  --request-log FILE  write one tab-separated line per measured request of the main target:
                      wall-clock start and end (Unix ms), latency, TTFT, outcome, status and
                      the x-ringway-request-id / -provider / -attempts response headers
  --quiet             no live progress line
  -h, --help          this text
";

/// Open or closed loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Fixed arrival rate, requests per second.
    Open {
        /// Requests per second, all threads together.
        rate: f64,
    },
    /// Fixed number of connections, each back to back.
    Closed {
        /// Connections, all threads together.
        conns: usize,
    },
}

/// Which io driver the load threads use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring or fail.
    IoUring,
    /// epoll.
    Epoll,
}

/// Everything the command line decides.
#[derive(Clone, Debug)]
pub struct Options {
    /// Main target URL; `None` means the spawned mock.
    pub url: Option<String>,
    /// Second target URL.
    pub compare: Option<String>,
    /// Load shape.
    pub mode: Mode,
    /// Open-loop connection cap.
    pub max_conns: usize,
    /// Load threads.
    pub threads: usize,
    /// Measured time per phase.
    pub duration: Duration,
    /// Warm-up per phase.
    pub warmup: Duration,
    /// Phases per target; `None` means the default for the run.
    pub phases: Option<u32>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// io driver.
    pub driver: Driver,
    /// Request format.
    pub dialect: Dialect,
    /// Streaming requests.
    pub stream: bool,
    /// Body preset.
    pub body: Preset,
    /// Model name; `None` means the format's default.
    pub model: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Process to measure in target phases.
    pub target_pid: Option<u32>,
    /// Process to measure in compare phases.
    pub compare_pid: Option<u32>,
    /// Start the mock provider.
    pub spawn_mock: bool,
    /// Spawned mock's first-token delay.
    pub mock_ttft_ms: Option<u64>,
    /// Spawned mock's inter-token delay.
    pub mock_itl_ms: Option<u64>,
    /// JSON output path.
    pub json: Option<String>,
    /// SVG output path.
    pub plot: Option<String>,
    /// Per-request log path.
    pub request_log: Option<String>,
    /// No progress line.
    pub quiet: bool,
}

impl Options {
    /// The model to send.
    pub fn model(&self) -> &str {
        match (&self.model, self.dialect) {
            (Some(m), _) => m,
            (None, Dialect::OpenAi) => "mock-gpt",
            (None, Dialect::Anthropic) => "mock-claude",
        }
    }

    /// Phases per target for this run.
    pub fn phases(&self, comparing: bool) -> u32 {
        self.phases
            .unwrap_or(if comparing { DEFAULT_PHASES_COMPARE } else { 1 })
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Print the help.
    Help,
    /// Run a load test.
    Run(Box<Options>),
}

/// A command-line mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CliError {
    /// A flag that needs a value came last.
    MissingValue(&'static str),
    /// A value that does not parse.
    BadValue(&'static str, String),
    /// An unknown flag or a second URL.
    Unexpected(String),
    /// Both --rate and --conns.
    RateAndConns,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            CliError::BadValue(flag, v) => write!(f, "{flag}: bad value {v:?}"),
            CliError::Unexpected(a) => write!(f, "unexpected argument {a:?} (see --help)"),
            CliError::RateAndConns => f.write_str("--rate and --conns exclude each other"),
        }
    }
}

/// Parse `10`, `10s`, `1.5`, `500ms`, `2m` into a duration within [`MAX_SECONDS`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().ok()?;
    let secs = v * scale;
    (secs.is_finite() && (0.0..=MAX_SECONDS).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

fn number<T: std::str::FromStr>(flag: &'static str, v: &str) -> Result<T, CliError> {
    v.parse()
        .map_err(|_| CliError::BadValue(flag, v.to_owned()))
}

/// Parse arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let mut o = Options {
        url: None,
        compare: None,
        mode: Mode::Closed {
            conns: DEFAULT_CONNS,
        },
        max_conns: DEFAULT_MAX_CONNS,
        threads: 1,
        duration: DEFAULT_DURATION,
        warmup: DEFAULT_WARMUP,
        phases: None,
        timeout: DEFAULT_TIMEOUT,
        driver: Driver::Auto,
        dialect: Dialect::OpenAi,
        stream: false,
        body: Preset::Tiny,
        model: None,
        headers: Vec::new(),
        target_pid: None,
        compare_pid: None,
        spawn_mock: false,
        mock_ttft_ms: None,
        mock_itl_ms: None,
        json: None,
        plot: None,
        request_log: None,
        quiet: false,
    };
    let mut rate: Option<f64> = None;
    let mut conns: Option<usize> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let a = arg.as_str();
        // `--flag=value` and `--flag value` both work.
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a, None),
        };
        let mut value = |name: &'static str| -> Result<String, CliError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or(CliError::MissingValue(name)),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--stream" => o.stream = true,
            "--spawn-mock" => o.spawn_mock = true,
            "--quiet" => o.quiet = true,
            "--compare" => o.compare = Some(value("--compare")?),
            "--rate" => {
                let v = value("--rate")?;
                let r: f64 = number("--rate", &v)?;
                if !(r > 0.0 && r <= MAX_RATE) {
                    return Err(CliError::BadValue("--rate", v));
                }
                rate = Some(r);
            }
            "--conns" => {
                let v = value("--conns")?;
                let n: usize = number("--conns", &v)?;
                if n == 0 || n > 1_000_000 {
                    return Err(CliError::BadValue("--conns", v));
                }
                conns = Some(n);
            }
            "--max-conns" => {
                let v = value("--max-conns")?;
                o.max_conns = number("--max-conns", &v)?;
                if o.max_conns == 0 {
                    return Err(CliError::BadValue("--max-conns", v));
                }
            }
            "--threads" => {
                let v = value("--threads")?;
                o.threads = number("--threads", &v)?;
                if o.threads == 0 || o.threads > MAX_THREADS {
                    return Err(CliError::BadValue("--threads", v));
                }
            }
            "--duration" | "--warmup" | "--timeout" => {
                let name = match flag {
                    "--duration" => "--duration",
                    "--warmup" => "--warmup",
                    _ => "--timeout",
                };
                let v = value(name)?;
                let d = parse_duration(&v).ok_or_else(|| CliError::BadValue(name, v.clone()))?;
                match name {
                    "--duration" if d.is_zero() => return Err(CliError::BadValue(name, v)),
                    "--duration" => o.duration = d,
                    "--warmup" => o.warmup = d,
                    _ if d.is_zero() => return Err(CliError::BadValue(name, v)),
                    _ => o.timeout = d,
                }
            }
            "--phases" => {
                let v = value("--phases")?;
                let n: u32 = number("--phases", &v)?;
                if n == 0 || n > MAX_PHASES {
                    return Err(CliError::BadValue("--phases", v));
                }
                o.phases = Some(n);
            }
            "--driver" => {
                let v = value("--driver")?;
                o.driver = match v.as_str() {
                    "auto" => Driver::Auto,
                    "io_uring" => Driver::IoUring,
                    "epoll" => Driver::Epoll,
                    _ => return Err(CliError::BadValue("--driver", v)),
                };
            }
            "--format" => {
                let v = value("--format")?;
                o.dialect = match v.as_str() {
                    "openai" => Dialect::OpenAi,
                    "anthropic" => Dialect::Anthropic,
                    _ => return Err(CliError::BadValue("--format", v)),
                };
            }
            "--body" => {
                let v = value("--body")?;
                o.body = Preset::parse(&v).map_err(|_| CliError::BadValue("--body", v))?;
            }
            "--model" => {
                let v = value("--model")?;
                if v.is_empty() || v.contains(['"', '\\']) {
                    return Err(CliError::BadValue("--model", v));
                }
                o.model = Some(v);
            }
            "--header" => {
                let v = value("--header")?;
                o.headers.push(parse_header(&v)?);
            }
            "--target-pid" => {
                let v = value("--target-pid")?;
                o.target_pid = Some(number("--target-pid", &v)?);
            }
            "--compare-pid" => {
                let v = value("--compare-pid")?;
                o.compare_pid = Some(number("--compare-pid", &v)?);
            }
            "--mock-ttft-ms" => {
                let v = value("--mock-ttft-ms")?;
                o.mock_ttft_ms = Some(number("--mock-ttft-ms", &v)?);
            }
            "--mock-itl-ms" => {
                let v = value("--mock-itl-ms")?;
                o.mock_itl_ms = Some(number("--mock-itl-ms", &v)?);
            }
            "--json" => o.json = Some(value("--json")?),
            "--plot" => o.plot = Some(value("--plot")?),
            "--request-log" => o.request_log = Some(value("--request-log")?),
            _ if !a.starts_with('-') && o.url.is_none() => o.url = Some(a.to_owned()),
            _ => return Err(CliError::Unexpected(a.to_owned())),
        }
    }
    o.mode = match (rate, conns) {
        (Some(_), Some(_)) => return Err(CliError::RateAndConns),
        (Some(rate), None) => Mode::Open { rate },
        (None, Some(conns)) => Mode::Closed { conns },
        (None, None) => o.mode,
    };
    Ok(Command::Run(Box::new(o)))
}

/// `Name: value` (or `Name:value`) with a token name and a value free of line breaks, so a
/// header cannot smuggle a second header or end the head early.
fn parse_header(v: &str) -> Result<(String, String), CliError> {
    let bad = || CliError::BadValue("--header", v.to_owned());
    let (name, value) = v.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let value = value.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) || value.contains(['\r', '\n']) {
        return Err(bad());
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn run(s: &str) -> Options {
        match parse(&args(s)).unwrap() {
            Command::Run(o) => *o,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults_and_flags() {
        let o = run("http://127.0.0.1:4000");
        assert_eq!(o.mode, Mode::Closed { conns: 32 });
        assert_eq!(o.model(), "mock-gpt");
        assert_eq!(o.phases(false), 1);
        assert_eq!(o.phases(true), 2);
        let o = run("--rate 50 --stream --format anthropic --body=10k --duration 500ms --warmup 0 \
             --header x-api-key:abc --header Authorization:Bearer_t --compare http://b:1 --spawn-mock");
        assert_eq!(o.mode, Mode::Open { rate: 50.0 });
        assert!(o.stream && o.spawn_mock);
        assert_eq!(o.dialect, Dialect::Anthropic);
        assert_eq!(o.model(), "mock-claude");
        assert_eq!(o.body, Preset::K10);
        assert_eq!(o.duration, Duration::from_millis(500));
        assert!(o.warmup.is_zero());
        assert_eq!(o.headers[0], ("x-api-key".to_owned(), "abc".to_owned()));
        assert_eq!(o.compare.as_deref(), Some("http://b:1"));
        assert!(o.url.is_none());
    }

    #[test]
    fn mistakes() {
        assert_eq!(
            parse(&args("--rate 1 --conns 2")).unwrap_err(),
            CliError::RateAndConns
        );
        assert_eq!(
            parse(&args("--rate")).unwrap_err(),
            CliError::MissingValue("--rate")
        );
        assert!(parse(&args("--rate -3")).is_err());
        assert!(parse(&args("--threads 0")).is_err());
        assert!(parse(&args("--duration 0")).is_err());
        assert!(parse(&args("--format grpc")).is_err());
        assert!(parse(&args("a b")).is_err());
        assert!(parse(&args("--header bad")).is_err());
        assert!(parse(&args("--header a\rb:c")).is_err());
        assert!(matches!(parse(&args("x --help")), Ok(Command::Help)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("nan"), None);
        assert_eq!(parse_duration("1e9"), None);
    }
}
