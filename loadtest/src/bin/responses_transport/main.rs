//! `responses-transport`: what Codex's two transports and two ways of continuing a conversation
//! cost a gateway, side by side in one run. Part 1: the same Codex-sized streamed turn over
//! HTTP/SSE (`POST /v1/responses`, one kept-alive connection) and over a WebSocket (one
//! connection carrying `response.create` messages), in alternating batches. Part 2: a
//! multi-turn conversation continued by `previous_response_id` against the same conversation
//! resending its whole input each turn, over both transports. Reported per variant: the
//! gateway's CPU per response (from /proc), time to first event and first delta, bytes sent.
//!
//! `loadtest/responses-transport.sh` sets up the gateway and the mock and runs this.

#[allow(dead_code)]
#[path = "../../http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../../procfs.rs"]
mod procfs;

mod codex;
mod wire;
mod ws;

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::wire::{Conn, Kind, Turn};

const USAGE: &str = "\
responses-transport --pid PID [options]
  --url URL              gateway (default http://127.0.0.1:4750)
  --model NAME           route to ask for (default gpt)
  --label TEXT           names the provider kind in the report (default: the model)
  --turns N              part 1: measured turns per transport (default 300)
  --batch N              part 1: turns per batch; batches alternate transports (default 25)
  --warmup N             part 1: unmeasured turns per transport first (default 20)
  --input-bytes N        part 1: the request's size (default 71680)
  --conversations N      part 2: conversations per variant (default 12; 0 skips part 2)
  --conv-turns N         part 2: turns per conversation (default 10)
  --conv-start-bytes N   part 2: the first turn's input size (default 40960)
  --think-ms N           part 2: pause between a conversation's turns (the tool Codex runs; default 0)
  --variants LIST        part 2: which of http-continued,http-resend,ws-continued,ws-resend (default all)
  --dump-request FILE    write part 1's request body to FILE
";

/// Command-line settings.
struct Opts {
    url: String,
    model: String,
    label: Option<String>,
    pid: u32,
    turns: usize,
    batch: usize,
    warmup: usize,
    input_bytes: usize,
    conversations: usize,
    conv_turns: usize,
    conv_start: usize,
    think: Duration,
    variants: Vec<&'static str>,
    dump: Option<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        url: "http://127.0.0.1:4750".into(),
        model: "gpt".into(),
        label: None,
        pid: 0,
        turns: 300,
        batch: 25,
        warmup: 20,
        input_bytes: 70 * 1024,
        conversations: 12,
        conv_turns: 10,
        conv_start: 40 * 1024,
        think: Duration::ZERO,
        variants: VARIANTS.iter().map(|v| v.key).collect(),
        dump: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--url" => o.url = val()?,
            "--model" => o.model = val()?,
            "--label" => o.label = Some(val()?),
            "--pid" => o.pid = num(val()?)? as u32,
            "--turns" => o.turns = num(val()?)?,
            "--batch" => o.batch = num(val()?)?.max(1),
            "--warmup" => o.warmup = num(val()?)?,
            "--input-bytes" => o.input_bytes = num(val()?)?,
            "--conversations" => o.conversations = num(val()?)?,
            "--conv-turns" => o.conv_turns = num(val()?)?.max(1),
            "--conv-start-bytes" => o.conv_start = num(val()?)?,
            "--think-ms" => o.think = Duration::from_millis(num(val()?)? as u64),
            "--variants" => {
                let list = val()?;
                o.variants = Vec::new();
                for k in list.split(',') {
                    let v = VARIANTS.iter().find(|v| v.key == k);
                    o.variants
                        .push(v.ok_or(format!("--variants: unknown {k}"))?.key);
                }
            }
            "--dump-request" => o.dump = Some(val()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.pid == 0 {
        return Err("--pid (the gateway's process id) is required".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("responses-transport: {e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(report) => {
            let _ = std::io::stdout().lock().write_all(report.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("responses-transport: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The gateway's CPU so far: the run time of all its threads (ns, from
/// `/proc/PID/task/*/schedstat`, exact where utime+stime count 10 ms ticks) and utime+stime.
#[derive(Clone, Copy)]
struct Cpu {
    sched_ns: u64,
    /// The part of `sched_ns` run by the worker threads (named `ringway-wN`); the rest is the
    /// main thread and helpers (the responses store's writer and reader).
    worker_ns: u64,
    stat: Duration,
}

fn cpu(pid: u32, ticks: u64) -> Result<Cpu, String> {
    let gone = || format!("process {pid} is not readable in /proc");
    let (mut sched_ns, mut worker_ns) = (0u64, 0u64);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|_| gone())?;
    for t in tasks.flatten() {
        // A thread that ended between the listing and the read has nothing to add.
        let ns = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_ascii_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        sched_ns += ns;
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("ringway-w") {
            worker_ns += ns;
        }
    }
    let stat = procfs::cpu_time(pid, ticks).ok_or_else(gone)?;
    Ok(Cpu {
        sched_ns,
        worker_ns,
        stat,
    })
}

/// What one variant measured.
#[derive(Default)]
struct Tally {
    name: String,
    /// Gateway CPU per response, one value per batch (µs).
    per_batch: Vec<f64>,
    /// The worker threads' share of it, per batch (µs).
    worker_batch: Vec<f64>,
    sched_ns: u64,
    stat: Duration,
    responses: usize,
    first_event: Vec<Duration>,
    first_delta: Vec<Duration>,
    total: Vec<Duration>,
    sent: usize,
    /// Extra lines for the report.
    notes: Vec<String>,
}

impl Tally {
    fn named(name: &str) -> Tally {
        Tally {
            name: name.into(),
            ..Tally::default()
        }
    }

    fn add_turn(&mut self, t: &Turn) {
        self.first_event.push(t.first_event);
        if let Some(d) = t.first_delta {
            self.first_delta.push(d);
        }
        self.total.push(t.total);
        self.sent += t.sent;
    }

    fn add_cpu(&mut self, before: Cpu, after: Cpu, responses: usize) {
        let ns = after.sched_ns.saturating_sub(before.sched_ns);
        self.sched_ns += ns;
        self.stat += after.stat.saturating_sub(before.stat);
        self.responses += responses;
        self.per_batch
            .push(ns as f64 / 1e3 / responses.max(1) as f64);
        let w = after.worker_ns.saturating_sub(before.worker_ns);
        self.worker_batch
            .push(w as f64 / 1e3 / responses.max(1) as f64);
    }

    fn cpu_median(&self) -> f64 {
        median(&self.per_batch)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s.get(n / 2).copied().unwrap_or(f64::NAN),
        n => {
            (s.get(n / 2 - 1).copied().unwrap_or(0.0) + s.get(n / 2).copied().unwrap_or(0.0)) / 2.0
        }
    }
}

/// The `q` quantile (nearest rank) in milliseconds.
fn ms(v: &[Duration], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn run(o: &Opts) -> Result<String, String> {
    let url = http::parse_url(&o.url, "/v1/responses").map_err(|e| format!("{}: {e}", o.url))?;
    let ticks = procfs::clk_tck();
    let label = o.label.clone().unwrap_or_else(|| o.model.clone());
    let mut out = String::new();
    let mut http_conn = Conn::open(Kind::Http, &url)?;
    let mut ws_conn = Conn::open(Kind::Ws, &url)?;

    // Part 1: the same turn, batches alternating between the transports (ABBA, so neither is
    // always first after the other).
    let body = codex::request(&o.model, o.input_bytes);
    if let Some(path) = &o.dump {
        let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
        std::fs::write(path, bytes).map_err(|e| format!("{path}: {e}"))?;
    }
    if o.turns > 0 {
        part1(
            o,
            &mut out,
            &mut http_conn,
            &mut ws_conn,
            ticks,
            &label,
            &body,
        )?;
    }
    if o.conversations > 0 {
        part2(o, &mut out, &mut http_conn, &mut ws_conn, ticks, &label)?;
    }
    Ok(out)
}

/// Part 1: the same turn, batches alternating between the transports.
fn part1(
    o: &Opts,
    out: &mut String,
    http_conn: &mut Conn,
    ws_conn: &mut Conn,
    ticks: u64,
    label: &str,
    body: &Value,
) -> Result<(), String> {
    let body_len = serde_json::to_vec(body).map_or(0, |b| b.len());
    let http_req = http_conn.encode(body);
    let ws_req = ws_conn.encode(body);
    for _ in 0..o.warmup {
        http_conn.turn(&http_req)?;
        ws_conn.turn(&ws_req)?;
    }
    let mut tallies = [Tally::named("HTTP/SSE"), Tally::named("WebSocket")];
    let batches = o.turns.div_ceil(o.batch);
    for b in 0..batches {
        let n = o.batch.min(o.turns - b * o.batch);
        let order: [usize; 2] = if b % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (conn, req) = if i == 0 {
                (&mut *http_conn, &http_req)
            } else {
                (&mut *ws_conn, &ws_req)
            };
            let Some(t) = tallies.get_mut(i) else {
                continue;
            };
            let before = cpu(o.pid, ticks)?;
            let mut turns = Vec::with_capacity(n);
            for _ in 0..n {
                turns.push(conn.turn(req)?);
            }
            let after = cpu(o.pid, ticks)?;
            t.add_cpu(before, after, n);
            for turn in &turns {
                t.add_turn(turn);
            }
        }
    }
    let _ = writeln!(
        out,
        "== {label} (route `{}`): one streamed Codex-sized turn, {body_len} B of JSON, {} input items, \
         {} turns per transport in {batches} alternating batches (ABBA) after {} warm-up turns each",
        o.model,
        body["input"].as_array().map_or(0, Vec::len),
        o.turns,
        o.warmup
    );
    table(out, &tallies, "response");
    Ok(())
}

fn table(out: &mut String, t: &[Tally], unit: &str) {
    let _ = writeln!(
        out,
        "{:<26} {:>10} {:>17} {:>11} {:>10} {:>11} {:>20} {:>20} {:>20} {:>12}",
        "variant",
        format!("{unit}s"),
        format!("CPU µs/{unit} med"),
        "(min–max)",
        "on worker",
        "(all, ticks)",
        "first event p50/p99",
        "first delta p50/p99",
        "last event p50/p99",
        format!("B sent/{unit}")
    );
    for x in t {
        let min = x.per_batch.iter().copied().fold(f64::INFINITY, f64::min);
        let max = x.per_batch.iter().copied().fold(0.0, f64::max);
        let all_ticks = x.stat.as_secs_f64() * 1e6 / x.responses.max(1) as f64;
        let _ = writeln!(
            out,
            "{:<26} {:>10} {:>17.1} {:>11} {:>10.1} {:>11.1} {:>20} {:>20} {:>20} {:>12}",
            x.name,
            x.responses,
            x.cpu_median(),
            format!("{min:.0}–{max:.0}"),
            median(&x.worker_batch),
            all_ticks,
            format!(
                "{:.3} / {:.3} ms",
                ms(&x.first_event, 0.5),
                ms(&x.first_event, 0.99)
            ),
            format!(
                "{:.3} / {:.3} ms",
                ms(&x.first_delta, 0.5),
                ms(&x.first_delta, 0.99)
            ),
            format!("{:.3} / {:.3} ms", ms(&x.total, 0.5), ms(&x.total, 0.99)),
            x.sent / x.responses.max(1),
        );
    }
    if let [a, b] = t {
        let _ = writeln!(
            out,
            "{} / {}: CPU {:.2}×, first event p50 {:.2}× p99 {:.2}×",
            b.name,
            a.name,
            b.cpu_median() / a.cpu_median(),
            ms(&b.first_event, 0.5) / ms(&a.first_event, 0.5),
            ms(&b.first_event, 0.99) / ms(&a.first_event, 0.99),
        );
    }
    for x in t {
        for n in &x.notes {
            let _ = writeln!(out, "  {}: {n}", x.name);
        }
    }
}

/// How a conversation's turns reach the gateway.
#[derive(Clone, Copy)]
struct Variant {
    key: &'static str,
    name: &'static str,
    kind: Kind,
    /// Send `previous_response_id` and only the new items (else the whole input each turn).
    continued: bool,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        key: "http-continued",
        name: "HTTP previous_response_id",
        kind: Kind::Http,
        continued: true,
    },
    Variant {
        key: "http-resend",
        name: "HTTP resend",
        kind: Kind::Http,
        continued: false,
    },
    Variant {
        key: "ws-continued",
        name: "WS previous_response_id",
        kind: Kind::Ws,
        continued: true,
    },
    Variant {
        key: "ws-resend",
        name: "WS resend",
        kind: Kind::Ws,
        continued: false,
    },
];

/// What the last turn of a conversation showed, to check every variant ran the same one.
struct Last {
    input_tokens: u64,
    first_event: Duration,
}

/// Part 2: conversations, variants interleaved conversation by conversation (rotating which
/// goes first).
fn part2(
    o: &Opts,
    out: &mut String,
    http_conn: &mut Conn,
    ws_conn: &mut Conn,
    ticks: u64,
    label: &str,
) -> Result<(), String> {
    let variants: Vec<Variant> = VARIANTS
        .iter()
        .filter(|v| o.variants.contains(&v.key))
        .copied()
        .collect();
    let mut tallies: Vec<Tally> = variants.iter().map(|v| Tally::named(v.name)).collect();
    let mut lasts: Vec<Vec<Last>> = variants.iter().map(|_| Vec::new()).collect();
    let first = codex::request(&o.model, o.conv_start);
    let first_len = serde_json::to_vec(&first).map_or(0, |b| b.len());
    let opening: Vec<Value> = first["input"].as_array().cloned().unwrap_or_default();
    // One unmeasured conversation per variant first.
    for v in variants.iter().copied() {
        let conn = if v.kind == Kind::Http {
            &mut *http_conn
        } else {
            &mut *ws_conn
        };
        conversation(o, conn, v, &opening)?;
    }
    for c in 0..o.conversations {
        for k in 0..VARIANTS.len() {
            let i = (k + c) % VARIANTS.len();
            let (Some(v), Some(t), Some(l)) =
                (VARIANTS.get(i), tallies.get_mut(i), lasts.get_mut(i))
            else {
                continue;
            };
            let conn = if v.kind == Kind::Http {
                &mut *http_conn
            } else {
                &mut *ws_conn
            };
            let before = cpu(o.pid, ticks)?;
            let (turns, last) = conversation(o, conn, *v, &opening)?;
            let after = cpu(o.pid, ticks)?;
            t.add_cpu(before, after, turns.len());
            for turn in &turns {
                t.add_turn(turn);
            }
            l.push(last);
        }
    }
    for (t, l) in tallies.iter_mut().zip(&lasts) {
        let fe: Vec<Duration> = l.iter().map(|x| x.first_event).collect();
        let tokens: Vec<u64> = l.iter().map(|x| x.input_tokens).collect();
        let mut distinct = tokens.clone();
        distinct.sort_unstable();
        distinct.dedup();
        t.notes.push(format!(
            "turn {}: first event p50 {:.3} ms; the provider's input_tokens {:?}",
            o.conv_turns,
            ms(&fe, 0.5),
            distinct
        ));
    }
    let _ = writeln!(
        out,
        "\n== {label}: a {}-turn conversation (the first turn's request {first_len} B, each turn \
         adding a tool output of ~{} B or a user message), {} conversations per variant, interleaved; \
         previous_response_id over HTTP uses the store, over a WebSocket the connection's memory",
        o.conv_turns,
        codex::FILE_BYTES,
        o.conversations
    );
    if !o.think.is_zero() {
        let _ = writeln!(
            out,
            "(the client pauses {} ms between turns)",
            o.think.as_millis()
        );
    }
    table(out, &tallies, "turn");
    // The comparison the issue asks for: continuing against resending, per transport.
    if let [hc, hr, wc, wr] = tallies.as_slice() {
        for (c, r) in [(hc, hr), (wc, wr)] {
            let _ = writeln!(
                out,
                "{} / {}: CPU {:.2}×, bytes sent {:.2}×, first event p50 {:.2}×",
                c.name,
                r.name,
                c.cpu_median() / r.cpu_median(),
                c.sent as f64 / r.sent.max(1) as f64,
                ms(&c.first_event, 0.5) / ms(&r.first_event, 0.5),
            );
        }
    }
    Ok(())
}

/// One conversation of `o.conv_turns` turns: its turns and what its last one showed.
fn conversation(
    o: &Opts,
    conn: &mut Conn,
    v: Variant,
    opening: &[Value],
) -> Result<(Vec<Turn>, Last), String> {
    let mut history: Vec<Value> = Vec::new();
    let mut new: Vec<Value> = opening.to_vec();
    let mut previous: Option<String> = None;
    let mut turns = Vec::with_capacity(o.conv_turns);
    let mut last = None;
    for n in 0..o.conv_turns {
        if n > 0 && !o.think.is_zero() {
            std::thread::sleep(o.think);
        }
        let mut body = codex::base(&o.model);
        let input = if v.continued {
            new.clone()
        } else {
            let mut all = history.clone();
            all.extend(new.iter().cloned());
            all
        };
        body.insert("input".into(), Value::Array(input));
        if v.continued {
            // Over HTTP the store keeps the conversation; a WebSocket remembers it on the
            // connection with `store: false`, as Codex sends it.
            body.insert("store".into(), Value::Bool(v.kind == Kind::Http));
            if let Some(id) = &previous {
                body.insert("previous_response_id".into(), Value::from(id.as_str()));
            }
        }
        let req = conn.encode(&Value::Object(body));
        let turn = conn
            .turn(&req)
            .map_err(|e| format!("{} turn {}: {e}", v.name, n + 1))?;
        let done: Value = serde_json::from_slice(&turn.completed)
            .map_err(|e| format!("{} turn {}: response.completed: {e}", v.name, n + 1))?;
        let resp = &done["response"];
        previous = resp["id"].as_str().map(str::to_owned);
        let output = resp["output"].as_array().cloned().unwrap_or_default();
        last = Some(Last {
            input_tokens: resp["usage"]["input_tokens"].as_u64().unwrap_or(0),
            first_event: turn.first_event,
        });
        history.append(&mut new);
        history.extend(output.iter().cloned());
        // The next turn: each call's output if the model called tools, else the user's next ask.
        new = output
            .iter()
            .filter(|i| i["type"] == "function_call")
            .map(|i| {
                codex::tool_output(
                    i["call_id"].as_str().unwrap_or_default(),
                    &codex::source_file(n as u64 + 100, codex::FILE_BYTES),
                )
            })
            .collect();
        if new.is_empty() {
            new.push(codex::user(
                "Good. Now run the tests for the parser and show me what still fails.",
            ));
        }
        turns.push(turn);
    }
    let last = last.ok_or("a conversation of no turns")?;
    Ok((turns, last))
}
