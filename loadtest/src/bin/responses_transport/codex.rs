//! A Codex-shaped Responses request, generated deterministically: Codex's long `instructions`,
//! its tools (`shell`, the `apply_patch` custom tool with its grammar, `update_plan`,
//! `view_image`), the user turns it opens a session with, then agent steps (a `shell` call and
//! its output: a source file) until the body reaches the size asked for.

use serde_json::{json, Value};

/// Bytes of one generated source file handed back as a tool output (Codex truncates shell
/// output around 10 KB; a `sed -n` of a file is usually a few KB).
pub const FILE_BYTES: usize = 5 * 1024;

/// The fields every turn repeats (the Responses API carries neither instructions nor tools over
/// with `previous_response_id`, so Codex sends them each time).
pub fn base(model: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("model".into(), json!(model));
    m.insert("instructions".into(), json!(instructions()));
    m.insert("tools".into(), tools());
    m.insert("tool_choice".into(), json!("auto"));
    m.insert("parallel_tool_calls".into(), json!(false));
    m.insert(
        "reasoning".into(),
        json!({"effort": "medium", "summary": "auto"}),
    );
    m.insert("store".into(), json!(false));
    m.insert("stream".into(), json!(true));
    m.insert("include".into(), json!(["reasoning.encrypted_content"]));
    m.insert(
        "prompt_cache_key".into(),
        json!("0199a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"),
    );
    m.insert("text".into(), json!({"verbosity": "medium"}));
    m
}

/// The items a session opens with: AGENTS.md, the environment, and the task.
pub fn opening(task: &str) -> Vec<Value> {
    vec![
        user(&format!(
            "# AGENTS.md instructions for /home/dev/ringway\n\n<INSTRUCTIONS>\n{}\n</INSTRUCTIONS>",
            agents_md()
        )),
        user(concat!(
            "<environment_context>\n  <cwd>/home/dev/ringway</cwd>\n  <approval_policy>on-request",
            "</approval_policy>\n  <sandbox_mode>workspace-write</sandbox_mode>\n  <network_access>",
            "restricted</network_access>\n  <shell>bash</shell>\n</environment_context>"
        )),
        user(task),
    ]
}

/// A whole request of at least `target` bytes (as serialised) ending in a tool output, as a
/// mid-session Codex turn does: the opening, then `shell` calls and their outputs.
pub fn request(model: &str, target: usize) -> Value {
    let mut items = opening(
        "The parser rejects chunked bodies with a trailer; find out why and fix it, with a test.",
    );
    let mut step = 0u64;
    loop {
        let mut body = base(model);
        body.insert("input".into(), Value::Array(items.clone()));
        let body = Value::Object(body);
        if serde_json::to_vec(&body).map_or(0, |b| b.len()) >= target {
            return body;
        }
        let call_id = format!("call_{:024x}", 0x5eed_0000_u64 + step);
        let path = format!("src/http1/part{step}.rs");
        items.push(shell_call(&call_id, &format!("sed -n '1,200p' {path}")));
        items.push(tool_output(&call_id, &source_file(step, FILE_BYTES)));
        step += 1;
    }
}

/// A user message item.
pub fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// A `shell` call item, as the model sends it and Codex sends it back.
pub fn shell_call(call_id: &str, script: &str) -> Value {
    let args = json!({"command": ["bash", "-lc", script], "workdir": "/home/dev/ringway", "timeout_ms": 120000});
    json!({"type": "function_call", "name": "shell", "arguments": args.to_string(), "call_id": call_id})
}

/// A tool's output item, framed as Codex frames shell output.
pub fn tool_output(call_id: &str, out: &str) -> Value {
    json!({
        "type": "function_call_output",
        "call_id": call_id,
        "output": format!("Exit code: 0\nWall time: 0.1 seconds\nOutput:\n{out}"),
    })
}

/// A deterministic Rust-looking source file of about `bytes` bytes (quotes, backslashes and
/// newlines included, so the JSON has escapes as real file contents do).
pub fn source_file(seed: u64, bytes: usize) -> String {
    const IDENTS: &[&str] = &[
        "buf", "head", "chunk", "len", "state", "reader", "trailer", "limit", "out", "pos", "line",
        "value", "digits", "input", "frame", "conn", "deadline", "bytes",
    ];
    const TYPES: &[&str] = &[
        "usize",
        "u64",
        "&[u8]",
        "Vec<u8>",
        "Option<usize>",
        "State",
        "bool",
    ];
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut s = String::with_capacity(bytes + 128);
    s.push_str("//! Chunked transfer decoding: sizes, data, trailers.\n\nuse std::fmt;\n\n");
    let mut n = 0;
    while s.len() < bytes {
        let a = rng.pick(IDENTS);
        let b = rng.pick(IDENTS);
        let t = rng.pick(TYPES);
        n += 1;
        s.push_str(&format!(
            "/// Reads the {a} from the {b}; a bad one is an error, never a panic.\n\
             pub fn {a}_{n}({b}: {t}, limit: usize) -> Result<{t}, Error> {{\n\
             \tif limit == 0 {{\n\t\treturn Err(Error::new(\"{a}: limit is 0\\n\"));\n\t}}\n\
             \tlet {a} = {b}.get(..limit).ok_or(Error::Truncated)?;\n\
             \tmatch {a}.iter().position(|c| *c == b'\\r') {{\n\
             \t\tSome(i) => Ok(parse(&{a}[..i])?),\n\t\tNone => Err(Error::BadChunk),\n\t}}\n}}\n\n"
        ));
    }
    s
}

/// A small deterministic generator (xorshift64), so a run's bodies are the same every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let i = (self.next() % from.len().max(1) as u64) as usize;
        from.get(i).copied().unwrap_or("")
    }
}

fn agents_md() -> String {
    let mut s = String::from(
        "## Build\n- `cargo build`, `cargo test --lib <filter>`; the gateway's tests start the real binary.\n\
         ## Style\n- No unwrap on input paths; every bound is a named const with a doc comment.\n\
         - Codecs are sans-IO and deterministic.\n- Comments say why, briefly.\n",
    );
    for i in 0..12 {
        s.push_str(&format!(
            "- Rule {i}: a change to `src/module{i}` keeps its tests passing and adds one that fails without it; \
             run `cargo clippy --all-targets -- -D warnings` and `cargo fmt` before committing.\n"
        ));
    }
    s
}

fn instructions() -> String {
    let mut s = String::from(
        "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI on a user's computer.\n\n\
         ## General\n\n- The arguments to `shell` will be passed to execvp(). Most terminal commands should be \
         prefixed with [\"bash\", \"-lc\"].\n- Always set the `workdir` param when using the shell function. \
         Do not use `cd` unless absolutely necessary.\n- When searching for text or files, prefer using `rg` or \
         `rg --files` respectively because `rg` is much faster than alternatives like `grep`.\n\n\
         ## Editing constraints\n\n- Default to ASCII when editing or creating files.\n- Add succinct code \
         comments that explain what is going on if code is not self-explanatory.\n- You may be in a dirty git \
         worktree.\n    * NEVER revert existing changes you did not make unless explicitly requested.\n\n",
    );
    let sections = [
        "Plan tool",
        "Codex CLI harness, sandboxing, and approvals",
        "Special user requests",
        "Presenting your work and final message",
        "Final answer structure and style guidelines",
    ];
    for (i, title) in sections.iter().enumerate() {
        s.push_str(&format!("## {title}\n\n"));
        for j in 0..9 {
            s.push_str(&format!(
                "- Guideline {i}.{j}: when the task calls for it, prefer small, verifiable steps; say what you \
                 ran and what it showed, quote paths as `src/file.rs:{j}`, and never claim a test passed \
                 unless you ran it. Ask for approval with `with_escalated_permissions` only when the sandbox \
                 blocks a command the task needs.\n"
            ));
        }
        s.push('\n');
    }
    s
}

fn tools() -> Value {
    let grammar = concat!(
        "start: begin_patch hunk+ end_patch\nbegin_patch: \"*** Begin Patch\" LF\n",
        "end_patch: \"*** End Patch\" LF?\n\nhunk: add_hunk | delete_hunk | update_hunk\n",
        "add_hunk: \"*** Add File: \" filename LF add_line+\n",
        "delete_hunk: \"*** Delete File: \" filename LF\n",
        "update_hunk: \"*** Update File: \" filename LF change_move? change?\n\n",
        "filename: /(.+)/\nadd_line: \"+\" /(.*)/ LF -> line\n\n",
        "change_move: \"*** Move to: \" filename LF\nchange: (change_context | change_line)+ eof_line?\n",
        "change_context: (\"@@\" | \"@@ \" /(.+)/) LF\n",
        "change_line: (\"+\" | \"-\" | \" \") /(.*)/ LF\neof_line: \"*** End of File\" LF\n\n",
        "%import common.LF\n"
    );
    json!([
        {
            "type": "function",
            "name": "shell",
            "description": "Runs a shell command and returns its output.",
            "strict": false,
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "array", "items": {"type": "string"}, "description": "The command to execute"},
                    "workdir": {"type": "string", "description": "The working directory to execute the command in"},
                    "timeout_ms": {"type": "number", "description": "The timeout for the command in milliseconds"},
                    "with_escalated_permissions": {"type": "boolean", "description": "Whether to request escalated permissions. Set to true if command needs to be run without sandbox restrictions"},
                    "justification": {"type": "string", "description": "Only set if with_escalated_permissions is true. 1-sentence explanation of why we want to run this command."}
                },
                "required": ["command"],
                "additionalProperties": false
            }
        },
        {
            "type": "custom",
            "name": "apply_patch",
            "description": "Use the `apply_patch` tool to edit files. This is a FREEFORM tool, so do not wrap the patch in JSON.",
            "format": {"type": "grammar", "syntax": "lark", "definition": grammar}
        },
        {
            "type": "function",
            "name": "update_plan",
            "description": "Updates the task plan.\nProvide an optional explanation and a list of plan items, each with a step and status.\nAt most one step can be in_progress at a time.",
            "strict": false,
            "parameters": {
                "type": "object",
                "properties": {
                    "explanation": {"type": "string"},
                    "plan": {
                        "type": "array",
                        "description": "The list of steps",
                        "items": {
                            "type": "object",
                            "properties": {
                                "step": {"type": "string"},
                                "status": {"type": "string", "description": "One of: pending, in_progress, completed"}
                            },
                            "required": ["step", "status"],
                            "additionalProperties": false
                        }
                    }
                },
                "required": ["plan"],
                "additionalProperties": false
            }
        },
        {
            "type": "function",
            "name": "view_image",
            "description": "Attach a local image (by filesystem path) to the conversation context for this turn.",
            "strict": false,
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "Local filesystem path to an image file"}},
                "required": ["path"],
                "additionalProperties": false
            }
        }
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn requests_reach_their_size_and_end_in_a_tool_output() {
        for kb in [40, 70, 100] {
            let body = request("gpt", kb * 1024);
            let len = serde_json::to_vec(&body).unwrap().len();
            assert!(
                len >= kb * 1024 && len < kb * 1024 + 2 * FILE_BYTES,
                "{kb}: {len}"
            );
            let input = body["input"].as_array().unwrap();
            assert_eq!(input.last().unwrap()["type"], "function_call_output");
        }
        // Deterministic: the same size gives the same bytes.
        assert_eq!(request("gpt", 50_000), request("gpt", 50_000));
    }
}
