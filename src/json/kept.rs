//! Top-level `tools` and system prompt values admission checked, kept per worker with the
//! notes it took of them: an agent sends the same tools and system prompt every turn (Claude
//! Code's tools are 31 KB of short keys and strings, 60% of a 50 KB turn, and its `system`
//! 7 KB more), and scanning them token by token was most of what admitting such a turn cost.
//! A body whose value of such a member opens with a kept value's exact bytes holds that value
//! there (only arrays, objects and strings are kept, and one ends where its own bytes say),
//! so the scan takes it whole and adds its notes, moved to where it sits.
//!
//! What is kept is a function of the bytes alone. It is kept per API key (the caller's
//! scope, see [`with_scope`]), so how fast one key's body is admitted says nothing of what
//! another key sent.

use std::cell::{Cell, RefCell};

use super::spans::Span;

/// Values kept per worker: one per key and tools list or system prompt, for the agent
/// sessions a worker serves at once (each key keeps its own, so two keys sending the same
/// tools keep two).
const KEPT: usize = 32;

/// Top-level members (as their key tokens) whose values an agent resends unchanged every
/// turn: tools in every dialect, and the system prompt of Messages (`system`), Responses
/// (`instructions`) and Gemini (`systemInstruction`, or `system_instruction` as its REST
/// docs also accept).
const RESENT: [&[u8]; 5] = [
    b"\"tools\"",
    b"\"system\"",
    b"\"instructions\"",
    b"\"systemInstruction\"",
    b"\"system_instruction\"",
];

/// Whether `key` (a top-level key's token, quotes included) names a value kept.
pub(super) fn resent(key: &[u8]) -> bool {
    RESENT.contains(&key)
}
/// Shortest value kept: a shorter one is scanned in a few microseconds.
pub(super) const KEPT_MIN_BYTES: usize = 4 * 1024;
/// Longest value kept, its notes with it.
const KEPT_MAX_BYTES: usize = 512 * 1024;
/// Most bytes a worker keeps, values and notes together (the oldest go first).
const KEPT_TOTAL_BYTES: usize = 4 * 1024 * 1024;

/// A value checked once, and what its scan noted (positions from its first byte).
struct Value {
    scope: u64,
    bytes: Box<[u8]>,
    notes: Box<[Span]>,
    /// How many of `notes` are containers (each takes one of a body's container room).
    containers: usize,
    /// A string token in it opens with the seal mark.
    sealed: bool,
}

impl Value {
    /// The bytes it holds (as `keep` weighed it).
    fn weight(&self) -> usize {
        self.bytes.len() + std::mem::size_of_val(&*self.notes)
    }
}

thread_local! {
    static VALUES: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
    /// The scope values are kept and found under while [`with_scope`] runs; None: none are.
    static SCOPE: Cell<Option<u64>> = const { Cell::new(None) };
    /// Set by [`without_kept_values`].
    static OFF: Cell<bool> = const { Cell::new(false) };
    /// Scans that took a kept value (see [`kept_values_used`]).
    static USED: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with the inspections in it keeping and finding `tools` values under `scope`
/// (the API key's): outside such a call nothing is kept.
pub fn with_scope<R>(scope: u64, f: impl FnOnce() -> R) -> R {
    /// Puts the scope before back, also when `f` unwinds (a helper thread lives on).
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPE.with(|s| s.replace(Some(scope))));
    f()
}

/// Runs `f` with every inspection scanning its `tools` itself, none kept: the plain path the
/// kept one is compared with (differential tests, the fuzz target).
pub fn without_kept_values<R>(f: impl FnOnce() -> R) -> R {
    let before = OFF.with(|o| o.replace(true));
    let out = f();
    OFF.with(|o| o.set(before));
    out
}

/// How many scans on this thread took a kept value so far: a test's way to tell.
pub fn kept_values_used() -> u64 {
    USED.with(Cell::get)
}

/// A scope for what a worker keeps per key: a digest of the key's bytes (its name here, its
/// secret for PII's kept strings).
pub fn scope_of(name: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// The scope values are kept under now, if any.
fn scope() -> Option<u64> {
    if OFF.with(Cell::get) {
        return None;
    }
    SCOPE.with(Cell::get)
}

/// What a kept value `rest` opens with gives a scan.
pub(super) struct Found {
    pub(super) len: usize,
    pub(super) containers: usize,
    pub(super) sealed: bool,
}

/// Calls `take` with the kept value `rest` opens with and its notes, when there is one and
/// `take` says it has room for its `containers`; whether it took one.
pub(super) fn take(rest: &[u8], take: impl FnOnce(&Found, &[Span]) -> bool) -> bool {
    let Some(scope) = scope() else {
        return false;
    };
    // Never borrowed across a call out of here but `take`'s, which keeps nothing.
    let took = VALUES.with(|values| {
        let Ok(values) = values.try_borrow() else {
            return false;
        };
        let Some(v) = values
            .iter()
            .find(|v| v.scope == scope && rest.starts_with(&v.bytes))
        else {
            return false;
        };
        let found = Found {
            len: v.bytes.len(),
            containers: v.containers,
            sealed: v.sealed,
        };
        take(&found, &v.notes)
    });
    if took {
        USED.with(|n| n.set(n.get() + 1));
    }
    took
}

/// Keeps `bytes`, a value a scan checked whole, with its `notes` (positions in the body,
/// whose first is `at`), when a scope is set and it is long enough and not too long.
pub(super) fn keep(bytes: &[u8], at: usize, notes: &[Span], sealed: bool) {
    let Some(scope) = scope() else {
        return;
    };
    let weight = bytes.len() + std::mem::size_of_val(notes);
    if bytes.len() < KEPT_MIN_BYTES || weight > KEPT_MAX_BYTES {
        return;
    }
    let Ok(at) = u32::try_from(at) else {
        return;
    };
    let moved: Option<Box<[Span]>> = notes
        .iter()
        .map(|n| {
            Some(Span {
                start: n.start.checked_sub(at)?,
                end: n.end.checked_sub(at)?,
                ..*n
            })
        })
        .collect();
    let Some(notes) = moved else {
        return;
    };
    let containers = notes.iter().filter(|n| n.container).count();
    VALUES.with(|values| {
        if let Ok(mut values) = values.try_borrow_mut() {
            if values
                .iter()
                .any(|v| v.scope == scope && *v.bytes == *bytes)
            {
                return;
            }
            let mut total: usize = values.iter().map(Value::weight).sum();
            while !values.is_empty() && (values.len() >= KEPT || total + weight > KEPT_TOTAL_BYTES)
            {
                total -= values.remove(0).weight();
            }
            values.push(Value {
                scope,
                bytes: Box::from(bytes),
                notes,
                containers,
                sealed,
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{inspect_request, JsonError, RequestInfo};
    use serde_json::{json, Value};

    /// A real Claude Code request: 31 KB of tools.
    const AGENT: &[u8] = include_bytes!("../../tests/fixtures/claude_code/request.json");

    /// The inspection under `scope` against the plain one: the same answer and the same
    /// notes; and whether it took a kept value.
    fn inspect(scope: u64, body: &[u8]) -> (Result<RequestInfo, JsonError>, bool) {
        let used = kept_values_used();
        let kept = with_scope(scope, || inspect_request(body));
        let plain = without_kept_values(|| inspect_request(body));
        assert_eq!(kept, plain);
        if let (Ok(k), Ok(p)) = (&kept, &plain) {
            assert!(k.strings.same_notes(&p.strings));
            assert!(k.strings.hold_in(body));
        }
        (kept, kept_values_used() > used)
    }

    fn with_tools(tools: &Value, before: &str) -> Vec<u8> {
        let body = json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": before}]});
        let mut text = serde_json::to_string(&body).unwrap();
        text.pop();
        text.push_str(&format!(r#","tools":{tools}}}"#));
        text.into_bytes()
    }

    #[test]
    fn a_kept_tools_value_is_taken_whole_with_the_notes_a_scan_takes() {
        let agent: Value = serde_json::from_slice(AGENT).unwrap();
        let tools = &agent["tools"];
        // The real body, twice: made, then found.
        assert!(!inspect(1, AGENT).1);
        assert!(inspect(1, AGENT).1);
        // Turns written anew (the fixture's tools are written otherwise): the same tools
        // later in the body, after a longer conversation.
        assert!(!inspect(1, &with_tools(tools, "a short turn")).1);
        let turn = with_tools(tools, &"a long turn ".repeat(500));
        assert!(inspect(1, &turn).1);
        // Another key's body: not found, whatever it sends.
        assert!(!inspect(2, &turn).1);
        // The kept bytes followed by more than a value: refused as the plain scan refuses.
        let mut extra = with_tools(tools, "x");
        extra.insert(extra.len() - 1, b']');
        assert!(inspect(1, &extra).0.is_err());
        // A value that opens with the kept one but is longer: it is another value.
        let mut longer = serde_json::to_string(tools).unwrap();
        longer.pop();
        longer.push_str(r#",{"name":"x"}]"#);
        assert!(!inspect(1, &with_tools(&serde_json::from_str(&longer).unwrap(), "x")).1);
        // A sealed string in kept tools still says the body may hold a seal.
        let mark = std::str::from_utf8(crate::seal::MARK).unwrap();
        let sealed = json!([{"name": format!("{mark}x"), "description": "d".repeat(5000)}]);
        let (info, _) = inspect(1, &with_tools(&sealed, "x"));
        assert!(info.unwrap().may_hold_seal);
        let (info, took) = inspect(1, &with_tools(&sealed, "y"));
        assert!(took && info.unwrap().may_hold_seal);
    }

    /// A system prompt is kept as tools are, in each dialect's member, whether an array
    /// (Messages, Gemini) or a string (Responses `instructions`, Messages `system`); a string
    /// that opens with a kept one's text but goes on is another string.
    #[test]
    fn system_prompts_are_kept_as_arrays_or_strings() {
        let prompt = "You are an agent. \"Quote\" \\ and \n lines. ".repeat(150);
        let blocks = json!([{"type": "text", "text": prompt}]);
        let cases = [
            ("system", blocks.clone()),
            ("system", json!(prompt)),
            ("instructions", json!(prompt)),
            ("systemInstruction", json!({"parts": [{"text": prompt}]})),
            ("system_instruction", json!({"parts": [{"text": prompt}]})),
        ];
        for (scope, (key, value)) in (20..).zip(cases) {
            let body = |turn: &str| {
                serde_json::to_vec(&json!({"model": "m", key: value, "input": turn})).unwrap()
            };
            assert!(!inspect(scope, &body("first")).1, "{key}");
            assert!(inspect(scope, &body("second turn")).1, "{key}");
            assert!(!inspect(scope + 100, &body("another key")).1, "{key}");
        }
        let longer = |tail: &str| {
            serde_json::to_vec(&json!({"instructions": format!("{prompt}{tail}")})).unwrap()
        };
        assert!(!inspect(40, &longer("")).1);
        assert!(!inspect(40, &longer("more")).1);
        assert!(inspect(40, &longer("")).1);
        // A member of another name is not kept, however long and however often sent.
        let other = serde_json::to_vec(&json!({"metadata": {"note": prompt}})).unwrap();
        assert!(!inspect(41, &other).1);
        assert!(!inspect(41, &other).1);
    }

    /// A long number is not kept: a longer number opens with its bytes.
    #[test]
    fn only_containers_are_kept() {
        let first = format!(r#"{{"tools":{}}}"#, "1".repeat(4096));
        let second = format!(
            r#"{{"a":"{}","tools":{}}}"#,
            "x".repeat(64),
            "1".repeat(4097)
        );
        assert!(!inspect(13, first.as_bytes()).1);
        assert!(!inspect(13, second.as_bytes()).1);
    }

    /// At most 32 values, and 4 MB, per worker: the oldest go first.
    #[test]
    fn the_oldest_value_goes_first() {
        let tools = |i: usize, len: usize| json!([{"name": format!("t{i}"), "description": "d".repeat(len)}]);
        let bodies: Vec<Vec<u8>> = (0..33).map(|i| with_tools(&tools(i, 5000), "x")).collect();
        for b in &bodies {
            assert!(!inspect(11, b).1);
        }
        assert!(!inspect(11, &bodies[0]).1, "the first of 33 went");
        assert!(inspect(11, &bodies[32]).1);
        assert!(inspect(11, &bodies[2]).1);
        // Eleven of 400 KB are more than 4 MB: the first went.
        let big: Vec<Vec<u8>> = (0..11)
            .map(|i| with_tools(&tools(i, 400_000), "y"))
            .collect();
        for b in &big {
            assert!(!inspect(12, b).1);
        }
        assert!(!inspect(12, &big[0]).1);
        assert!(inspect(12, &big[10]).1);
    }

    /// Container notes a body has no room for: a kept value is not taken where the scan
    /// would have run out of room (it notes fewer), and one whose scan ran out is not kept.
    #[test]
    fn a_kept_value_is_taken_only_where_its_container_notes_fit() {
        // 100 nested arrays around a 4 KB string: each is long enough to be noted.
        let nested = format!(
            "{}\"{}\"{}",
            "[".repeat(100),
            "s".repeat(4000),
            "]".repeat(100)
        );
        let tools: Value = serde_json::from_str(&nested).unwrap();
        // A body long enough for 100 container notes keeps the value ...
        let roomy = with_tools(&tools, &"p".repeat(20_000));
        assert!(!inspect(7, &roomy).1);
        assert!(inspect(7, &roomy).1);
        // ... a short one has room for fewer (4.5 KB / 128 + 64): scanned, as the plain way.
        let tight = with_tools(&tools, "q");
        assert!(!inspect(7, &tight).1);
        // And its scan, which ran out of room, kept nothing: an eviction-free second look
        // at a roomy body with a new scope finds nothing either.
        assert!(!inspect(8, &tight).1);
        assert!(!inspect(8, &roomy).1);
    }
}
