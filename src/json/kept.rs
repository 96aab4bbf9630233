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
// What is kept is checked to be UTF-8 when it is kept, so a scan that takes it need not check
// it (the scan may run before the body's check; see `scan::collect_on`).
use super::utf8::valid as utf8;

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
    /// It holds the thought signature separator.
    signed: bool,
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

/// The scope values are kept under now, if any (a translation keeps what it keeps under it
/// too).
pub(crate) fn scope() -> Option<u64> {
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
    pub(super) signed: bool,
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
            signed: v.signed,
        };
        take(&found, &v.notes)
    });
    if took {
        USED.with(|n| n.set(n.get() + 1));
    }
    took
}

/// `notes` with positions from `at` (None for one before it).
fn moved_back(notes: &[Span], at: u32) -> impl Iterator<Item = Option<Span>> + '_ {
    notes.iter().map(move |n| {
        Some(Span {
            start: n.start.checked_sub(at)?,
            end: n.end.checked_sub(at)?,
            ..*n
        })
    })
}

/// Keeps `bytes`, a value a scan checked whole, with its `notes` (positions in the body,
/// whose first is `at`), when a scope is set and it is long enough and not too long.
pub(super) fn keep(bytes: &[u8], at: usize, notes: &[Span], sealed: bool) {
    let Some(scope) = scope() else {
        return;
    };
    let weight = bytes.len() + std::mem::size_of_val(notes);
    if bytes.len() < KEPT_MIN_BYTES || weight > KEPT_MAX_BYTES || !utf8(bytes) {
        return;
    }
    let Ok(at) = u32::try_from(at) else {
        return;
    };
    let moved: Option<Box<[Span]>> = moved_back(notes, at).collect();
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
                signed: crate::seal::find_signature_separator(bytes).is_some(),
            });
        }
    });
}

/// Conversations kept per worker: one per agent session a worker serves (or more, for a
/// client whose turns stop being the last one's with more at its end).
const CONVERSATIONS: usize = 16;
/// Most of a conversation kept: the elements that end within it.
pub(super) const CONVERSATION_MAX_BYTES: usize = 2 << 20;
/// Fewest bytes between two element ends kept: a conversation of many tiny elements keeps a
/// few ends per KB (a turn then takes up to the end before where it differs).
pub(super) const END_BYTES_APART: usize = 256;
/// Most bytes a worker keeps of conversations, their notes and ends with them (the least
/// recently used go first).
const CONVERSATIONS_TOTAL_BYTES: usize = 8 << 20;
/// Bytes compared at once when looking for where a body leaves a kept conversation: a
/// memcmp of this many costs little more than one of a few, and a turn differs from the last
/// one's by the KBs appended to it.
const COMPARED: usize = 4096;

/// Most elements a turn may change at the end of the conversation it continues and still be
/// kept in its place: an agent moves its cache marks on the last turns (Claude Code), where a
/// turn that leaves it earlier is another session that opened alike.
const REPLACED_ELEMENTS: usize = 4;

/// Top-level members (as their key tokens) holding an agent's conversation, resent every turn
/// with the turn's new elements at its end: Chat and Messages `messages`, Responses `input`,
/// Gemini `contents`.
const CONVERSATION: [&[u8]; 3] = [b"\"messages\"", b"\"input\"", b"\"contents\""];

/// Which conversation member `key` (a top-level key's token) is, if one.
pub(super) fn conversation_member(key: &[u8]) -> Option<u8> {
    let at = CONVERSATION.iter().position(|m| *m == key)?;
    u8::try_from(at).ok()
}

/// Whether values are kept and found now (a scope is set and keeping is not off).
pub(super) fn active() -> bool {
    scope().is_some()
}

/// Where an element of a conversation array ends, and what its scan had noted by then (from
/// the array's first byte). Only after an element whose own bytes say where it ends (not a
/// number), and while the scan had room for container notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct End {
    /// Bytes from the array's `[` to just after the element.
    pub(super) end: u32,
    /// Notes taken in the array so far (the first, if any, is the array's own).
    pub(super) notes: u32,
    /// How many of them are containers.
    pub(super) containers: u32,
    /// A string token in the array so far opens with the seal mark.
    pub(super) sealed: bool,
}

/// A conversation array checked whole: its bytes up to its last element's end, the notes
/// taken up to there (positions from its `[`), and where each element ends.
struct Conversation {
    scope: u64,
    member: u8,
    /// Tells this conversation from one kept in its place since it was taken.
    serial: u64,
    /// When it was last kept or taken (a worker's count).
    used: u64,
    bytes: Vec<u8>,
    notes: Vec<Span>,
    ends: Vec<End>,
    /// Where `bytes` first holds the thought signature separator, if anywhere (never across
    /// an element's end: it holds no quote or bracket).
    separator: Option<usize>,
}

impl Conversation {
    fn weight(&self) -> usize {
        self.bytes.len() + std::mem::size_of_val(&*self.notes) + std::mem::size_of_val(&*self.ends)
    }
}

thread_local! {
    static KEPT_CONVERSATIONS: RefCell<Vec<Conversation>> = const { RefCell::new(Vec::new()) };
    /// The worker's count for `serial` and `used`.
    static TICKS: Cell<u64> = const { Cell::new(0) };
}

fn tick() -> u64 {
    TICKS.with(|t| {
        t.set(t.get() + 1);
        t.get()
    })
}

/// Conversations seen once remembered per worker (by their opening bytes): the next turn of
/// each is kept.
const SEEN: usize = 64;

thread_local! {
    /// The openings of conversations seen and not kept, the oldest replaced first.
    static SEEN_OPENINGS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Whether a conversation of `scope` and `member` opening as `array` does was seen before
/// (by a digest of its first [`COMPARED`] bytes, which an agent's next turn repeats);
/// remembers it if not.
fn seen_before(scope: u64, member: u8, array: &[u8]) -> bool {
    let opening = array.get(..COMPARED).unwrap_or(array);
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    let mut h = scope ^ u64::from(member).rotate_left(56) ^ (opening.len() as u64);
    let mut words = opening.chunks_exact(8);
    for word in &mut words {
        if let Ok(w) = <[u8; 8]>::try_from(word) {
            h = mix(h, u64::from_le_bytes(w));
        }
    }
    for &b in words.remainder() {
        h = mix(h, u64::from(b));
    }
    SEEN_OPENINGS.with(|seen| {
        let Ok(mut seen) = seen.try_borrow_mut() else {
            return false;
        };
        if let Some(at) = seen.iter().position(|&s| s == h) {
            seen.swap_remove(at);
            return true;
        }
        if seen.len() >= SEEN {
            seen.remove(0);
        }
        seen.push(h);
        false
    })
}

/// How many bytes `a` and `b` open with alike.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    // Blocks that double while they match: a turn that is the last one's with more at the
    // end is one pass in a few compares; one that differs near the end (a moved cache mark)
    // is looked into block by block, then byte by byte, only where it does.
    let n = a.len().min(b.len());
    let mut i = 0;
    let mut step = COMPARED;
    while i < n {
        let to = n.min(i.saturating_add(step));
        if a.get(i..to) != b.get(i..to) {
            while i + COMPARED <= to && a.get(i..i + COMPARED) == b.get(i..i + COMPARED) {
                i += COMPARED;
            }
            let (Some(a), Some(b)) = (a.get(i..to), b.get(i..to)) else {
                return i;
            };
            return i + a.iter().zip(b).take_while(|(x, y)| x == y).count();
        }
        i = to;
        step = step.saturating_mul(2);
    }
    n
}

/// What a scan took of a kept conversation: which, and how many of its elements.
#[derive(Debug, Clone, Copy)]
pub(super) struct Taken {
    pub(super) serial: u64,
    pub(super) elements: usize,
}

/// Of this scope's kept conversations of `member`, the one `array` (the body from the
/// array's `[` on) opens with the most elements of, when at least one: `apply` gets its notes
/// and ends up to there and whether those elements hold the thought signature separator, and
/// says whether it took them (it has room for their containers).
pub(super) fn take_conversation(
    member: u8,
    array: &[u8],
    apply: impl FnOnce(&[Span], &[End], bool) -> bool,
) -> Option<Taken> {
    let scope = scope()?;
    // Never borrowed across a call out of here but `apply`'s, which keeps nothing.
    KEPT_CONVERSATIONS.with(|kept| {
        let mut kept = kept.try_borrow_mut().ok()?;
        let (at, elements) = kept
            .iter()
            .enumerate()
            .filter(|(_, c)| c.scope == scope && c.member == member)
            .map(|(at, c)| {
                let alike = common_prefix(&c.bytes, array);
                (at, c.ends.partition_point(|e| e.end as usize <= alike))
            })
            .max_by_key(|&(_, elements)| elements)?;
        let c = kept.get_mut(at)?;
        let ends = c.ends.get(..elements).filter(|e| !e.is_empty())?;
        let last = ends.last()?;
        let notes = c.notes.get(..last.notes as usize)?;
        let signed = c.separator.is_some_and(|at| at < last.end as usize);
        if !apply(notes, ends, signed) {
            return None;
        }
        c.used = tick();
        USED.with(|n| n.set(n.get() + 1));
        Some(Taken {
            serial: c.serial,
            elements,
        })
    })
}

/// Keeps a conversation array a scan checked: `array` from its `[` to its last element's
/// end, `notes` taken up to there (positions in the body, the array's `[` at `at`), and
/// `ends` (each element's). What `taken` took of a kept one is that one's: only what follows
/// it is copied, onto it.
pub(super) fn keep_conversation(
    member: u8,
    taken: Option<Taken>,
    array: &[u8],
    at: usize,
    notes: &[Span],
    ends: &[End],
) {
    let Some(scope) = scope() else {
        return;
    };
    let Ok(at) = u32::try_from(at) else {
        return;
    };
    // Only elements that end within the most kept of one conversation.
    let within = ends.partition_point(|e| e.end as usize <= CONVERSATION_MAX_BYTES);
    let Some(ends) = ends.get(..within) else {
        return;
    };
    let Some(last) = ends.last() else {
        return;
    };
    if (last.end as usize) < KEPT_MIN_BYTES {
        return;
    }
    // The array's own note (the first) ends past the elements kept: it is given its end
    // when the array that takes it closes, so it is kept ending where they do.
    let moved = |notes: &[Span]| -> Option<Vec<Span>> {
        moved_back(notes, at)
            .map(|n| {
                n.map(|n| Span {
                    end: n.end.min(last.end),
                    ..n
                })
            })
            .collect()
    };
    KEPT_CONVERSATIONS.with(|kept| {
        let Ok(mut kept) = kept.try_borrow_mut() else {
            return;
        };
        let now = tick();
        // Onto the one taken from, when it is still kept: its bytes are this array's up to
        // the elements taken. Unless this array left it more than a few elements before its
        // end (another session that opened alike): that one is kept beside it.
        let onto = taken.and_then(|t| {
            let i = kept.iter().position(|c| c.serial == t.serial)?;
            let left = kept.get(i)?.ends.len().saturating_sub(t.elements);
            (left <= REPLACED_ELEMENTS).then_some((i, t.elements))
        });
        if let Some((i, took)) = onto {
            let Some(c) = kept.get_mut(i) else {
                return;
            };
            c.used = now;
            if took >= ends.len() {
                return;
            }
            let (Some(from), Some(new_ends)) = (
                took.checked_sub(1).and_then(|k| ends.get(k)),
                ends.get(took..),
            ) else {
                return;
            };
            let (Some(bytes), Some(new_notes)) = (
                array
                    .get(from.end as usize..last.end as usize)
                    .filter(|b| utf8(b)),
                notes
                    .get(from.notes as usize..last.notes as usize)
                    .and_then(moved),
            ) else {
                return;
            };
            c.bytes.truncate(from.end as usize);
            c.notes.truncate(from.notes as usize);
            c.ends.truncate(took);
            let kept_to = c.bytes.len();
            c.separator = c
                .separator
                .filter(|&at| at < kept_to)
                .or_else(|| crate::seal::find_signature_separator(bytes).map(|at| at + kept_to));
            c.bytes.extend_from_slice(bytes);
            c.notes.extend(new_notes);
            c.ends.extend_from_slice(new_ends);
        } else {
            // A conversation is copied the second time it is seen: one that is never sent
            // again (not an agent's) costs no copy.
            if !seen_before(scope, member, array) {
                return;
            }
            let (Some(bytes), Some(notes)) = (
                array.get(..last.end as usize).filter(|b| utf8(b)),
                notes.get(..last.notes as usize).and_then(moved),
            ) else {
                return;
            };
            kept.push(Conversation {
                scope,
                member,
                serial: now,
                used: now,
                bytes: bytes.to_vec(),
                notes,
                ends: ends.to_vec(),
                separator: crate::seal::find_signature_separator(bytes),
            });
        }
        // The least recently used go while there are too many or too many bytes.
        let mut total: usize = kept.iter().map(Conversation::weight).sum();
        while kept.len() > CONVERSATIONS || total > CONVERSATIONS_TOTAL_BYTES {
            let Some(oldest) = kept
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.used)
                .map(|(i, _)| i)
            else {
                break;
            };
            total -= kept.remove(oldest).weight();
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

    /// A conversation of `turns` elements of about `len` bytes each, in `member`.
    fn conversation(member: &str, turns: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({"model": "m", member: turns, "max_tokens": 5})).unwrap()
    }

    fn turn(i: usize, len: usize) -> Value {
        json!({"role": if i.is_multiple_of(2) { "user" } else { "assistant" },
               "content": [{"type": "text", "text": format!("turn {i} \"q\" \\ {}", "x".repeat(len))}]})
    }

    /// An agent's conversation, resent each turn with more at its end, is taken as far as it
    /// is the last turn's (whole elements), with the notes a scan takes; the rest is scanned.
    #[test]
    fn a_conversation_is_taken_as_far_as_it_is_the_last_turns() {
        for member in ["messages", "input", "contents"] {
            let scope = 50 + member.len() as u64;
            let mut turns: Vec<Value> = (0..6).map(|i| turn(i, 900)).collect();
            // Seen once: remembered, not copied; seen again: kept; then taken.
            assert!(!inspect(scope, &conversation(member, &turns)).1, "{member}");
            assert!(!inspect(scope, &conversation(member, &turns)).1, "{member}");
            assert!(inspect(scope, &conversation(member, &turns)).1, "{member}");
            // The next turn: two more elements.
            turns.push(turn(6, 2000));
            turns.push(turn(7, 10));
            assert!(inspect(scope, &conversation(member, &turns)).1, "{member}");
            // Cache marks moved on the last turn: taken up to it.
            turns[7] = json!({"role": "assistant", "content": "changed"});
            assert!(inspect(scope, &conversation(member, &turns)).1, "{member}");
            // The first element changed: nothing is alike.
            let mut other = turns.clone();
            other[0] = turn(100, 900);
            assert!(!inspect(scope, &conversation(member, &other)).1, "{member}");
            // Another key: never.
            assert!(
                !inspect(scope + 1000, &conversation(member, &turns)).1,
                "{member}"
            );
            // Fewer elements than kept (a client that dropped its last turns): taken.
            assert!(
                inspect(scope, &conversation(member, &turns[..5])).1,
                "{member}"
            );
        }
        // Another member is walked as a plain value.
        let body = conversation("history", &(0..6).map(|i| turn(i, 900)).collect::<Vec<_>>());
        assert!(!inspect(60, &body).1);
        assert!(!inspect(60, &body).1);
    }

    /// Near misses at the point the kept elements end: a number that goes on, whitespace,
    /// a bad separator, an unclosed array, too deep an element, sealed strings.
    #[test]
    fn what_follows_the_kept_elements_is_checked_as_a_scan_checks_it() {
        let long = "y".repeat(5000);
        let kept = format!(r#"{{"model":"m","messages":[{{"a":"{long}"}},1,{{"b":2}},"s",true"#);
        let scope = 70;
        let body = |tail: &str| format!("{kept}{tail}").into_bytes();
        assert!(!inspect(scope, &body("]}")).1);
        assert!(!inspect(scope, &body("]}")).1);
        for tail in [
            "]}",
            "5]}",
            " , 7 ]}",
            ",]}",
            "]]}",
            "}",
            "",
            ",null,[]]}",
            " ]  }",
            ",{\"c\":[[[[[[[[[[]]]]]]]]]]}]}",
            "e]}",
            ",\"\\u12\"]}",
            ",-]}",
        ] {
            let (_, took) = inspect(scope, &body(tail));
            assert!(took || tail.is_empty() || tail == "}", "{tail:?}");
        }
        // The first element ends after 1: `1` then `5` would be `15`, no end is kept there.
        let after_number = format!(r#"{{"model":"m","messages":[{{"a":"{long}"}},1"#);
        let (info, _) = inspect(scope, format!("{after_number}5]}}").as_bytes());
        assert!(info.is_ok());
        // Nesting: an element as deep as allowed, and one deeper, as the scan says.
        let deep = |n: usize| {
            format!(
                r#"{{"model":"m","messages":[{{"a":"{long}"}},{}{}]}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        inspect(71, deep(1).as_bytes()).0.unwrap();
        inspect(71, deep(1).as_bytes()).0.unwrap();
        for n in [124, 125, 126, 127, 128] {
            // The object is level 1, the array 2, its elements 3: 126 arrays reach 128.
            assert_eq!(inspect(71, deep(n).as_bytes()).0.is_ok(), n <= 126, "{n}");
            let (info, took) = inspect(71, deep(n).as_bytes());
            assert!(took && info.is_ok() == (n <= 126), "{n}");
        }
        // A sealed string in a kept element still says the body may hold a seal.
        let mark = std::str::from_utf8(crate::seal::MARK).unwrap();
        let sealed = format!(r#"{{"model":"m","messages":[{{"a":"{mark}{long}"}},{{"b":1}}"#);
        for _ in 0..2 {
            let (info, _) = inspect(72, format!("{sealed}]}}").as_bytes());
            assert!(info.unwrap().may_hold_seal);
        }
        let (info, took) = inspect(72, format!("{sealed},2]}}").as_bytes());
        assert!(took && info.unwrap().may_hold_seal);
    }

    /// Whether a body holds the thought signature separator is known of kept values and
    /// elements as a search of the whole body knows it (`inspect` compares the two), also once
    /// the elements that held one are replaced or appended to.
    #[test]
    fn the_signature_separator_is_found_in_kept_bytes_as_in_the_body() {
        let sep = crate::seal::SIGNATURE_SEPARATOR;
        let signed = |info: Result<RequestInfo, JsonError>| info.unwrap().may_carry_signature;
        // In kept tools.
        let tools =
            json!([{"name": "t", "description": format!("call_1{sep}tok {}", "d".repeat(5000))}]);
        assert!(signed(inspect(80, &with_tools(&tools, "x")).0));
        let (info, took) = inspect(80, &with_tools(&tools, "y"));
        assert!(took && signed(info));
        // In a conversation's elements, turn after turn.
        let el = |name: &str, with: bool| {
            let id = if with {
                format!("call_{name}{sep}tok")
            } else {
                format!("call_{name}")
            };
            format!(r#"{{"id":"{id}","text":"{}"}}"#, name.repeat(3000))
        };
        let turn = |els: &[String]| {
            format!(r#"{{"model":"m","messages":[{}]}}"#, els.join(",")).into_bytes()
        };
        let (x, y, w, z, v) = (
            el("x", false),
            el("y", false),
            el("w", true),
            el("z", false),
            el("v", false),
        );
        for _ in 0..2 {
            assert!(!signed(inspect(81, &turn(&[x.clone(), y.clone()])).0));
        }
        // Found where the turn goes on, then in what was kept of it.
        let (info, took) = inspect(81, &turn(&[x.clone(), y.clone(), w.clone()]));
        assert!(took && signed(info));
        let (info, took) = inspect(81, &turn(&[x.clone(), y.clone(), w.clone(), v.clone()]));
        assert!(took && signed(info));
        // The element that held it replaced: not found in the elements taken before it, nor
        // in what is kept in its place.
        let (info, took) = inspect(81, &turn(&[x.clone(), y.clone(), z.clone()]));
        assert!(took && !signed(info));
        let (info, took) = inspect(81, &turn(&[x.clone(), y.clone(), z.clone(), v.clone()]));
        assert!(took && !signed(info));
    }

    /// Kept elements whose container notes a body has no room for are not taken: the scan
    /// would have run out of room there and noted fewer.
    #[test]
    fn kept_elements_are_taken_only_where_their_container_notes_fit() {
        let nested = format!(
            "{}\"{}\"{}",
            "[".repeat(120),
            "t".repeat(3000),
            "]".repeat(120)
        );
        let messages = format!(r#"["{}",{nested}]"#, "s".repeat(1200));
        let roomy = format!(
            r#"{{"model":"m","messages":{messages},"pad":"{}"}}"#,
            "p".repeat(20_000)
        );
        let tight = format!(r#"{{"model":"m","messages":{messages}}}"#);
        assert!(!inspect(90, roomy.as_bytes()).1);
        assert!(!inspect(90, roomy.as_bytes()).1);
        assert!(inspect(90, roomy.as_bytes()).1);
        assert!(!inspect(90, tight.as_bytes()).1);
    }

    /// A scan that may take kept bytes checks the body's UTF-8 after it, outside what it
    /// took (checked when kept): a body that is not UTF-8 anywhere is refused as the plain
    /// scan refuses it, bytes that are not UTF-8 are never kept, and a body whose every byte
    /// was checked is given as `Checked` without a second look.
    #[test]
    fn bytes_taken_as_kept_were_checked_and_the_rest_is_checked_after() {
        use crate::json::{inspect_checked, inspect_request};
        let turns: Vec<Value> = (0..4).map(|i| turn(i, 3000)).collect();
        let good = conversation("messages", &turns);
        let spoil = |at: usize| {
            let mut b = good.clone();
            let x = b.iter().skip(at).position(|&c| c == b'x').unwrap() + at;
            b[x] = 0xFF;
            b
        };
        let checked = |body: &[u8]| {
            let bytes = bytes::Bytes::copy_from_slice(body);
            let (info, utf8) =
                inspect_checked(&bytes, || with_scope(300, || inspect_request(&bytes)));
            assert_eq!(utf8.is_some(), std::str::from_utf8(body).is_ok());
            info
        };
        // Not UTF-8 in the first element: refused each time, never kept or taken.
        let early = spoil(100);
        for _ in 0..3 {
            assert!(!inspect(300, &early).1);
            assert!(checked(&early).is_err());
        }
        for _ in 0..2 {
            assert!(!inspect(300, &good).1);
        }
        assert!(inspect(300, &good).1);
        assert!(checked(&good).is_ok());
        // Not UTF-8 after what is taken, or in what would be: refused as the plain scan does.
        for at in [good.len() / 2, good.len() - 200, 100] {
            let (info, _) = inspect(300, &spoil(at));
            assert!(info.is_err(), "{at}");
            assert!(checked(&spoil(at)).is_err(), "{at}");
        }
        assert!(inspect(300, &good).1);
    }

    /// Random conversations and random next turns (appended, changed, cut, other keys, bad
    /// bytes): every inspection with kept conversations gives the plain one's answer and
    /// notes (`inspect` asserts it).
    #[test]
    fn random_turns_are_inspected_as_the_plain_scan_inspects_them() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut taken = 0;
        for round in 0..60 {
            let scope = 200 + next(3);
            let mut turns: Vec<Value> = (0..next(8) + 1)
                .map(|i| turn(i as usize, next(3000) as usize))
                .collect();
            for _ in 0..8 {
                match next(6) {
                    0 | 1 => turns.push(turn(turns.len(), next(4000) as usize)),
                    2 => {
                        let at = next(turns.len() as u64) as usize;
                        turns[at] = json!({"role": "user", "content": [1, 2.5, null, {"k": "v".repeat(next(600) as usize)}]});
                    }
                    3 => turns.truncate(next(turns.len() as u64) as usize + 1),
                    4 => turns.push(json!(next(1000))),
                    _ => turns.push(json!([[["n"]], "s".repeat(next(300) as usize)])),
                }
                let mut body = conversation("messages", &turns);
                if next(10) == 0 {
                    // A bad byte somewhere past the middle.
                    let at = body.len() / 2 + next(body.len() as u64 / 2) as usize;
                    body[at] = b"]},\"x\\"[next(6) as usize];
                }
                let (_, took) = inspect(scope, &body);
                taken += usize::from(took);
            }
            let _ = round;
        }
        assert!(taken > 100, "{taken}");
    }

    /// Where two byte strings part, found a chunk at a time, as byte by byte.
    #[test]
    fn common_prefix_is_where_the_bytes_part() {
        let base: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let plain = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        for at in [0, 1, 4095, 4096, 4097, 8191, 12_345, 19_999] {
            let mut other = base.clone();
            other[at] ^= 0x55;
            assert_eq!(common_prefix(&base, &other), at);
            assert_eq!(common_prefix(&other, &base), at);
            assert_eq!(
                common_prefix(&base[..at], &other),
                plain(&base[..at], &other)
            );
        }
        // Where the doubling blocks meet (4, 12, 28, 60 KB …) and inside the last one.
        let long: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 253) as u8).collect();
        for at in [12_287, 12_288, 28_671, 28_672, 61_439, 100_000, 299_999] {
            let mut other = long.clone();
            other[at] ^= 0x55;
            assert_eq!(common_prefix(&long, &other), at);
            assert_eq!(common_prefix(&long[..at + 1], &other[..at]), at);
        }
        assert_eq!(common_prefix(&base, &base), base.len());
        assert_eq!(common_prefix(&base[..5000], &base), 5000);
        assert_eq!(common_prefix(&base, &base[..5000]), 5000);
        assert_eq!(common_prefix(b"", &base), 0);
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
