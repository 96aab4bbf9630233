//! The `ringway` command line: `serve` (default), `mock-upstream`, `check`. No logic here.

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

const USAGE: &str = "\
ringway — LLM API gateway core

USAGE:
  ringway [serve] [--config FILE] [--listen ADDR] [--workers N] [--driver auto|io_uring|epoll]
                  [--mock-listen ADDR] [--reuse-port] [--pid-file FILE]
      Run the gateway. Without --config the embedded default serves: 127.0.0.1:4000, openai/* and
      anthropic/* to the real APIs (keys from OPENAI_API_KEY / ANTHROPIC_API_KEY), and the demo
      routes demo-gpt and demo-claude to a built-in mock provider (on --mock-listen, default
      127.0.0.1:0). Refuses to start on an address another process listens on, unless
      --reuse-port (or server.reuse_port = true) asks to share it, as a zero-downtime restart does.
  ringway mock-upstream [--listen ADDR] [--ttft-ms N] [--itl-ms N] [--tls-cert PEM --tls-key PEM]
                        [--driver auto|io_uring|epoll] [--faults JSON]
      Run the deterministic provider simulator (both wire formats). --faults starts it with a
      per-model fault table, e.g. '{\"model-a\":\"reset\"}' (see POST /mock/faults).
  ringway check --config FILE
      Validate a config and print the resolved routing table.
";

struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, name: &str) -> Result<Option<String>, String> {
        let Some(i) = self.0.iter().position(|a| a == name) else {
            return Ok(None);
        };
        if i + 1 >= self.0.len() {
            return Err(format!("{name} needs a value"));
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

    fn finish(self) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some(a) => Err(format!("unexpected argument {a:?}")),
        }
    }
}

fn parse_driver(s: Option<String>) -> Result<Option<Driver>, String> {
    Ok(match s.as_deref() {
        None => None,
        Some("auto") => Some(Driver::Auto),
        Some("io_uring") => Some(Driver::IoUring),
        Some("epoll") => Some(Driver::Epoll),
        Some(other) => return Err(format!("unknown driver {other:?}")),
    })
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not IP:PORT"))
}

fn main() -> ExitCode {
    ringway::log::init_from_env();
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        eprint!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cmd = match argv.first().map(String::as_str) {
        Some("serve" | "mock-upstream" | "check" | "reload") => argv.remove(0),
        _ => "serve".to_owned(),
    };
    let result = match cmd.as_str() {
        "mock-upstream" => mock_upstream(Args(argv)),
        "check" => check(Args(argv)),
        "reload" => reload(Args(argv)),
        _ => serve(Args(argv)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(mut args: Args) -> Result<(), String> {
    let config_path = args.flag("--config")?;
    let listen = args.flag("--listen")?.map(|s| parse_addr(&s)).transpose()?;
    let workers = args
        .flag("--workers")?
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("--workers {s:?} is not a number"))
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
        return Err("--workers must be at least 1".into());
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
            })?;
            ringway::log::info(format_args!("built-in mock provider on http://{addr}"));
            Config::embedded_default(addr).map_err(|e| e.to_string())?
        }
    };
    overrides.apply(&mut config);
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

fn mock_upstream(mut args: Args) -> Result<(), String> {
    let listen = parse_addr(
        &args
            .flag("--listen")?
            .unwrap_or_else(|| "127.0.0.1:4010".into()),
    )?;
    let ms = |v: Option<String>, name: &str, default: u64| -> Result<Duration, String> {
        match v {
            None => Ok(Duration::from_millis(default)),
            Some(s) => s
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{name} {s:?} is not a number")),
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
            .map_err(|e| format!("--faults: {e}"))?,
    };
    args.finish()?;
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (addr, t) = mock::spawn(MockOptions {
        listen,
        defaults: Defaults { ttft, inter_token },
        tls,
        driver,
        faults,
    })?;
    ringway::log::info(format_args!("mock provider listening on {scheme}://{addr}"));
    let _ = t.join();
    Ok(())
}

fn check(mut args: Args) -> Result<(), String> {
    let path = args.flag("--config")?.ok_or("check needs --config FILE")?;
    args.finish()?;
    let config = Config::load(&PathBuf::from(&path)).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    write!(out, "{path}: OK\n{}", config.describe()).map_err(|e| e.to_string())?;
    Ok(())
}

fn reload(mut args: Args) -> Result<(), String> {
    let pid_file = args.flag("--pid-file")?;
    let config_path = args.flag("--config")?;
    args.finish()?;
    let pid_file = match (pid_file, &config_path) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(c)) => {
            // Validate first: a file the gateway would refuse is reported here, not in its log.
            let config = Config::load(&PathBuf::from(c)).map_err(|e| e.to_string())?;
            config
                .server
                .pid_file
                .ok_or_else(|| format!("{c}: server.pid_file is not set; pass --pid-file"))?
        }
        (None, None) => return Err("reload needs --pid-file FILE or --config FILE".into()),
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
        return Err(format!(
            "pid {pid} from {} is not a running ringway (stale pid file?)",
            pid_file.display()
        ));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    eprintln!("ringway: sent SIGHUP to pid {pid}; its log says which config generation each worker serves");
    Ok(())
}
