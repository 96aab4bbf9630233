//! Agent-size request bodies: a coding agent's turn late in a session, in the Chat, Messages or
//! Responses format, grown to a chosen size. The seed is what real agents sent: Claude Code's
//! captured request (its system prompt, twelve tool definitions, settings) for Messages and
//! Chat, and Codex's captured turn (its instructions, ten tools, settings) for Responses. Tool
//! turns that read source files follow, in each agent's own result format, until the body
//! reaches the size asked for. Deterministic: the same arguments give the same bytes.
//!
//! Shared by `loadtest` (the `agent-body` command and the `agent-*` presets) and the gateway's
//! benches, which include this file by path.

use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Claude Code's second request of a print-mode run, byte for byte.
const CLAUDE_CODE: &str = include_str!("../../tests/fixtures/claude_code/request.json");
/// Codex's second turn, byte for byte.
const CODEX: &str = include_str!("../../tests/fixtures/codex/turn2.request.json");

/// The sizes the issue and the docs measure: 50, 150 and 300 KB.
pub const SIZES: [usize; 3] = [50 * 1024, 150 * 1024, 300 * 1024];

/// Lines in one file an agent reads (about 9 KB of source).
const FILE_LINES: usize = 220;

/// The wire format of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// OpenAI Chat Completions.
    Chat,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Responses.
    Responses,
}

impl Shape {
    /// All three, in a fixed order.
    pub const ALL: [Shape; 3] = [Shape::Chat, Shape::Messages, Shape::Responses];

    /// The name used on command lines and in bench ids.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Chat => "chat",
            Shape::Messages => "messages",
            Shape::Responses => "responses",
        }
    }

    /// Parse a command-line name.
    pub fn parse(s: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Parse a size such as `300k`, `50K` or `4096`.
pub fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1024),
        None => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// A body of `shape` for `model`, at least `target` bytes long and within one file of it
/// (the last file is cut to fit, so the body lands within a few hundred bytes above `target`).
pub fn body(shape: Shape, target: usize, model: &str, stream: bool) -> Vec<u8> {
    let (seed, turns) = grown(shape, target, model, stream);
    seed.assemble(&turns).into_bytes()
}

/// The session that ends in [`body`]'s conversation, turn by turn: body `k` holds the first
/// `k` tool turns, as an agent resends its whole conversation each turn. A Messages session
/// marks its newest tool result for caching, as Claude Code does: the mark moves every turn,
/// so the message that was last comes again changed.
pub fn session(shape: Shape, target: usize, model: &str, stream: bool) -> Vec<Vec<u8>> {
    let (seed, turns) = grown(shape, target, model, stream);
    (1..=turns.len())
        .map(|k| {
            let mut sent = turns[..k].to_vec();
            if let (Shape::Messages, Some(last)) = (shape, sent.last_mut()) {
                *last = marked(last);
            }
            seed.assemble(&sent).into_bytes()
        })
        .collect()
}

/// A Messages tool turn (see [`Shape::turn`]) with its tool result marked for caching.
fn marked(turn: &str) -> String {
    // The turn ends with its tool result block, its content and its message closing.
    match turn.strip_suffix("}]}") {
        Some(open) => format!("{open},\"cache_control\":{{\"type\":\"ephemeral\"}}}}]}}"),
        None => turn.to_owned(),
    }
}

/// The seed and the tool turns of a body of `target` bytes (see [`body`]).
fn grown(shape: Shape, target: usize, model: &str, stream: bool) -> (Seed, Vec<String>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target as u64);
    let seed = Seed::new(shape, model, stream);
    let mut turns: Vec<String> = Vec::new();
    let mut len = seed.len();
    let mut n = 0usize;
    while len < target {
        n += 1;
        let file = source_file(&mut rng, FILE_LINES);
        let path = file_path(&mut rng, n);
        let mut turn = shape.turn(n, &path, &file);
        let over = (len + turn.len()).saturating_sub(target);
        if over > 0 {
            // Cut the file so the body ends near the target (escaping makes it approximate).
            let keep = file.len().saturating_sub(over);
            let cut = floor_char_boundary(&file, keep);
            turn = shape.turn(n, &path, &file[..cut]);
        }
        len += turn.len();
        turns.push(turn);
    }
    (seed, turns)
}

/// The captured request split into the parts a body is written from.
struct Seed {
    /// Everything up to and including the last captured conversation item.
    head: String,
    /// Everything after the conversation array.
    tail: String,
}

impl Seed {
    fn new(shape: Shape, model: &str, stream: bool) -> Seed {
        let model = json_str(model);
        match shape {
            Shape::Messages => {
                let top = parts(CLAUDE_CODE);
                let mut head = format!("{{\"model\":{model},\"messages\":[");
                head.push_str(&items(top.get("messages").map(|r| &**r)).join(","));
                let mut tail = String::from("]");
                for key in [
                    "system",
                    "tools",
                    "metadata",
                    "max_tokens",
                    "thinking",
                    "context_management",
                    "output_config",
                ] {
                    if let Some(v) = top.get(key) {
                        let _ = write!(tail, ",\"{key}\":{}", v.get());
                    }
                }
                let _ = write!(tail, ",\"stream\":{stream}}}");
                Seed { head, tail }
            }
            Shape::Chat => {
                let top = parts(CLAUDE_CODE);
                let (system, first_user) = chat_prompt(&top);
                let mut head = format!("{{\"model\":{model},\"messages\":[");
                let _ = write!(
                    head,
                    "{{\"role\":\"system\",\"content\":{}}},{{\"role\":\"user\",\"content\":{}}}",
                    json_str(&system),
                    json_str(&first_user)
                );
                let tools = chat_tools(top.get("tools").map(|r| &**r));
                let mut tail = format!("],\"tools\":{tools},\"tool_choice\":\"auto\",");
                tail.push_str("\"parallel_tool_calls\":true,\"max_completion_tokens\":32000,");
                tail.push_str("\"reasoning_effort\":\"high\",");
                if stream {
                    tail.push_str("\"stream_options\":{\"include_usage\":true},");
                }
                let _ = write!(tail, "\"stream\":{stream}}}");
                Seed { head, tail }
            }
            Shape::Responses => {
                let top = parts(CODEX);
                let mut head = format!("{{\"model\":{model},\"stream\":{stream},\"input\":[");
                head.push_str(&items(top.get("input").map(|r| &**r)).join(","));
                let mut tail = String::from("]");
                for key in [
                    "tools",
                    "tool_choice",
                    "parallel_tool_calls",
                    "reasoning",
                    "store",
                    "include",
                    "prompt_cache_key",
                    "text",
                    "client_metadata",
                ] {
                    if let Some(v) = top.get(key) {
                        let _ = write!(tail, ",\"{key}\":{}", v.get());
                    }
                }
                tail.push('}');
                Seed { head, tail }
            }
        }
    }

    fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    fn assemble(&self, turns: &[String]) -> String {
        let mut out =
            String::with_capacity(self.len() + turns.iter().map(String::len).sum::<usize>());
        out.push_str(&self.head);
        for t in turns {
            out.push(',');
            out.push_str(t);
        }
        out.push_str(&self.tail);
        out
    }
}

impl Shape {
    /// Turn `n` of the session: the agent reads `path` and gets `file` back, written as the
    /// conversation items this agent's format uses (without the leading comma).
    fn turn(self, n: usize, path: &str, file: &str) -> String {
        match self {
            Shape::Messages => {
                // Claude Code's Read: `cat -n` numbering, a tab after each number.
                let id = format!("toolu_01Agent{n:012}");
                let input = format!("{{\"file_path\":{}}}", json_str(path));
                format!(
                    "{{\"role\":\"assistant\",\"content\":[{{\"type\":\"text\",\"text\":{}}},\
                     {{\"type\":\"tool_use\",\"id\":\"{id}\",\"name\":\"Read\",\"input\":{input},\
                     \"caller\":{{\"type\":\"direct\"}}}}]}},\
                     {{\"role\":\"user\",\"content\":[{{\"tool_use_id\":\"{id}\",\
                     \"type\":\"tool_result\",\"content\":{}}}]}}",
                    json_str(&format!("Let me read {path} next.")),
                    json_str(&numbered(file))
                )
            }
            Shape::Chat => {
                let id = format!("call_agent{n:012}");
                let args = format!("{{\"file_path\":{}}}", json_str(path));
                format!(
                    "{{\"role\":\"assistant\",\"content\":{},\"tool_calls\":[{{\"id\":\"{id}\",\
                     \"type\":\"function\",\"function\":{{\"name\":\"Read\",\"arguments\":{}}}}}]}},\
                     {{\"role\":\"tool\",\"tool_call_id\":\"{id}\",\"content\":{}}}",
                    json_str(&format!("Let me read {path} next.")),
                    json_str(&args),
                    json_str(&numbered(file))
                )
            }
            Shape::Responses => {
                // Codex's exec_command: the shell's output under a header.
                let id = format!("call_agent{n:012}");
                let args = format!("{{\"cmd\":{}}}", json_str(&format!("cat {path}")));
                let output = format!(
                    "Chunk ID: {:06x}\nWall time: 0.{:04} seconds\nProcess exited with code 0\n\
                     Original token count: {}\nOutput:\n{file}",
                    (n * 0x9b49) & 0xff_ffff,
                    (n * 37) % 10_000,
                    file.len() / 4
                );
                format!(
                    "{{\"type\":\"reasoning\",\"id\":\"rs_agent{n:016}\",\"summary\":[{{\"type\":\
                     \"summary_text\",\"text\":{}}}],\"content\":null,\"encrypted_content\":null}},\
                     {{\"type\":\"function_call\",\"status\":\"completed\",\"id\":\"fc_agent{n:016}\",\
                     \"name\":\"exec_command\",\"arguments\":{},\"call_id\":\"{id}\"}},\
                     {{\"type\":\"function_call_output\",\"call_id\":\"{id}\",\"output\":{}}}",
                    json_str(&format!("Reading {path} before changing it.")),
                    json_str(&args),
                    json_str(&output)
                )
            }
        }
    }
}

/// The top-level members of a captured body, each kept as its raw bytes.
fn parts(captured: &str) -> BTreeMap<String, Box<RawValue>> {
    serde_json::from_str(captured).unwrap_or_default()
}

/// The raw items of a captured array member.
fn items(v: Option<&RawValue>) -> Vec<String> {
    v.and_then(|v| serde_json::from_str::<Vec<Box<RawValue>>>(v.get()).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.get().to_owned())
        .collect()
}

/// Claude Code's prompt as a Chat client would send it: the system blocks and the system
/// reminder message as one system message, and the first user turn's text.
fn chat_prompt(top: &BTreeMap<String, Box<RawValue>>) -> (String, String) {
    let text_of = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let parse = |key: &str| -> Value {
        top.get(key)
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .unwrap_or(Value::Null)
    };
    let mut system = text_of(&parse("system"));
    let mut user = Vec::new();
    if let Value::Array(messages) = parse("messages") {
        for m in &messages {
            match m.get("role").and_then(Value::as_str) {
                Some("system") => system.extend(text_of(&m["content"])),
                Some("user") if user.is_empty() => user = text_of(&m["content"]),
                _ => {}
            }
        }
    }
    (system.join("\n\n"), user.join("\n"))
}

/// Claude Code's tools as Chat function tools (name, description, parameters).
fn chat_tools(tools: Option<&RawValue>) -> String {
    let tools: Vec<Value> = tools
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    let mut out = String::from("[");
    for (i, t) in tools.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"type\":\"function\",\"function\":{{\"name\":{},\"description\":{},\"parameters\":{}}}}}",
            t.get("name").map_or_else(|| "\"tool\"".into(), Value::to_string),
            t.get("description").map_or_else(|| "\"\"".into(), Value::to_string),
            t.get("input_schema")
                .map_or_else(|| "{\"type\":\"object\"}".into(), Value::to_string)
        );
    }
    out.push(']');
    out
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `file` numbered as `cat -n` prints it (number, tab, line).
fn numbered(file: &str) -> String {
    let mut out = String::with_capacity(file.len() + file.len() / 8);
    for (i, line) in file.lines().enumerate() {
        let _ = writeln!(out, "{}\t{line}", i + 1);
    }
    out
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from.get(self.next() % from.len().max(1))
            .copied()
            .unwrap_or("")
    }
}

/// A path in a plausible repository.
fn file_path(rng: &mut Rng, n: usize) -> String {
    const DIRS: [&str; 6] = [
        "src/proxy",
        "src/translate",
        "lib/net",
        "app/api",
        "pkg/store",
        "tests",
    ];
    const NAMES: [&str; 6] = ["handler", "session", "codec", "router", "retry", "config"];
    const EXTS: [&str; 4] = ["rs", "py", "ts", "go"];
    format!(
        "/home/dev/project/{}/{}_{n}.{}",
        rng.pick(&DIRS),
        rng.pick(&NAMES),
        rng.pick(&EXTS)
    )
}

/// Source-like text of `lines` lines: code in several languages with what makes JSON escaping
/// work (quotes, backslashes, tabs, non-ASCII text in comments and strings), indented as code is.
fn source_file(rng: &mut Rng, lines: usize) -> String {
    const LINES: [&str; 40] = [
        "use std::collections::HashMap;",
        "fn parse_header(line: &str) -> Option<(&str, &str)> {",
        "let (name, value) = line.split_once(':')?;",
        "return Err(Error::new(\"unexpected end of input\"));",
        "format!(\"{}: {}\\r\\n\", name, value.trim())",
        "// Keep the connection open: the client reuses it for the next request.",
        "if buf.len() > MAX_HEADER_BYTES { return Err(TooLarge); }",
        "match state { State::Idle => {}, State::Busy(n) => n += 1 }",
        "}",
        "",
        "def load_config(path: str) -> dict:",
        "    with open(path, encoding=\"utf-8\") as f:",
        "        return json.load(f)  # « config » stays UTF-8",
        "raise ValueError(f\"bad value {value!r} at line {lineno}\")",
        "pattern = re.compile(r\"^(\\d{4})-(\\d{2})-(\\d{2})$\")",
        "print(\"done\\tok\", file=sys.stderr)",
        "export async function fetchUser(id: string): Promise<User> {",
        "  const res = await fetch(`/api/users/${id}`, { headers: { \"accept\": \"application/json\" } });",
        "  if (!res.ok) throw new Error(`HTTP ${res.status}`);",
        "  return (await res.json()) as User;",
        "const PATH_SEP = process.platform === \"win32\" ? \"\\\\\" : \"/\";",
        "// Größe in Bytes — never negative.",
        "func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {",
        "\tif err := s.db.QueryRowContext(ctx, q, key).Scan(&v); err != nil {",
        "\t\treturn nil, fmt.Errorf(\"get %q: %w\", key, err)",
        "\t}",
        "SELECT id, name FROM users WHERE email = $1 AND deleted_at IS NULL;",
        "    assert_eq!(decode(b\"a\\\\nb\"), \"a\\nb\");",
        "#[derive(Debug, Clone, PartialEq)]",
        "pub struct Request<'a> { pub method: &'a str, pub path: &'a str }",
        "    // 日本語のコメント: escape nothing here",
        "    let retry_after = headers.get(\"retry-after\").and_then(|v| v.to_str().ok());",
        "<div className=\"card\">{user.name} ✓</div>",
        "    log.info(\"listening on %s:%d\", host, port)",
        "for (const [k, v] of Object.entries(env)) { out[k.toLowerCase()] = v; }",
        "#!/usr/bin/env bash",
        "set -euo pipefail; echo \"$HOME\" | sed 's/\\//\\\\\\//g'",
        "    \"\"\"Return the user's display name, or an empty string.\"\"\"",
        "impl fmt::Display for Error { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {",
        "        Ok(())",
    ];
    const INDENT: [&str; 4] = ["", "    ", "        ", "\t"];
    let mut out = String::with_capacity(lines * 48);
    for _ in 0..lines {
        out.push_str(rng.pick(&INDENT));
        out.push_str(rng.pick(&LINES));
        out.push('\n');
    }
    out
}
