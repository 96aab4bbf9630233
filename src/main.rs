//! The `ringway` command line: `serve` (default), `check`, `reload`, `mock-upstream`, `version`,
//! `help`. No logic here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ringway::config::{Config, Driver};
use ringway::mock::{self, script::Defaults, MockOptions};
use ringway::workers::supervise::{self, Overrides};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `ringway --help` starts with.
const ABOUT: &str = "\
ringway — LLM API gateway core

COMMANDS (the first argument; serve when it is none of these):
";

const SERVE: &str =
    "  ringway [serve] [--config FILE] [--listen ADDR] [--workers N] [--driver auto|io_uring|epoll]
                  [--mock-listen ADDR] [--reuse-port] [--pid-file FILE]
      Run the gateway. Without --config the embedded default serves: 127.0.0.1:4000, openai/*,
      anthropic/* and gemini/* to the real APIs (keys from OPENAI_API_KEY / ANTHROPIC_API_KEY /
      GEMINI_API_KEY), and the demo routes demo-gpt and demo-claude to a built-in mock provider
      (on --mock-listen, default 127.0.0.1:0). Flags override the file, on every reload too. Refuses to start on an address
      another process listens on, unless --reuse-port (or server.reuse_port = true) asks to
      share it, as a zero-downtime restart does.
";

const CHECK: &str = "  ringway check --config FILE
      Validate a config as serve would, and print the resolved routing table. Besides the file,
      every path serve opens or creates at start (access log, custody and responses stores, pid
      file) is tried the way serve opens it, leaving nothing behind. Exit 1 with the reasons
      when serve would refuse to start; a warning on stderr for a config without providers.
";

const RELOAD: &str = "  ringway reload [--pid-file FILE | --config FILE]
      Send SIGHUP to the running gateway whose pid is in the pid file (--pid-file, or the
      config's server.pid_file). With --config, the file is validated first: a file the
      gateway would refuse is reported here and nothing is sent.
";

const MOCK: &str = "  ringway mock-upstream [--listen ADDR] [--ttft-ms N] [--itl-ms N] [--tls-cert PEM --tls-key PEM]
                        [--driver auto|io_uring|epoll] [--faults JSON]
                        [--google-service-account FILE] [--google-token-ttl SECS]
                        [--aws-credentials-ttl SECS] [--refuse-beta NAME,...]
      Run the deterministic provider simulator (both wire formats), default 127.0.0.1:4010.
      --faults starts it with a per-model fault table, e.g. '{\"model-a\":\"reset\"}' (see
      POST /mock/faults). It also plays Amazon Bedrock (SigV4 with key AKIDRINGWAYMOCK /
      ringway-mock-secret, or Bearer ABSK...) and Claude on Vertex AI: POST /token verifies
      JWTs against --google-service-account's key and issues tokens lasting
      --google-token-ttl (default 3599); GET /mock/aws-credentials hands out credentials
      lasting --aws-credentials-ttl (default 3600). --refuse-beta makes both clouds refuse
      those anthropic-beta values (a region without the feature yet).
";

const VERSION: &str = "  ringway version | --version | -V
      Print the version.
";

const HELP: &str = "  ringway help [COMMAND] | --help | -h        (or: ringway COMMAND --help)
      Print this help, or one command's.
";

const ENVIRONMENT: &str = "
ENVIRONMENT:
  RINGWAY_LOG         error | warn | info | debug (default info): what the gateway's own log
                      (stderr) says. The access log is configured in [access_log].
  RINGWAY_LOG_FORMAT  text | json (default text). text: 2026-11-25T12:00:00.123Z ringway info: …
                      json: one object a line, {\"ts\":\"…\",\"level\":\"info\",\"msg\":\"…\"}
                      (ts is RFC 3339 UTC with milliseconds in both).
  OPENAI_API_KEY, ANTHROPIC_API_KEY
                      the embedded default's provider keys (a config names its own with
                      api_key_env).
";

const SIGNALS: &str = "
SIGNALS (to a running serve):
  SIGHUP           re-read the config file; a file it would refuse is logged and the running
                   config keeps serving (ringway reload sends it)
  SIGTERM, SIGINT  drain: stop accepting, let responses in flight finish (server.drain_timeout_ms),
                   then exit; a second one exits at once
  SIGUSR1          reopen the access log file (after logrotate moved it)
";

const EXIT: &str = "
EXIT STATUS: 0 done, 1 refused or failed (the reason on stderr), 2 a usage error.
";

/// serve starts without providers (its admin endpoints work), so this is a warning.
const NO_PROVIDERS: &str = "no [[provider]]: the gateway starts, but no model call can be served";

/// How a command ends when it does not succeed.
enum Failure {
    /// The command line is wrong: exit 2, with a pointer to the help.
    Usage(String),
    /// What was asked cannot be done (a config refused, a file unreadable): exit 1.
    Refused(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Failure {
        Failure::Refused(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Failure {
        Failure::Refused(e.to_owned())
    }
}

fn usage(e: impl Into<String>) -> Failure {
    Failure::Usage(e.into())
}

struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, name: &str) -> Result<Option<String>, Failure> {
        let Some(i) = self.0.iter().position(|a| a == name) else {
            return Ok(None);
        };
        if i + 1 >= self.0.len() {
            return Err(usage(format!("{name} needs a value")));
        }
        let v = self.0.remove(i + 1);
        self.0.remove(i);
        Ok(Some(v))
    }

    /// A flag without a value: present or not.
    fn switch(&mut self, name: &str) -> bool {
        match self.0.iter().position(|a| a == name) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }

    fn finish(self) -> Result<(), Failure> {
        match self.0.first() {
            None => Ok(()),
            Some(a) => Err(usage(format!("unexpected argument {a:?}"))),
        }
    }
}

fn parse_driver(s: Option<String>) -> Result<Option<Driver>, Failure> {
    Ok(match s.as_deref() {
        None => None,
        Some("auto") => Some(Driver::Auto),
        Some("io_uring") => Some(Driver::IoUring),
        Some("epoll") => Some(Driver::Epoll),
        Some(other) => return Err(usage(format!("unknown driver {other:?}"))),
    })
}

fn parse_addr(s: &str) -> Result<SocketAddr, Failure> {
    s.parse()
        .map_err(|_| usage(format!("{s:?} is not IP:PORT")))
}

/// The commands, as the first argument names them.
const COMMANDS: &[&str] = &[
    "serve",
    "check",
    "reload",
    "mock-upstream",
    "version",
    "help",
];

/// The help text of one command, or of all (`None`).
fn help_text(cmd: Option<&str>) -> String {
    let mut s = String::new();
    match cmd {
        None => {
            s.push_str(ABOUT);
            for part in [SERVE, CHECK, RELOAD, MOCK, VERSION, HELP] {
                s.push_str(part);
            }
            s.push_str(ENVIRONMENT);
            s.push_str(SIGNALS);
            s.push_str(EXIT);
        }
        Some("serve") => {
            s.push_str(SERVE);
            s.push_str(ENVIRONMENT);
            s.push_str(SIGNALS);
        }
        Some("check") => s.push_str(CHECK),
        Some("reload") => s.push_str(RELOAD),
        Some("mock-upstream") => {
            s.push_str(MOCK);
            s.push_str(ENVIRONMENT);
        }
        Some("version") => s.push_str(VERSION),
        Some(_) => s.push_str(HELP),
    }
    s
}

/// Help and version go to stdout: they were asked for.
fn print(text: &str) -> ExitCode {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    ringway::log::init_from_env();
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let first = argv.first().map(String::as_str);
    let cmd = match first {
        Some("--version" | "-V") => "version".to_owned(),
        Some("--help" | "-h") => "help".to_owned(),
        Some(c) if COMMANDS.contains(&c) => argv.remove(0),
        _ => "serve".to_owned(),
    };
    if cmd == "help" {
        let topic = argv
            .iter()
            .find(|a| !a.starts_with('-'))
            .map(String::as_str);
        return match topic {
            Some(t) if !COMMANDS.contains(&t) => fail(&cmd, usage(format!("no command {t:?}"))),
            _ => print(&help_text(topic)),
        };
    }
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        return print(&help_text(Some(&cmd)));
    }
    let result = match cmd.as_str() {
        "version" => {
            return print(&format!("ringway {}\n", env!("CARGO_PKG_VERSION")));
        }
        "mock-upstream" => mock_upstream(Args(argv)),
        "check" => check(Args(argv)),
        "reload" => reload(Args(argv)),
        _ => serve(Args(argv)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&cmd, e),
    }
}

fn fail(cmd: &str, e: Failure) -> ExitCode {
    match e {
        Failure::Usage(e) => {
            eprintln!("ringway: {e} (see `ringway help`)");
            ExitCode::from(2)
        }
        // The long-running commands end in their log, in its format.
        Failure::Refused(e) if cmd == "serve" || cmd == "mock-upstream" => {
            ringway::log::error(format_args!("{e}"));
            ExitCode::FAILURE
        }
        Failure::Refused(e) => {
            eprintln!("ringway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(mut args: Args) -> Result<(), Failure> {
    let config_path = args.flag("--config")?;
    let listen = args.flag("--listen")?.map(|s| parse_addr(&s)).transpose()?;
    let workers = args
        .flag("--workers")?
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| usage(format!("--workers {s:?} is not a number")))
        })
        .transpose()?;
    let driver = parse_driver(args.flag("--driver")?)?;
    let mock_listen = args
        .flag("--mock-listen")?
        .map(|s| parse_addr(&s))
        .transpose()?;
    let reuse_port = args.switch("--reuse-port");
    let pid_file = args.flag("--pid-file")?.map(PathBuf::from);
    args.finish()?;
    if workers == Some(0) {
        return Err(usage("--workers must be at least 1"));
    }
    let overrides = Overrides {
        listen,
        workers,
        driver,
        reuse_port,
        pid_file,
    };
    // Before any thread starts (the built-in mock's too): threads inherit the mask, so only
    // the supervisor receives the signals it handles.
    supervise::block_signals()?;

    let mut config = match &config_path {
        Some(p) => Config::load(&PathBuf::from(p)).map_err(|e| e.to_string())?,
        None => {
            // The built-in mock's thread runs until the process exits.
            let (addr, _thread) = mock::spawn(MockOptions {
                listen: mock_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
                defaults: Defaults {
                    ttft: Duration::from_millis(20),
                    inter_token: Duration::from_millis(15),
                },
                tls: None,
                driver: driver.unwrap_or(Driver::Auto),
                faults: mock::fault::FaultTable::default(),
                clouds: mock::CloudOptions::default(),
            })?;
            ringway::log::info(format_args!("built-in mock provider on http://{addr}"));
            Config::embedded_default(addr).map_err(|e| e.to_string())?
        }
    };
    overrides.apply(&mut config);
    if config.providers.is_empty() {
        ringway::log::warn(format_args!("{NO_PROVIDERS}"));
    }
    for p in &config.providers {
        if let ringway::config::ApiKey::Missing(var) = &p.api_key {
            ringway::log::warn(format_args!(
                "provider `{}`: ${var} is not set; its requests will fail",
                p.name
            ));
        }
    }
    if let Some(var) = &config.translate.seal_key_missing {
        ringway::log::warn(format_args!(
            "responses.seal_key_env: ${var} is not set; a key was drawn, so sealed reasoning and compaction items open only in this process"
        ));
    }
    let pii_configured =
        config.pii.all || !config.pii.routes.is_empty() || config.keys.iter().any(|k| k.pii);
    if pii_configured && config.translate.seal_key_drawn {
        ringway::log::warn(format_args!(
            "pii: no seal key is set ([responses] seal_key_env), so restored thinking blocks carry a seal only this process opens; after a restart, or through another instance, a client sending one back gets a 400"
        ));
    }
    let config = Arc::new(config);
    let running = ringway::workers::start(config.clone())?;
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    ringway::log::info(format_args!(
        "listening on {scheme}://{} with {} worker(s), driver {}",
        running.addr,
        config.server.workers,
        running.driver.as_str()
    ));
    if let Some(tls) = &config.server.tls {
        ringway::log::info(format_args!(
            "TLS: certificate {}, handshake timeout {} ms",
            tls.cert.display(),
            tls.handshake_timeout.as_millis()
        ));
    }
    if let Some(plain) = running.plain_addr {
        ringway::log::info(format_args!("plain HTTP also listening on http://{plain}"));
    }
    for line in config.describe().lines() {
        ringway::log::debug(format_args!("{line}"));
    }
    supervise::check_port_handover(&config);
    supervise::write_pid_file(&config)?;
    supervise::supervise(running, config, config_path.map(PathBuf::from), overrides)
}

fn mock_upstream(mut args: Args) -> Result<(), Failure> {
    let listen = parse_addr(
        &args
            .flag("--listen")?
            .unwrap_or_else(|| "127.0.0.1:4010".into()),
    )?;
    let ms = |v: Option<String>, name: &str, default: u64| -> Result<Duration, Failure> {
        match v {
            None => Ok(Duration::from_millis(default)),
            Some(s) => s
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| usage(format!("{name} {s:?} is not a number"))),
        }
    };
    let ttft = ms(args.flag("--ttft-ms")?, "--ttft-ms", 0)?;
    let inter_token = ms(args.flag("--itl-ms")?, "--itl-ms", 0)?;
    let cert = args.flag("--tls-cert")?;
    let key = args.flag("--tls-key")?;
    let driver = parse_driver(args.flag("--driver")?)?.unwrap_or(Driver::Auto);
    let faults = match args.flag("--faults")? {
        None => mock::fault::FaultTable::default(),
        Some(json) => mock::fault::FaultTable::from_json(json.as_bytes())
            .map_err(|e| usage(format!("--faults: {e}")))?,
    };
    let secs = |v: Option<String>, name: &str, default: u64| -> Result<u64, Failure> {
        match v {
            None => Ok(default),
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| usage(format!("{name} {s:?} is not a number"))),
        }
    };
    let google_account = match args.flag("--google-service-account")? {
        None => None,
        Some(path) => Some(
            mock::google::ServiceAccount::load(&path)
                .map_err(|e| usage(format!("--google-service-account: {e}")))?,
        ),
    };
    let clouds = mock::CloudOptions {
        google_account,
        google_token_ttl: secs(
            args.flag("--google-token-ttl")?,
            "--google-token-ttl",
            mock::google::DEFAULT_TOKEN_TTL_SECS,
        )?,
        aws_credentials_ttl: secs(
            args.flag("--aws-credentials-ttl")?,
            "--aws-credentials-ttl",
            mock::DEFAULT_AWS_CREDENTIALS_TTL_SECS,
        )?,
        refused_betas: args
            .flag("--refuse-beta")?
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    args.finish()?;
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(usage("--tls-cert and --tls-key go together")),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (addr, t) = mock::spawn(MockOptions {
        listen,
        defaults: Defaults { ttft, inter_token },
        tls,
        driver,
        faults,
        clouds,
    })?;
    ringway::log::info(format_args!("mock provider listening on {scheme}://{addr}"));
    let _ = t.join();
    Ok(())
}

fn check(mut args: Args) -> Result<(), Failure> {
    let path = args
        .flag("--config")?
        .ok_or_else(|| usage("check needs --config FILE"))?;
    args.finish()?;
    // Validate, never fetch: a cloud credential's source is found, not used.
    ringway::credentials::resolve_only();
    let config = Config::load(&PathBuf::from(&path)).map_err(|e| e.to_string())?;
    let problems = ringway::preflight::probe(&config);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("{path}: {p}")).collect();
        return Err(Failure::Refused(lines.join("\nringway: ")));
    }
    if config.providers.is_empty() {
        eprintln!("ringway: warning: {path}: {NO_PROVIDERS}");
    }
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    write!(out, "{path}: OK\n{}", config.describe()).map_err(|e| e.to_string())?;
    Ok(())
}

fn reload(mut args: Args) -> Result<(), Failure> {
    let pid_file = args.flag("--pid-file")?;
    let config_path = args.flag("--config")?;
    args.finish()?;
    let pid_file = match (pid_file, &config_path) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(c)) => {
            // Validate first: a file the gateway would refuse is reported here, not in its log.
            ringway::credentials::resolve_only();
            let config = Config::load(&PathBuf::from(c)).map_err(|e| e.to_string())?;
            config
                .server
                .pid_file
                .ok_or_else(|| format!("{c}: server.pid_file is not set; pass --pid-file"))?
        }
        (None, None) => return Err(usage("reload needs --pid-file FILE or --config FILE")),
    };
    let text = std::fs::read_to_string(&pid_file)
        .map_err(|e| format!("cannot read {}: {e}", pid_file.display()))?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| format!("{} does not hold a pid", pid_file.display()))?;
    // A stale file (after a crash) may name an unrelated process, which SIGHUP would kill.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "ringway" {
        return Err(Failure::Refused(format!(
            "pid {pid} from {} is not a running ringway (stale pid file?)",
            pid_file.display()
        )));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    eprintln!("ringway: sent SIGHUP to pid {pid}; its log says which config generation each worker serves");
    Ok(())
}
