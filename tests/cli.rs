//! The first hour through the real binary: `--version`, `--help` for every command, usage
//! errors, the log's timestamps and JSON format, what `check` catches before `serve` would,
//! the example configs in `examples/`, and the systemd unit in `contrib/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::*;

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("RINGWAY_LOG")
        .env_remove("RINGWAY_LOG_FORMAT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_prints_the_package_version_on_stdout() {
    let want = format!("ringway {}", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-V"], &["version"]] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().next(), Some(want.as_str()), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

/// Every command's help goes to stdout with exit 0 and shows that command's usage line.
#[test]
fn help_is_on_stdout_for_every_command() {
    let cases: &[(&[&str], &str)] = &[
        (&["--help"], "ringway [serve]"),
        (&["-h"], "ringway [serve]"),
        (&["help"], "ringway [serve]"),
        (&["serve", "--help"], "ringway [serve]"),
        (&["serve", "--config", "x.toml", "-h"], "ringway [serve]"),
        (&["check", "--help"], "ringway check --config FILE"),
        (&["check", "-h"], "ringway check --config FILE"),
        (&["help", "check"], "ringway check --config FILE"),
        (&["mock-upstream", "--help"], "ringway mock-upstream"),
        (&["reload", "--help"], "ringway reload"),
        (&["help", "reload"], "ringway reload"),
        (&["version", "--help"], "ringway version"),
    ];
    for (args, usage) in cases {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?} wrote stderr: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(usage),
            "{args:?}: {usage:?} missing:\n{stdout}"
        );
    }
    // One command's help is about that command.
    let check = text(&run(&["check", "--help"]).stdout);
    assert!(!check.contains("mock-upstream"), "{check}");
}

#[test]
fn full_help_lists_every_command_the_log_variables_and_the_signals() {
    let out = run(&["--help"]);
    let help = text(&out.stdout);
    for needle in [
        "ringway [serve]",
        "ringway check",
        "ringway reload",
        "ringway mock-upstream",
        "ringway version",
        "ringway help",
        "RINGWAY_LOG ",
        "error | warn | info | debug",
        "RINGWAY_LOG_FORMAT",
        "json",
        "SIGHUP",
        "SIGTERM",
        "SIGINT",
        "SIGUSR1",
    ] {
        assert!(
            help.contains(needle),
            "{needle:?} missing from --help:\n{help}"
        );
    }
}

#[test]
fn usage_errors_go_to_stderr_with_exit_2() {
    for args in [
        &["--bogus"][..],
        &["check"],
        &["check", "--config"],
        &["check", "--config", "a.toml", "extra"],
        &["serve", "--workers", "many"],
        &["serve", "--driver", "kqueue"],
        &["help", "nonsense"],
        &["reload"],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.starts_with("ringway: "), "{args:?}: {err}");
        assert!(
            err.contains("ringway help"),
            "{args:?} gives no pointer to help: {err}"
        );
    }
    // A file that cannot be read is not a usage error.
    let out = run(&["check", "--config", "/nonexistent/ringway.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// RFC 3339 UTC with milliseconds, as the log writes it.
fn stamp(t: SystemTime) -> String {
    let mut v = Vec::new();
    ringway::calendar::rfc3339_millis(&mut v, t);
    String::from_utf8(v).unwrap()
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The first log line of a mock provider started with `env`.
fn first_mock_line(env: &[(&str, &str)]) -> (String, String, String) {
    let before = stamp(SystemTime::now());
    let mut cmd = Command::new(bin());
    cmd.args(["mock-upstream", "--listen", "127.0.0.1:0"])
        .env_remove("RINGWAY_LOG")
        .env_remove("RINGWAY_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let after = stamp(SystemTime::now());
    (line, before, after)
}

#[test]
fn log_lines_start_with_an_rfc3339_utc_timestamp() {
    let (line, before, after) = first_mock_line(&[]);
    let (ts, rest) = line.split_once(' ').unwrap_or(("", ""));
    assert!(is_stamp(ts), "no timestamp: {line:?}");
    // Same format, so the text order is the time order.
    assert!(
        before.as_str() <= ts && ts <= after.as_str(),
        "{before} <= {ts} <= {after}"
    );
    assert!(
        rest.starts_with("ringway info: mock provider listening on http://127.0.0.1:"),
        "{line:?}"
    );
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
}

#[test]
fn json_log_lines_are_one_object_each() {
    let (line, before, after) = first_mock_line(&[("RINGWAY_LOG_FORMAT", "json")]);
    let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["level", "msg", "ts"], "{line}");
    let ts = v["ts"].as_str().unwrap();
    assert!(is_stamp(ts), "{line}");
    assert!(
        before.as_str() <= ts && ts <= after.as_str(),
        "{before} <= {ts} <= {after}"
    );
    assert_eq!(v["level"], "info");
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .starts_with("mock provider listening on http://127.0.0.1:"),
        "{line}"
    );
}

/// A message carrying quotes, a backslash and a newline (here, from a file name) stays one
/// line: escaped in JSON, and in text too, so nothing can forge a second line.
#[test]
fn log_messages_are_escaped_into_one_line() {
    let dir = temp_path("odd");
    std::fs::create_dir_all(&dir).unwrap();
    let name = dir.join("we\"ird\\\nname.toml");
    let name_text = name.to_str().unwrap();
    for format in ["json", "text"] {
        let out = run_env(
            &["serve", "--config", name_text],
            &[("RINGWAY_LOG_FORMAT", format)],
        );
        assert_eq!(out.status.code(), Some(1), "{format}");
        let err = text(&out.stderr);
        assert_eq!(err.matches('\n').count(), 1, "{format}: {err:?}");
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(err.trim_end()).unwrap();
            assert_eq!(v["level"], "error");
            let msg = v["msg"].as_str().unwrap();
            assert!(msg.contains(name_text), "{msg:?}");
        } else {
            assert!(err.contains("ringway error: "), "{err:?}");
            assert!(err.contains("we\"ird\\\\\\nname.toml"), "{err:?}");
        }
    }
}

#[test]
fn an_unknown_log_format_is_named_in_a_warning() {
    let (line, _, _) = first_mock_line(&[("RINGWAY_LOG_FORMAT", "yaml")]);
    assert!(
        line.contains("ringway warn: RINGWAY_LOG_FORMAT"),
        "{line:?}"
    );
    assert!(line.contains("\"yaml\""), "{line:?}");
}

#[test]
fn check_prints_the_driver_as_the_file_spells_it() {
    for driver in ["auto", "io_uring", "epoll"] {
        let toml = format!(
            "[server]\ndriver = \"{driver}\"\n\n[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n"
        );
        let (ok, out, err, _) = check(&toml);
        assert!(ok, "{err}");
        assert!(out.contains(&format!("| driver {driver} |")), "{out}");
    }
}

#[test]
fn check_warns_about_a_config_without_providers() {
    let (ok, out, err, file) = check("[server]\nlisten = \"127.0.0.1:0\"\n");
    // serve starts with it (admin endpoints work), so check accepts it, with a warning.
    assert!(ok, "{err}");
    assert!(out.contains(": OK"), "{out}");
    assert!(
        err.contains(&format!("warning: {file}: no [[provider]]")),
        "no warning: {err:?}"
    );
    let (_, _, err, _) = check(
        "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n",
    );
    assert!(!err.contains("no [[provider]]"), "{err}");
}

const ONE_PROVIDER: &str =
    "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n";

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Each path serve must create is probed: a missing directory is refused by check as serve
/// refuses it, and an existing directory is left as it was.
#[test]
fn check_refuses_paths_serve_cannot_create_and_leaves_nothing_behind() {
    let dir = temp_path("paths");
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing");
    let d = dir.display();
    let m = missing.display();
    let cases = [
        (
            format!("[custody]\npath = \"{m}/custody.db\"\n"),
            "custody.path",
        ),
        (
            format!("[responses.store]\npath = \"{m}/responses.db\"\n"),
            "responses.store.path",
        ),
        (
            format!("[access_log]\npath = \"{m}/access.log\"\n"),
            "access_log.path",
        ),
        (
            format!("[server]\npid_file = \"{m}/ringway.pid\"\n"),
            "server.pid_file",
        ),
    ];
    for (toml, key) in &cases {
        let (ok, out, err, file) = check(&format!("{toml}\n{ONE_PROVIDER}"));
        assert!(!ok, "accepted {toml}: {out}");
        assert!(err.contains(&format!("{file}: {key}: ")), "{toml}: {err}");
        assert!(err.contains("does not exist"), "{toml}: {err}");
        assert!(!missing.exists(), "check created {m}");
    }
    // The same stores in a directory that exists: accepted, and nothing is left there.
    let toml = format!(
        "[server]\npid_file = \"{d}/ringway.pid\"\n\n[custody]\npath = \"{d}/custody.db\"\n\n\
         [responses.store]\npath = \"{d}/responses.db\"\n\n[access_log]\npath = \"{d}/access.log\"\n\n{ONE_PROVIDER}"
    );
    let (ok, out, err, _) = check(&toml);
    assert!(ok, "{err}");
    assert!(out.contains(": OK"), "{out}");
    assert_eq!(
        files_in(&dir),
        Vec::<PathBuf>::new(),
        "check left files behind"
    );
}

/// serve refuses the custody path whose directory is missing; check now says so first.
#[test]
fn check_and_serve_agree_on_a_custody_path_in_a_missing_directory() {
    let dir = temp_path("custody-missing");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[custody]\npath = \"{}/custody.db\"\n\n{ONE_PROVIDER}",
        dir.display()
    );
    let path = write_config(&toml);
    let serve = run(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(serve.status.code(), Some(1), "{}", text(&serve.stderr));
    let check = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "check accepted what serve refuses"
    );
}

#[test]
fn check_refuses_a_store_file_that_is_not_a_database() {
    let dir = temp_path("notdb");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("custody.db");
    std::fs::write(
        &file,
        "not sqlite at all, but long enough to look like a header\n",
    )
    .unwrap();
    let (ok, _, err, _) = check(&format!(
        "[custody]\npath = \"{}\"\n\n{ONE_PROVIDER}",
        file.display()
    ));
    assert!(!ok);
    assert!(err.contains("not a SQLite database"), "{err}");
    // An existing database is fine.
    let db = dir.join("ok.db");
    let toml = format!("[custody]\npath = \"{}\"\n\n{ONE_PROVIDER}", db.display());
    let mut g = gateway(&toml);
    signal(&g, "TERM");
    assert!(exit_within(&mut g, Duration::from_secs(20)).is_some());
    assert!(db.exists());
    let (ok, _, err, _) = check(&toml);
    assert!(ok, "{err}");
}

/// Where the examples' absolute paths point in the test: a temp dir holding test certificates.
fn example_text(path: &Path, root: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.replace("/etc/ringway/", &format!("{}/etc/", root.display()))
        .replace("/var/lib/ringway/", &format!("{}/lib/", root.display()))
        .replace("/var/log/ringway/", &format!("{}/log/", root.display()))
        .replace("/run/ringway/", &format!("{}/run/", root.display()))
}

#[test]
fn every_example_config_passes_check() {
    let root = temp_path("examples");
    for sub in ["etc/tls", "lib", "log", "run"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let certs = test_certs();
    std::fs::write(root.join("etc/tls/fullchain.pem"), &certs.leaf).unwrap();
    std::fs::write(root.join("etc/tls/privkey.pem"), &certs.key).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let examples: Vec<PathBuf> = files_in(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(examples.len() >= 5, "examples/ holds {examples:?}");
    for example in &examples {
        let (ok, out, err, _) = check(&example_text(example, &root));
        assert!(ok, "{}:\n{err}", example.display());
        assert!(!err.contains("warning"), "{}:\n{err}", example.display());
        assert!(out.contains("provider "), "{}:\n{out}", example.display());
    }
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok_and(|o| o.status.success()),
        "systemd-analyze is not installed: it checks contrib/ringway.service (apt-get install systemd)"
    );
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/ringway.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains("ExecStart=/usr/local/bin/ringway serve --config /etc/ringway/ringway.toml")
    );
    // verify wants ExecStart's binary to exist: point it at the one under test.
    let dir = temp_path("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("ringway.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/ringway", bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let err = text_of(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    // Warnings about this unit are failures too; other units on the machine are not ours.
    // (verify only warns, exit 0, about an unknown key or a bad value: those lines name the
    // unit.)
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("ringway.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{err}");
}

fn text_of(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}
