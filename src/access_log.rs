//! The access log: one JSON line per request. A worker formats its line and hands it to a
//! bounded channel without waiting (`try_send`); one writer thread (`ringway-access-log`)
//! writes what it receives in batches through a `BufWriter`, to stderr or a file. A full
//! channel drops the line, counts it (`ringway_access_log_dropped_total`) and warns at most
//! once per [`WARN_EVERY`]: a worker never blocks on the disk. [`reopen`] has the writer
//! reopen its file before its next batch (logrotate, on SIGUSR1).
//!
//! What a line never holds: a gateway key (only its configured name), a provider credential,
//! prompt or answer text. The strings a client chose (model, path) are JSON-escaped and cut
//! to [`MAX_FIELD_BYTES`]; the path loses its query string.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::calendar::rfc3339_millis;
use crate::offload::Drops;
use crate::usage::Usage;

/// Lines that may wait for the writer; past this the newest line is dropped.
pub const CHANNEL_LINES: usize = 16 * 1024;
/// Most lines written per batch (one flush each).
pub const BATCH_LINES: usize = 1024;
/// The writer's buffer.
pub const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Longest client-chosen string (model, path) kept in a line, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// Fewest seconds between two "lines dropped" warnings.
pub const WARN_EVERY: Duration = crate::offload::WARN_EVERY;

/// Where the access log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The process's stderr (beside the operational log, whose lines are not JSON).
    Stderr,
    /// A file, appended to; reopened by [`reopen`].
    File(PathBuf),
}

/// What the writer is handed.
enum Msg {
    /// A line, `\n` included.
    Line(Vec<u8>),
    /// Look at the reopen flag now.
    Wake,
    /// Say (on this channel) when everything handed over before it is written.
    Flush(std::sync::mpsc::Sender<()>),
}

static SINK: OnceLock<SyncSender<Msg>> = OnceLock::new();
static REOPEN: AtomicBool = AtomicBool::new(false);
static DROPPED: Drops = Drops::new();

/// Start the writer thread for `dest` (once per process: later calls change nothing, so a
/// reload cannot move the log). Fails when the file cannot be opened.
pub fn start(dest: &Destination) -> io::Result<()> {
    if SINK.get().is_some() {
        return Ok(());
    }
    let out = open(dest)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_LINES);
    if SINK.set(tx).is_err() {
        // Another thread started it first.
        return Ok(());
    }
    let dest = dest.clone();
    std::thread::Builder::new()
        .name("ringway-access-log".into())
        .spawn(move || write_loop(&dest, out, &rx))?;
    Ok(())
}

/// Is the access log on?
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Hand one line (ending in `\n`) to the writer, or drop it if the writer is behind.
pub fn submit(line: Vec<u8>) {
    if let Some(tx) = SINK.get() {
        offer(tx, line, &DROPPED);
    }
}

/// `try_send`, never waiting: a line the channel has no room for is counted in `dropped`
/// (which warns at most once per [`WARN_EVERY`]).
fn offer(tx: &SyncSender<Msg>, line: Vec<u8>, dropped: &Drops) {
    if tx.try_send(Msg::Line(line)).is_err() {
        dropped.count("access log writer is behind: lines");
    }
}

/// Have the writer reopen its file before its next batch (logrotate moved it away). Safe to
/// call from any thread, a signal-handling thread included; does nothing for stderr.
pub fn reopen() {
    REOPEN.store(true, Ordering::Release);
    // A full channel means the writer is busy: it looks at the flag before its next batch.
    if let Some(tx) = SINK.get() {
        let _ = tx.try_send(Msg::Wake);
    }
}

/// Wait (at most `timeout`) until every line handed over so far is written and flushed: for
/// the process's last moments (after a drain), never for a worker. False when the time ran
/// out or the log is off.
pub fn flush(timeout: Duration) -> bool {
    SINK.get()
        .is_some_and(|tx| crate::offload::flush(tx, timeout, Msg::Flush))
}

/// Lines dropped because the writer was behind.
pub fn dropped() -> u64 {
    DROPPED.total()
}

/// stderr for the writer: each write (a whole buffered batch) under one lock, so the
/// operational log's lines never land inside a batch.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

fn open(dest: &Destination) -> io::Result<Box<dyn Write + Send>> {
    Ok(match dest {
        Destination::Stderr => Box::new(Stderr),
        Destination::File(p) => Box::new(open_file(p)?),
    })
}

fn open_file(p: &PathBuf) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", p.display())))
}

/// The writer thread: a batch is whatever waits when it wakes (up to [`BATCH_LINES`]),
/// written and flushed together; after a batch that was not full it sleeps
/// [`GATHER`](crate::offload::GATHER) so that lines gather without waking it.
fn write_loop(dest: &Destination, out: Box<dyn Write + Send>, rx: &Receiver<Msg>) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, out);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        if REOPEN.swap(false, Ordering::AcqRel) {
            if let Destination::File(p) = dest {
                let _ = out.flush();
                match open_file(p) {
                    Ok(f) => out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, Box::new(f)),
                    // Keep writing where it was: losing lines is worse than a late rotation.
                    Err(e) => crate::log::error(format_args!("cannot reopen the {e}")),
                }
            }
        }
        let mut failed = false;
        let mut taken = 0;
        for msg in std::iter::once(first).chain(rx.try_iter().take(BATCH_LINES)) {
            taken += 1;
            match msg {
                Msg::Line(line) => failed |= out.write_all(&line).is_err(),
                Msg::Wake => {}
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        failed |= out.flush().is_err();
        if failed {
            crate::log::error(format_args!("access log write failed"));
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        if taken <= BATCH_LINES {
            std::thread::sleep(crate::offload::GATHER);
        }
    }
}

/// One request as its access log line says it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry<'a> {
    /// As in `x-ringway-request-id`.
    pub request_id: &'a str,
    /// The node that served (`[cluster] node_id`, default the host name): lines from several
    /// nodes can be merged and still say where each request ran.
    pub node: &'a str,
    /// The gateway key's configured name.
    pub key: Option<&'a str>,
    /// The client's dialect (`openai`, `anthropic`, `responses`).
    pub dialect: &'a str,
    /// The endpoint's metrics label.
    pub endpoint: &'a str,
    /// The request path (client's: bounded, query cut).
    pub path: &'a str,
    /// The model the client asked for (client's: bounded).
    pub model: Option<&'a str>,
    /// The route's name, or `direct`.
    pub route: Option<&'a str>,
    /// The provider that served (or last tried).
    pub provider: Option<&'a str>,
    /// The model sent upstream.
    pub upstream_model: Option<&'a str>,
    /// Requests sent to providers.
    pub attempts: u32,
    /// The status sent (0: none could be).
    pub status: u16,
    /// Bytes written to the client (head and body).
    pub bytes: u64,
    /// The answer was an event stream.
    pub stream: bool,
    /// Time to first token (streams).
    pub ttft: Option<Duration>,
    /// Head received → response written (None: the head could not be read).
    pub duration: Option<Duration>,
    /// The provider's usage.
    pub usage: Option<Usage>,
    /// `usage` is (in part) the gateway's estimate (a stream cut short).
    pub usage_estimated: bool,
    /// The provider's stop reason.
    pub stop: Option<&'a str>,
    /// The error kind (None on success).
    pub error: Option<&'a str>,
}

/// `s` cut to [`MAX_FIELD_BYTES`] at a character boundary.
fn bounded(s: &str) -> &str {
    if s.len() <= MAX_FIELD_BYTES {
        return s;
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => crate::json::write_json_string(out, bounded(s)),
        None => out.extend_from_slice(b"null"),
    }
}

fn millis(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        // Microsecond precision, written as milliseconds.
        Some(d) => {
            let us = d.as_micros();
            let _ = write!(out, "{}.{:03}", us / 1000, us % 1000);
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// The JSON line (with its `\n`) for `e`, stamped `now`.
pub fn format(e: &Entry<'_>, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339_millis(&mut out, now);
    out.extend_from_slice(b"\",\"request_id\":");
    string(&mut out, Some(e.request_id));
    out.extend_from_slice(b",\"node\":");
    string(&mut out, Some(e.node));
    out.extend_from_slice(b",\"key\":");
    string(&mut out, e.key);
    out.extend_from_slice(b",\"dialect\":");
    string(&mut out, Some(e.dialect));
    out.extend_from_slice(b",\"endpoint\":");
    string(&mut out, Some(e.endpoint));
    out.extend_from_slice(b",\"path\":");
    string(&mut out, Some(e.path.split('?').next().unwrap_or_default()));
    out.extend_from_slice(b",\"model\":");
    string(&mut out, e.model);
    out.extend_from_slice(b",\"route\":");
    string(&mut out, e.route);
    out.extend_from_slice(b",\"provider\":");
    string(&mut out, e.provider);
    out.extend_from_slice(b",\"upstream_model\":");
    string(&mut out, e.upstream_model);
    let _ = write!(
        out,
        ",\"attempts\":{},\"status\":{},\"bytes\":{},\"stream\":{},\"ttft_ms\":",
        e.attempts, e.status, e.bytes, e.stream
    );
    millis(&mut out, e.ttft);
    out.extend_from_slice(b",\"duration_ms\":");
    millis(&mut out, e.duration);
    out.extend_from_slice(b",\"tokens\":");
    match e.usage {
        Some(u) => {
            let _ = write!(
                out,
                "{{\"input\":{},\"output\":{},\"cache_read\":{},\"cache_write\":{},\"reasoning\":{}",
                u.input, u.output, u.cache_read, u.cache_write, u.reasoning
            );
            // Only where it is so: every other line keeps its shape.
            if e.usage_estimated {
                out.extend_from_slice(b",\"estimated\":true");
            }
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"stop_reason\":");
    string(&mut out, e.stop);
    out.extend_from_slice(b",\"error\":");
    string(&mut out, e.error);
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_client_strings_escaped_and_bounded() {
        let model = format!("m\"\\\u{2028}{}", "é".repeat(400));
        let e = Entry {
            request_id: "rw-1",
            node: "gw-a",
            key: Some("team-a"),
            dialect: "openai",
            endpoint: "chat_completions",
            path: "/v1/chat/completions?key=sk-secret",
            model: Some(&model),
            route: Some("direct"),
            status: 200,
            attempts: 2,
            bytes: 10,
            stream: true,
            ttft: Some(Duration::from_micros(12_345)),
            duration: Some(Duration::from_millis(40)),
            usage: Some(Usage {
                input: 3,
                output: 4,
                ..Usage::default()
            }),
            stop: Some("stop"),
            ..Entry::default()
        };
        let line = format(&e, std::time::UNIX_EPOCH);
        assert!(line.ends_with(b"}\n"));
        assert!(!line[..line.len() - 1].contains(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["path"], "/v1/chat/completions");
        assert_eq!(v["node"], "gw-a");
        assert!(!String::from_utf8_lossy(&line).contains("sk-secret"));
        let logged = v["model"].as_str().unwrap();
        assert!(logged.len() <= MAX_FIELD_BYTES && model.starts_with(logged));
        assert_eq!(v["ttft_ms"], 12.345);
        assert_eq!(v["duration_ms"], 40.0);
        assert_eq!(v["tokens"]["output"], 4);
        assert_eq!(v["tokens"].get("estimated"), None);
        let estimated = format(
            &Entry {
                usage_estimated: true,
                ..e
            },
            std::time::UNIX_EPOCH,
        );
        let v2: serde_json::Value = serde_json::from_slice(&estimated).unwrap();
        assert_eq!(v2["tokens"]["estimated"], true);
        assert_eq!(v2["tokens"]["input"], 3);
        assert_eq!(v["provider"], serde_json::Value::Null);
        assert_eq!(v["error"], serde_json::Value::Null);
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    }

    /// A full channel drops the line at once (no wait), counts it, and warns once per period.
    #[test]
    fn a_full_channel_drops_and_counts() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let dropped = Drops::new();
        for n in 0..5u8 {
            offer(&tx, vec![n], &dropped);
        }
        assert_eq!(dropped.total(), 3);
        // One warning for the three: the period started with the first.
        assert!(dropped.warned());
        let kept: Vec<Vec<u8>> = rx
            .try_iter()
            .map(|m| match m {
                Msg::Line(l) => l,
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(kept, vec![vec![0], vec![1]]);
    }

    /// The writer thread end to end (the one test in this binary that starts it): lines
    /// arrive in order, and after a rename `reopen` sends the next ones to a new file.
    #[test]
    fn the_writer_appends_and_reopens() {
        let dir = std::env::temp_dir().join(format!("ringway-alog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        let _ = std::fs::remove_file(&path);
        start(&Destination::File(path.clone())).unwrap();
        assert!(enabled());
        let wait_for = |p: &std::path::Path, want: &str| {
            for _ in 0..500 {
                if std::fs::read_to_string(p).unwrap_or_default() == want {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("{} never held {want:?}", p.display());
        };
        submit(b"one\n".to_vec());
        submit(b"two\n".to_vec());
        wait_for(&path, "one\ntwo\n");
        let rotated = dir.join("a.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        reopen();
        submit(b"three\n".to_vec());
        assert!(flush(Duration::from_secs(5)));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        wait_for(&rotated, "one\ntwo\n");
        assert_eq!(dropped(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
