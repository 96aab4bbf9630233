//! Session and restorer tests: stand-in shapes, determinism, collisions, and the property that
//! any text pushed in any split restores exactly like the whole (a naive oracle checks the
//! whole).
use super::*;

/// splitmix64, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn detector() -> Detector {
    let terms = [
        Term {
            text: "Jane Doe".into(),
            kind: Kind::Name,
        },
        Term {
            text: "Halifax".into(),
            kind: Kind::Place,
        },
    ];
    Detector::new(&["EMP-\\d{6}".into()], &terms).unwrap()
}

const PROMPT: &str = "Jane Doe (jane.doe@corp.example.io, +44 20 7946 0958, (415) 555-2671) lives in \
Halifax. Card 4111 1111 1111 1111, SSN 123-45-6789, SIN 130 692 544, IBAN GB82 WEST 1234 5698 7654 32, \
hosts 10.20.30.40 and 2001:470:1f0b:12::1, badge EMP-123456.";

#[test]
fn every_kind_is_replaced_by_a_well_formed_stand_in() {
    let d = detector();
    let mut s = Session::new(&d, b"key-a");
    let out = s.substitute(&[PROMPT]).remove(0).unwrap();
    for p in s.pairs() {
        assert!(!out.contains(&p.original), "{} left in {out}", p.original);
        assert!(out.contains(&p.stand_in));
        assert!(escape_invariant(&p.stand_in), "{}", p.stand_in);
        let check = Detector::new(&[], &[]).unwrap();
        match p.kind {
            Kind::Email => assert!(p.stand_in.contains("@example."), "{}", p.stand_in),
            Kind::Card => {
                assert_eq!(p.stand_in.len(), p.original.len());
                assert_eq!(p.stand_in.matches(' ').count(), 3);
                assert!(luhn_ok(&detect::digits_of(&p.stand_in)));
                assert!(p.stand_in.starts_with("4000"));
            }
            Kind::Ssn => assert!(p.stand_in.starts_with('9') && p.stand_in.len() == 11),
            Kind::Sin => {
                assert!(p.stand_in.starts_with('0') && p.stand_in.len() == 11);
                assert!(luhn_ok(&detect::digits_of(&p.stand_in)));
            }
            Kind::Ipv4 => assert!(
                ["192.0.2.", "198.51.100.", "203.0.113."]
                    .iter()
                    .any(|n| p.stand_in.starts_with(n)),
                "{}",
                p.stand_in
            ),
            Kind::Ipv6 => assert!(p.stand_in.starts_with("2001:db8:")),
            Kind::Iban => {
                assert!(p.stand_in.starts_with("GB") && p.stand_in.len() == p.original.len());
                // The stand-in is itself a valid IBAN: the detector accepts it.
                let f = check.find(&p.stand_in);
                assert_eq!(f.len(), 1, "{}", p.stand_in);
                assert_eq!(f[0].kind, Kind::Iban);
            }
            Kind::Phone => {
                assert_eq!(p.stand_in.len(), p.original.len());
                if p.original.starts_with('(') {
                    assert!(p.stand_in.contains("555-01"), "{}", p.stand_in);
                } else {
                    assert!(p.stand_in.starts_with("+44 "), "{}", p.stand_in);
                }
            }
            Kind::Name => assert_eq!(p.stand_in.split(' ').count(), 2),
            Kind::Place => assert!(!p.stand_in.is_empty()),
            Kind::Regex => {
                // Letters for letters, digits for digits, safe punctuation kept.
                let shape: String = p
                    .stand_in
                    .chars()
                    .map(|c| match c {
                        '0'..='9' => '9',
                        'A'..='Z' => 'A',
                        c => c,
                    })
                    .collect();
                assert_eq!(shape, "AAA-999999", "{}", p.stand_in)
            }
        }
    }
    let c = s.counts();
    for k in KINDS {
        // Two phone numbers (one international, one NANP), one of everything else.
        let want = if k == Kind::Phone { 2 } else { 1 };
        assert_eq!(c.get(k), want, "{}", k.label());
    }
    assert_eq!(c.total(), 12);
    // Restoring the substituted text gives the prompt back.
    let set = s.restore_set().unwrap();
    assert_eq!(
        String::from_utf8(set.restore_all(out.as_bytes())).unwrap(),
        PROMPT
    );
}

#[test]
fn deterministic_per_key_and_consistent_across_turns() {
    let d = detector();
    let first = Session::new(&d, b"key-a").substitute(&[PROMPT]);
    let again = Session::new(&d, b"key-a").substitute(&[PROMPT]);
    let other = Session::new(&d, b"key-b").substitute(&[PROMPT]);
    assert_eq!(first, again);
    assert_ne!(first, other);
    // The same original twice in one request (two turns) gets one stand-in, counted twice.
    let mut s = Session::new(&d, b"key-a");
    let out = s.substitute(&["mail a@b.example.com", "again: a@b.example.com"]);
    assert_eq!(s.pairs().len(), 1);
    assert_eq!(s.counts().get(Kind::Email), 2);
    let stand_in = &s.pairs()[0].stand_in;
    assert!(out[0].as_ref().unwrap().ends_with(stand_in.as_str()));
    assert!(out[1].as_ref().unwrap().ends_with(stand_in.as_str()));
}

#[test]
fn no_stand_in_collides_with_the_prompt_or_another() {
    let d = detector();
    // Learn the stand-in a first draw would pick, then put it in the prompt: it must re-draw.
    let mut probe = Session::new(&d, b"k");
    probe.substitute(&["10.0.0.1"]);
    let first = probe.pairs()[0].stand_in.clone();
    let mut s = Session::new(&d, b"k");
    let prompt = format!("10.0.0.1 and the doc address {first}");
    s.substitute(&[&prompt]);
    assert_ne!(s.pairs()[0].stand_in, first);
    // Many addresses: 762 documentation addresses, all distinct, none inside another.
    let text: String = (0..300)
        .map(|i| format!("10.1.{}.{} ", i / 250, i % 250 + 1))
        .collect();
    let mut s = Session::new(&d, b"k");
    let out = s.substitute(&[&text]).remove(0).unwrap();
    let pairs = s.pairs();
    assert_eq!(pairs.len(), 300);
    for (i, a) in pairs.iter().enumerate() {
        assert!(!text.contains(&a.stand_in));
        for b in &pairs[i + 1..] {
            assert!(!a.stand_in.contains(&b.stand_in) && !b.stand_in.contains(&a.stand_in));
        }
    }
    let set = s.restore_set().unwrap();
    assert_eq!(set.restore_all(out.as_bytes()), text.as_bytes());
}

#[test]
fn no_stand_in_holds_another_original() {
    // `EMP-123456` draws a stand-in with six drawn digits; under some key they open with a
    // 9, and then they are an entity of the second pattern. With that number also in the
    // prompt, a stand-in holding it would send the original upstream inside itself.
    let d = Detector::new(&["EMP-\\d{6}".into(), "\\b9\\d{5}\\b".into()], &[]).unwrap();
    let mut hit = None;
    for k in 0u32..2000 {
        let key = k.to_le_bytes();
        let mut probe = Session::new(&d, &key);
        probe.substitute(&["badge EMP-123456"]);
        let first = probe.pairs()[0].stand_in.clone();
        if let Some(number) = first.get(4..).filter(|n| n.starts_with('9')) {
            hit = Some((key, first.clone(), number.to_string()));
            break;
        }
    }
    let (key, first, number) = hit.expect("some key draws a stand-in whose digits open with 9");
    let prompt = format!("badge EMP-123456, desk {number}");
    let mut s = Session::new(&d, &key);
    let out = s.substitute(&[&prompt]).remove(0).unwrap();
    assert!(!s.incomplete());
    assert_eq!(s.pairs().len(), 2);
    assert!(s.pairs().iter().all(|p| p.stand_in != first), "{out}");
    for p in s.pairs() {
        for q in s.pairs() {
            assert!(
                !p.stand_in.contains(&q.original),
                "{} holds {}",
                p.stand_in,
                q.original
            );
        }
    }
    for f in d.find(&out) {
        let found = &out[f.range];
        assert!(
            s.pairs().iter().all(|p| p.original != found),
            "{found} in {out}"
        );
    }
    assert_eq!(
        s.restore_set().unwrap().restore_all(out.as_bytes()),
        prompt.as_bytes()
    );
}

/// The oracle: restore by scanning left to right with plain string comparison. In JSON text
/// a letter right after a backslash is an escape (the generator below writes no other).
fn oracle(text: &[u8], pairs: &[(String, String)], mode: Mode) -> Vec<u8> {
    let word = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let (mut out, mut i) = (Vec::new(), 0);
    'outer: while i < text.len() {
        // Leftmost-longest: at each position the longest stand-in that starts there.
        let mut best: Option<&(String, String)> = None;
        for p in pairs {
            if text[i..].starts_with(p.0.as_bytes()) && best.is_none_or(|b| p.0.len() > b.0.len()) {
                best = Some(p);
            }
        }
        if let Some((s, o)) = best {
            let sb = s.as_bytes();
            let end = i + sb.len();
            let before_ok = !word(sb.first())
                || i == 0
                || !word(text.get(i - 1))
                || (mode == Mode::Json && i >= 2 && text[i - 2] == b'\\');
            let after_ok = !word(sb.last()) || !word(text.get(end));
            if before_ok && after_ok {
                out.extend_from_slice(o.as_bytes());
            } else {
                out.extend_from_slice(sb);
            }
            i = end;
            continue 'outer;
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// PROMPT substituted under `secret`: its (stand-in, original) pairs and restore set.
fn prompt_pairs(secret: &[u8]) -> (Vec<(String, String)>, Arc<RestoreSet>) {
    let d = detector();
    let mut s = Session::new(&d, secret);
    s.substitute(&[PROMPT]);
    let pairs = s
        .pairs()
        .iter()
        .map(|p| (p.stand_in.clone(), p.original.clone()))
        .collect();
    (pairs, s.restore_set().unwrap())
}

#[test]
fn any_split_restores_like_the_whole_and_like_the_oracle() {
    let (pairs, set) = prompt_pairs(b"prop");
    let filler: &[&[u8]] = &[
        b" ",
        b"x",
        b"\\n",
        b"\"",
        b"4000",
        b"a",
        b"\xc3\xa9",
        b".",
        b"-",
        b"2001:db8:",
    ];
    for seed in 0..3000u64 {
        let mut rng = Rng(seed);
        let mode = [Mode::Text, Mode::Json][rng.below(2)];
        let mut text = Vec::new();
        for _ in 0..rng.below(12) {
            match rng.below(3) {
                0 => text.extend_from_slice(pairs[rng.below(pairs.len())].0.as_bytes()),
                // A prefix of a stand-in that never completes.
                1 => {
                    let p = pairs[rng.below(pairs.len())].0.as_bytes();
                    text.extend_from_slice(&p[..rng.below(p.len())]);
                }
                _ => text.extend_from_slice(filler[rng.below(filler.len())]),
            }
        }
        let whole = set.restore_with(&text, mode);
        assert_eq!(
            whole,
            oracle(&text, &pairs, mode),
            "seed {seed}: {:?}",
            String::from_utf8_lossy(&text)
        );
        let split = restore_in_pieces(&set, mode, &text, &mut rng, seed);
        assert_eq!(split, whole, "seed {seed}");
    }
}

/// `text` through a streaming restorer in random pieces of 1 to 8 bytes; what is held back
/// never exceeds the longest stand-in.
fn restore_in_pieces(
    set: &Arc<RestoreSet>,
    mode: Mode,
    text: &[u8],
    rng: &mut Rng,
    seed: u64,
) -> Vec<u8> {
    let mut r = Restorer::with_mode(set.clone(), mode);
    let (mut out, mut at) = (Vec::new(), 0);
    while at < text.len() {
        let end = (at + 1 + rng.below(8)).min(text.len());
        out.extend(r.push(&text[at..end]));
        assert!(r.held() <= set.longest(), "seed {seed}: held {}", r.held());
        at = end;
    }
    out.extend(r.finish());
    out
}

#[test]
fn passes_through_at_once_when_nothing_is_in_flight() {
    let d = detector();
    let mut s = Session::new(&d, b"k");
    s.substitute(&["write to jane.doe@corp.example.io"]);
    let stand_in = s.pairs()[0].stand_in.clone();
    let mut r = Restorer::new(s.restore_set().unwrap());
    // No byte that could start a stand-in: everything comes out now.
    assert_eq!(r.push(b"Sure, I will "), b"Sure, I will ");
    // A stand-in split over three pushes comes out whole, restored, once complete.
    let (a, rest) = stand_in.split_at(3);
    let (b, c) = rest.split_at(4);
    let mut got = r.push(format!("write to {a}").as_bytes());
    assert_eq!(got, b"write to ");
    got.extend(r.push(b.as_bytes()));
    got.extend(r.push(format!("{c} today.").as_bytes()));
    got.extend(r.finish());
    assert_eq!(got, b"write to jane.doe@corp.example.io today.");
}

#[test]
fn word_boundaries_and_json_escapes() {
    let d = detector();
    let mut s = Session::new(&d, b"k");
    s.substitute(&["Jane Doe"]);
    let stand_in = s.pairs()[0].stand_in.clone();
    let set = s.restore_set().unwrap();
    let glued = format!("x{stand_in}y");
    assert_eq!(set.restore_all(glued.as_bytes()), glued.as_bytes());
    let escaped = format!("\"Hi\\n{stand_in}\\n\"");
    assert_eq!(set.restore_all(escaped.as_bytes()), b"\"Hi\\nJane Doe\\n\"");
    // Inside tool arguments (JSON text in a JSON string) the bytes are the same.
    let args = format!("{{\\\"name\\\":\\\"{stand_in}\\\"}}");
    assert_eq!(
        set.restore_all(args.as_bytes()),
        b"{\\\"name\\\":\\\"Jane Doe\\\"}"
    );
}

#[test]
fn entities_json_would_escape_are_left_alone() {
    let d = Detector::new(&["ID\"\\d+".into()], &[]).unwrap();
    let mut s = Session::new(&d, b"k");
    assert_eq!(s.substitute(&["ID\"42"]), [None]);
    assert!(s.restore_set().is_none());
}

#[test]
fn other_scripts_digits_never_panic_and_addresses_beside_them_are_replaced_whole() {
    // Arabic-Indic digits in SSN and SIN shapes once panicked a worker: the regex matched them
    // and the check indexed ASCII digits that were not there.
    let d = detector();
    for text in [
        "id ١٢٣-٤٥-٦٧٨٩",
        "sin ١٢٣ ٤٥٦ ٧٨٩",
        "card ٤١١١ ١١١١ ١١١١ ١١١١",
    ] {
        let mut s = Session::new(&d, b"key-a");
        assert_eq!(s.substitute(&[text]), vec![None], "{text}");
    }
    // An address right after a CJK or accented letter is replaced whole (a Unicode word
    // boundary saw no edge there).
    for (text, original) in [
        (
            "メールアドレスはjane.doe@example.comです",
            "jane.doe@example.com",
        ),
        (
            "éjane.doe@mail.example.co.uk",
            "jane.doe@mail.example.co.uk",
        ),
    ] {
        let mut s = Session::new(&d, b"key-a");
        let out = s.substitute(&[text]).remove(0).unwrap();
        assert!(!out.contains("jane."), "{out}");
        assert_eq!(s.pairs()[0].original, original);
    }
}

#[test]
fn a_request_whose_entities_cannot_all_be_replaced_is_marked_incomplete() {
    let d = detector();
    // More distinct entities than one request may hold.
    let many: Vec<String> = (0..=MAX_ENTITIES)
        .map(|i| format!("user{i}@corp.example.io"))
        .collect();
    let text = many.join(" ");
    let mut s = Session::new(&d, b"key-a");
    let _ = s.substitute(&[&text]);
    assert!(s.incomplete(), "over {MAX_ENTITIES} entities");
    // A few are fine.
    let mut s = Session::new(&d, b"key-a");
    let _ = s.substitute(&["mail user1@corp.example.io and user2@corp.example.io"]);
    assert!(!s.incomplete());
    // Every stand-in of the IPv4 pool written out in the prompt, with many addresses to
    // replace: the draws' scanning budget ends it quickly, refused rather than left in place.
    let mut pool = String::new();
    for net in ["192.0.2", "198.51.100", "203.0.113"] {
        for host in 0..=255 {
            pool.push_str(&format!("{net}.{host} "));
        }
    }
    let addresses: Vec<String> = (0..400)
        .map(|i| format!("10.9.{}.{}", i / 200, i % 200))
        .collect();
    let prompt = format!("{pool}{}", addresses.join(" "));
    let mut s = Session::new(&d, b"key-a");
    let out = s.substitute(&[&prompt]).remove(0);
    if !s.incomplete() {
        let out = out.unwrap();
        assert!(
            !out.contains("10.9.0.1 "),
            "replaced every address or refused"
        );
    }
}

/// Escapes a provider's JSON writer may put next to a stand-in (Python's `ensure_ascii`, a
/// writer that escapes `"` as `\u0022`), each with the text it stands for.
const ESCAPES: &[(&str, &str)] = &[
    (r"\u00e9", "é"),
    (r"\u0022", "\""),
    (r#"\""#, "\""),
    (r"\\", "\\"),
    (r"\u005c", "\\"),
    (r"\/", "/"),
    (r"\n", "\n"),
    (r"\t", "\t"),
    (r"\u0020", " "),
    (r"\u002e", "."),
    (r"\u0041", "A"),
    (r"\u0031", "1"),
    (r"\ud83d\ude00", "😀"),
];

/// Random text of stand-ins, stand-in prefixes, escapes and plain filler: the JSON string
/// content as written, and the text it decodes to.
fn escaped_text(rng: &mut Rng, pairs: &[(String, String)]) -> (String, String) {
    let filler = [" ", "x", "é", ".", "-", "7"];
    let (mut raw, mut text) = (String::new(), String::new());
    for _ in 0..rng.below(10) {
        let piece = match rng.below(4) {
            0 | 1 => {
                let (r, t) = ESCAPES[rng.below(ESCAPES.len())];
                raw.push_str(r);
                text.push_str(t);
                continue;
            }
            2 => pairs[rng.below(pairs.len())].0.clone(),
            _ if rng.below(2) == 0 => {
                let p = &pairs[rng.below(pairs.len())].0;
                p[..rng.below(p.len())].to_string()
            }
            _ => filler[rng.below(filler.len())].to_string(),
        };
        raw.push_str(&piece);
        text.push_str(&piece);
    }
    (raw, text)
}

#[test]
fn escapes_next_to_stand_ins_in_whole_answers_restore_like_the_decoded_text() {
    let (pairs, set) = prompt_pairs(b"escapes");
    for seed in 0..3000u64 {
        let mut rng = Rng(seed);
        let (raw, text) = escaped_text(&mut rng, &pairs);
        let expected = String::from_utf8(oracle(text.as_bytes(), &pairs, Mode::Text)).unwrap();
        // Text in a non-streaming answer, as a provider's JSON writer escaped it.
        let body = format!(
            r#"{{"content":[{{"type":"text","text":"{raw}"}}],"n":1.000000000000000000001}}"#
        );
        let out = set.restore_document(body.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", String::from_utf8_lossy(&out)));
        assert_eq!(v["content"][0]["text"], expected, "seed {seed}: {raw}");
        assert!(
            out.ends_with(br#""n":1.000000000000000000001}"#),
            "seed {seed}"
        );
        // The same text inside tool-call arguments: JSON text in a JSON string, escaped twice.
        let mut args = Vec::new();
        crate::json::write_json_string(&mut args, &format!(r#"{{"to":"{raw}"}}"#));
        let args = String::from_utf8(args).unwrap();
        let body = format!(
            r#"{{"choices":[{{"message":{{"tool_calls":[{{"id":"c","function":{{"name":"f","arguments":{args}}}}}]}}}}]}}"#
        );
        let out = set.restore_document(body.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let inner = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let inner: serde_json::Value = serde_json::from_str(inner)
            .unwrap_or_else(|e| panic!("seed {seed}: arguments broken: {e}: {inner}"));
        assert_eq!(inner["to"], expected, "seed {seed}: {raw}");
        // Streamed, the arguments text comes in pieces: any split restores like the whole.
        let inner_raw = format!(r#"{{"to":"{raw}"}}"#);
        let whole = set.restore_with(inner_raw.as_bytes(), Mode::Json);
        let split = restore_in_pieces(&set, Mode::Json, inner_raw.as_bytes(), &mut rng, seed);
        assert_eq!(split, whole, "seed {seed}: {raw}");
    }
}

#[test]
fn escapes_right_before_and_after_a_stand_in() {
    let d = detector();
    let mut s = Session::new(&d, b"k");
    let out = s
        .substitute(&["write to jane.doe@corp.example.io"])
        .remove(0)
        .unwrap();
    let stand_in = out.strip_prefix("write to ").unwrap().to_string();
    let set = s.restore_set().unwrap();
    let answer = |text: &str| {
        let body = format!(r#"{{"content":[{{"type":"text","text":"{text}"}}]}}"#);
        let out = set.restore_document(body.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v["content"][0]["text"].as_str().unwrap().to_owned()
    };
    let o = "jane.doe@corp.example.io";
    assert_eq!(answer(&format!(r"\u00e9{stand_in}")), format!("é{o}"));
    assert_eq!(
        answer(&format!(r"\u0022{stand_in}\u0022")),
        format!("\"{o}\"")
    );
    assert_eq!(answer(&format!(r"\n{stand_in}\u00e9")), format!("\n{o}é"));
    // An escaped letter is a letter: the stand-in is part of a longer word.
    assert_eq!(
        answer(&format!(r"\u0041{stand_in}")),
        format!("A{stand_in}")
    );
    // A stand-in that would start inside an escape is not one (`\n` + `ora…` is not `nora…`).
    let set = RestoreSet::new([("nora.quinn@example.com", o)]).unwrap();
    let json = br#"{"to":"\nora.quinn@example.com \\nora.quinn@example.com"}"#;
    assert_eq!(
        set.restore_with(json, Mode::Json),
        format!(r#"{{"to":"\nora.quinn@example.com \\{o}"}}"#).as_bytes()
    );
}

#[test]
fn an_operator_match_is_replaced_with_its_word_or_the_request_is_refused() {
    let d = Detector::new(&[r"MRN\d{6}".into(), r"Ref:\s\d{4}".into()], &[]).unwrap();
    // Glued to a word: the whole word is the entity, and it comes back.
    let text = "record MRN654321x, 7MRN123456 and MRN111111";
    let mut s = Session::new(&d, b"key-a");
    let out = s.substitute(&[text]).remove(0).unwrap();
    assert!(!s.incomplete());
    assert!(!out.contains("MRN"), "{out}");
    let originals: Vec<_> = s.pairs().iter().map(|p| p.original.as_str()).collect();
    assert_eq!(originals, ["MRN654321x", "7MRN123456", "MRN111111"]);
    let back = s
        .restore_set()
        .unwrap()
        .restore_with(out.as_bytes(), Mode::Text);
    assert_eq!(back, text.as_bytes());
    // A match that cannot be written the same escaped or not: refused, naming its kind.
    let mut s = Session::new(&d, b"key-a");
    let _ = s.substitute(&["ok", "see Ref:\n1234"]);
    assert_eq!(s.unreplaced(), Some(Unreplaced::Unescapable(Kind::Regex)));
    assert!(s.unreplaced().unwrap().to_string().contains("`regex`"));
    // A word too long to be one entity: refused, not cut.
    let long = format!("{}MRN654321", "x".repeat(MAX_ENTITY_BYTES));
    let mut s = Session::new(&d, b"key-a");
    let _ = s.substitute(&[&long]);
    assert_eq!(s.unreplaced(), Some(Unreplaced::TooLong(Kind::Regex)));
    // Digits without end under `\d{6}`-like patterns: one bounded walk per word, refused.
    let d = Detector::new(&[r"\d{6}".into()], &[]).unwrap();
    let digits = format!("x{}", "1".repeat(MAX_TEXT_BYTES / 4));
    let t = std::time::Instant::now();
    let mut s = Session::new(&d, b"key-a");
    let _ = s.substitute(&[&digits]);
    assert!(s.incomplete());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
}

fn names_detector() -> Detector {
    let terms = [
        Term {
            text: "García".into(),
            kind: Kind::Name,
        },
        Term {
            text: "Jane Doe".into(),
            kind: Kind::Name,
        },
    ];
    Detector::new(&[], &terms).unwrap()
}

fn found<'t>(d: &Detector, text: &'t str) -> Vec<&'t str> {
    d.find(text).into_iter().map(|f| &text[f.range]).collect()
}

#[test]
fn dictionary_terms_beside_non_ascii_punctuation_and_unspaced_scripts_are_found() {
    let d = names_detector();
    assert_eq!(found(&d, "Jane Doe’s file"), ["Jane Doe"]);
    assert_eq!(found(&d, "“Jane Doe” called"), ["Jane Doe"]);
    assert_eq!(found(&d, "«García»"), ["García"]);
    assert_eq!(found(&d, "Dr. Jane Doe—the patient"), ["Jane Doe"]);
    assert_eq!(found(&d, "患者García"), ["García"]);
    assert_eq!(found(&d, "García様、김García는"), ["García", "García"]);
    // No-break and other Unicode spaces are spaces.
    assert_eq!(found(&d, "Sr.\u{a0}García\u{2009}y"), ["García"]);
    // Part of a longer word: not the name.
    assert!(found(&d, "Jane Doeson").is_empty());
    assert!(found(&d, "xGarcía").is_empty());
    assert!(found(&d, "Garcíaz").is_empty());
    assert!(found(&d, "éGarcía Garcíaé 1García García2").is_empty());
}

#[test]
fn dictionary_matching_folds_non_ascii_case() {
    let d = names_detector();
    assert_eq!(found(&d, "GARCÍA called"), ["GARCÍA"]);
    assert_eq!(found(&d, "gARCíA, JANE DOE"), ["gARCíA", "JANE DOE"]);
    // Offsets stay right when folding changes a character's length (Kelvin sign, 3 bytes,
    // folds to `k`; `ẞ` folds to `ß`).
    assert_eq!(found(&d, "\u{212a} ẞ GARCÍA. ẞ"), ["GARCÍA"]);
    assert!(found(&d, "GARCÍAS").is_empty());
    let k = Detector::new(
        &[],
        &[Term {
            text: "Straße".into(),
            kind: Kind::Place,
        }],
    )
    .unwrap();
    assert_eq!(found(&k, "in STRAẞE \u{212a}"), ["STRAẞE"]);
}

#[test]
fn stand_ins_of_terms_found_beside_non_ascii_characters_are_restored() {
    // Whatever the detector substitutes by its rule the restorer restores: it refuses a
    // stand-in only beside an ASCII letter or digit, and such a neighbour blocks detection.
    let d = names_detector();
    for text in [
        "Jane Doe’s file",
        "“Jane Doe” called",
        "«García»",
        "Dr. Jane Doe—the patient",
        "患者García様",
        "Sr.\u{a0}GARCÍA",
    ] {
        let mut s = Session::new(&d, b"k");
        let out = s.substitute(&[text]).remove(0).unwrap();
        assert_ne!(out, text);
        let set = s.restore_set().unwrap();
        for mode in [Mode::Text, Mode::Json] {
            assert_eq!(
                set.restore_with(out.as_bytes(), mode),
                text.as_bytes(),
                "{text}"
            );
        }
    }
}

#[test]
fn numbers_that_end_a_sentence_or_a_clause_are_replaced() {
    // A full stop or a dash right after an SSN, a SIN or an IPv4 address once counted as glued
    // (as in `1.2.3.4.5`), so the commonest way to write one, at the end of a sentence, went
    // upstream as written.
    let d = detector();
    let text = "My SSN is 123-45-6789. SIN 130 692 544. Host 10.20.30.40.\nSSN 123-45-6780-";
    let mut s = Session::new(&d, b"key-a");
    let out = s.substitute(&[text]).remove(0).unwrap();
    assert!(!s.incomplete());
    for original in ["123-45-6789", "130 692 544", "10.20.30.40", "123-45-6780"] {
        assert!(!out.contains(original), "{original} in {out}");
    }
    assert_eq!(
        (
            s.counts().get(Kind::Ssn),
            s.counts().get(Kind::Sin),
            s.counts().get(Kind::Ipv4)
        ),
        (2, 1, 1)
    );
    // Followed by `.digit`, `-digit` or a letter, it is still part of something longer.
    for text in [
        "version 1.2.3.4.5",
        "ssn 123-45-6789-1",
        "sin 130 692 544.2",
        "host 10.20.30.40.nip.io",
        "id 123-45-6789_x",
    ] {
        let mut s = Session::new(&d, b"key-a");
        assert_eq!(s.substitute(&[text]), vec![None], "{text}");
    }
}

/// `n` random decimal digits as ASCII.
fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

/// `prefix`, random digits and a Luhn check digit, `groups` long in all, written in those
/// groups with spaces (a SIN in threes, a card in fours).
fn luhn_grouped(rng: &mut Rng, prefix: &str, groups: &[usize]) -> String {
    let len: usize = groups.iter().sum();
    let body = format!("{prefix}{}", digits(rng, len - prefix.len() - 1));
    let values: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
    let all = format!("{body}{}", detect::luhn_digit(&values));
    let mut at = 0;
    let parts: Vec<&str> = groups
        .iter()
        .map(|g| {
            at += g;
            &all[at - g..at]
        })
        .collect();
    parts.join(" ")
}

/// A NANP number `(AAA) ` + `rest`, the area code drawn.
fn nanp(rng: &mut Rng, rest: &str) -> String {
    format!("({}{}) {rest}", 2 + rng.below(8), digits(rng, 2))
}

/// `local` and a two-digit number at one of `domains`.
fn mail(rng: &mut Rng, local: &str, domains: &[&str]) -> String {
    format!(
        "{local}{:02}@{}",
        rng.below(100),
        domains[rng.below(domains.len())]
    )
}

/// A real entity of a random kind the [`detector`] finds, written as people write them.
fn real_entity(rng: &mut Rng) -> String {
    const LOCAL: &[&str] = &["jane", "j.smith", "ops", "dr.kim", "x7", "maria.lopez"];
    const DOMAINS: &[&str] = &["corp.test", "mail.example.io", "clinic.org", "bank.co.uk"];
    match rng.below(11) {
        0 => {
            let local = LOCAL[rng.below(LOCAL.len())];
            mail(rng, local, DOMAINS)
        }
        // NANP, any exchange but the fictional 555.
        1 => {
            let rest = format!("{}{}-{}", 2 + rng.below(3), digits(rng, 2), digits(rng, 4));
            nanp(rng, &rest)
        }
        2 => format!("+44 20 {} {}", digits(rng, 4), digits(rng, 4)),
        // An SSN as issued: area 001-899 but 666, group and serial not zero.
        3 => {
            let area = [1 + rng.below(665), 667 + rng.below(233)][rng.below(2)];
            format!(
                "{area:03}-{:02}-{:04}",
                1 + rng.below(99),
                1 + rng.below(9999)
            )
        }
        // A SIN as issued: first digit neither 0 nor 8, Luhn-valid.
        4 => {
            let first = ["1", "2", "3", "4", "5", "6", "7", "9"][rng.below(8)];
            luhn_grouped(rng, first, &[3, 3, 3])
        }
        5 => luhn_grouped(rng, "4", &[4, 4, 4, 4]),
        // Outside the documentation networks.
        6 => format!(
            "{}.{}.{}.{}",
            10 + rng.below(90),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        ),
        7 => format!(
            "2001:470:{:x}:{:x}::{:x}",
            rng.below(0x10000),
            rng.below(0x10000),
            1 + rng.below(0xffff)
        ),
        8 => {
            let letters: String = (0..4)
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect();
            let mut compact = format!("GB00{letters}{}", digits(rng, 14)).into_bytes();
            let check = 98 - detect::iban_mod97(&compact).unwrap();
            compact[2] = b'0' + (check / 10) as u8;
            compact[3] = b'0' + (check % 10) as u8;
            let c = String::from_utf8(compact).unwrap();
            let groups: Vec<&str> = (0..c.len())
                .step_by(4)
                .map(|i| &c[i..(i + 4).min(c.len())])
                .collect();
            groups.join(" ")
        }
        9 => ["Jane Doe", "Halifax"][rng.below(2)].to_string(),
        _ => format!("EMP-{}", digits(rng, 6)),
    }
}

/// Text shaped like the stand-ins the session draws (the same reserved ranges and name
/// lists): some of it is an entity itself (documentation addresses, 555-01XX numbers, test
/// cards), some is not (9XX SSNs, SINs starting with 0, names not in the dictionary).
fn likely_stand_in(rng: &mut Rng) -> String {
    const FIRST: &[&str] = &["avery", "blake", "camila", "dario", "elena", "farid"];
    const LAST: &[&str] = &["abbott", "brennan", "castillo", "dunmore", "eriksen"];
    const DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];
    match rng.below(9) {
        0 => {
            let local = format!(
                "{}.{}",
                FIRST[rng.below(FIRST.len())],
                LAST[rng.below(LAST.len())]
            );
            mail(rng, &local, DOMAINS)
        }
        1 => {
            let rest = format!("555-01{}", digits(rng, 2));
            nanp(rng, &rest)
        }
        2 => format!(
            "9{}-{:02}-{:04}",
            digits(rng, 2),
            1 + rng.below(99),
            1 + rng.below(9999)
        ),
        3 => luhn_grouped(rng, "0", &[3, 3, 3]),
        4 => {
            let net = ["192.0.2", "198.51.100", "203.0.113"][rng.below(3)];
            format!("{net}.{}", 1 + rng.below(254))
        }
        5 => format!(
            "2001:db8:{:x}:{:x}::{:x}:{:x}",
            rng.below(0x10000),
            rng.below(0x10000),
            rng.below(0x10000),
            rng.below(0x10000)
        ),
        6 => luhn_grouped(rng, "4000", &[4, 4, 4, 4]),
        7 => ["Avery Abbott", "Blake Brennan", "Alderbrook", "Cedarvale"][rng.below(4)].to_string(),
        _ => format!("EMP-{}", digits(rng, 6)),
    }
}

/// The property behind "a stand-in never collides with text already in the prompt": random
/// prompts (one to three texts, as system, user and tool-result text) of filler, real
/// entities, text shaped like stand-ins, and, for some entities, the very stand-in a first
/// draw would give them (learnt from a session holding that entity alone), bare or inside a
/// longer word. No stand-in chosen occurs anywhere in the prompt or inside another, none is
/// an original, and restoring each substituted text, whole or streamed in random pieces,
/// gives back exactly what was written, untouched text included.
#[test]
fn random_prompts_never_get_a_stand_in_already_in_them_and_restore_exactly() {
    const FILLER: &[&str] = &[
        " ", " ", "\n", ", ", ". ", "the", "call", "é", "日本", "(", ")", ":", "-", "x", "7", "ok",
        "😀",
    ];
    let d = detector();
    let mut forced_redraws = 0usize;
    for seed in 0..400u64 {
        let mut rng = Rng(seed);
        let secret = format!("key-{}", rng.below(4));
        let mut texts: Vec<String> = vec![String::new(); 1 + rng.below(3)];
        for _ in 0..4 + rng.below(16) {
            let t = rng.below(texts.len());
            let piece = match rng.below(6) {
                0 | 1 => FILLER[rng.below(FILLER.len())].to_string(),
                2 | 3 => {
                    let entity = real_entity(&mut rng);
                    if rng.below(2) == 0 {
                        // Put this entity's first-draw stand-in somewhere in the prompt.
                        let mut probe = Session::new(&d, secret.as_bytes());
                        probe.substitute(&[&entity]);
                        if let Some(p) = probe.pairs().first() {
                            let first = p.stand_in.clone();
                            let at = rng.below(texts.len());
                            let glued = ["", "ref"][rng.below(2)];
                            texts[at].push_str(&format!(" {glued}{first} "));
                        }
                    }
                    entity
                }
                _ => {
                    let look = likely_stand_in(&mut rng);
                    if rng.below(4) == 0 {
                        format!("id{look}z")
                    } else {
                        look
                    }
                }
            };
            texts[t].push(' ');
            texts[t].push_str(&piece);
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut s = Session::new(&d, secret.as_bytes());
        let out = s.substitute(&refs);
        assert!(
            !s.incomplete(),
            "seed {seed}: {:?} {texts:?}",
            s.unreplaced()
        );
        let pairs = s.pairs();
        for (i, p) in pairs.iter().enumerate() {
            for t in &texts {
                assert!(
                    !t.contains(&p.stand_in),
                    "seed {seed}: stand-in {:?} (for {:?}) is already in {t:?}",
                    p.stand_in,
                    p.original
                );
            }
            for q in &pairs[i + 1..] {
                assert!(
                    !p.stand_in.contains(&q.stand_in) && !q.stand_in.contains(&p.stand_in),
                    "seed {seed}: {:?} and {:?}",
                    p.stand_in,
                    q.stand_in
                );
            }
            assert!(
                pairs.iter().all(|q| q.original != p.stand_in),
                "seed {seed}: {:?}",
                p.stand_in
            );
        }
        // The probes' stand-ins that were written into the prompt were drawn again.
        forced_redraws += pairs
            .iter()
            .filter(|p| {
                let mut probe = Session::new(&d, secret.as_bytes());
                probe.substitute(&[&p.original]);
                probe
                    .pairs()
                    .first()
                    .is_some_and(|f| f.stand_in != p.stand_in)
            })
            .count();
        let set = s.restore_set();
        for (text, sub) in texts.iter().zip(&out) {
            let sent = sub.as_deref().unwrap_or(text);
            // What went upstream holds no original the detector would find again.
            for f in d.find(sent) {
                let found = &sent[f.range];
                assert!(
                    pairs.iter().all(|p| p.original != found),
                    "seed {seed}: original {found:?} sent in {sent:?}"
                );
            }
            let Some(set) = &set else {
                assert!(sub.is_none(), "seed {seed}");
                continue;
            };
            assert_eq!(
                String::from_utf8(set.restore_all(sent.as_bytes())).unwrap(),
                *text,
                "seed {seed}: sent {sent:?}"
            );
            let streamed = restore_in_pieces(set, Mode::Text, sent.as_bytes(), &mut rng, seed);
            assert_eq!(String::from_utf8(streamed).unwrap(), *text, "seed {seed}");
        }
    }
    // The generator did make draws collide (so the re-draw path ran), not only avoid them.
    assert!(
        forced_redraws > 100,
        "only {forced_redraws} re-draws forced"
    );
}

/// A long string the detectors found no entity in is kept with its bytes (`plain`), and a
/// stand-in in those bytes still makes a draw collide on the next turn, as when every string
/// is decoded and searched: its bytes may hold what a pattern needs.
#[test]
fn a_long_string_kept_as_searched_still_blocks_the_stand_ins_in_it() {
    let builtin = Detector::new(&[], &[]).unwrap();
    let decoding = Detector::new(&["x\\b\\Bx".into()], &[]).unwrap();
    let mut probe = Session::new(&builtin, b"kept");
    probe.substitute(&["10.0.0.1"]);
    let first = probe.pairs()[0].stand_in.clone();
    // The stand-in inside something no pattern takes (the first wrapping that works).
    let long = [
        format!("v1.{first}.9"),
        format!("0{first}0"),
        format!("x{first}x"),
        format!("{first}.0.0"),
    ]
    .into_iter()
    .map(|w| format!("{w} {}", "build step ".repeat(60)))
    .find(|t| builtin.find(t).is_empty())
    .expect("a wrapping in which the detectors find no entity");
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"system","content":"{long}"}},{{"role":"user","content":"ping 10.0.0.1"}}]}}"#
    );
    let mut plain_way = Session::new(&decoding, b"kept");
    let want = body::substitute(body.as_bytes(), &mut plain_way).unwrap();
    assert_ne!(plain_way.pairs()[0].stand_in, first, "the draw collided");
    for turn in 0..2 {
        let hits = plain::hits();
        let mut s = Session::new(&builtin, b"kept");
        assert_eq!(body::substitute(body.as_bytes(), &mut s).unwrap(), want);
        assert_eq!(s.pairs(), plain_way.pairs(), "turn {turn}");
        // The second turn found the long string kept.
        assert_eq!(plain::hits() - hits, turn, "turn {turn}");
    }
}

/// Strings searched still escaped (only built-in detectors on, `Text::Escaped`) give what
/// decoding every string gives: the same body out and the same stand-ins, on bodies whose
/// strings mix short and `\u` escapes, entities, code, lines that only look like entities,
/// and JSON text. A never-matching operator regex makes the second detector decode all.
#[test]
fn strings_searched_escaped_give_what_decoding_gives() {
    const PIECES: &[&str] = &[
        "fn main() {",
        "\\n",
        "\\t",
        "\\\"",
        "\\\\",
        "\\/",
        "\\r",
        "\\f",
        "\\b",
        "\\u0040",
        "\\u00e9",
        "\\\\u",
        "jane.roe@corp.test",
        "4111 1111 1111 1111",
        "123-45-6789",
        "10.20.30.40",
        "(415) 555-2671",
        "2001:db8::1",
        "std::io::Read",
        "let x = y;",
        " ",
        "{",
        "[",
        "\\n{\\\"a\\\":\\\"b\\\"}",
        "é",
        "a:b",
        "1\\n2",
        "9\\n-1",
        "x\\n:",
        "A\\n1",
        "plain words here",
        "\\n\\t ",
        "EMP",
        "ops",
        // An address whose colons are all `\\u` escapes: no byte a pattern needs is left.
        "fe80\\u003a\\u003a1\\u003a2",
    ];
    let builtin = Detector::new(&[], &[]).unwrap();
    let decoding = Detector::new(&["x\\b\\Bx".into()], &[]).unwrap();
    assert!(builtin.builtin_only() && !decoding.builtin_only());
    let (mut escaped, mut kept, mut substituted, mut found) = (0, 0, 0, 0u64);
    // Long strings the filter does not clear and the detectors find nothing in: kept too.
    let mut searched = 0;
    for seed in 0..3_000u64 {
        let mut rng = Rng(seed);
        // Now and then a long one, mostly of pieces no pattern needs a byte of: the worker
        // keeps it cleared (`plain`), unless a piece of any kind went in.
        let strings: Vec<String> = (0..1 + rng.below(4))
            .map(|_| {
                if rng.below(4) > 0 {
                    return (0..1 + rng.below(30))
                        .map(|_| PIECES[rng.below(PIECES.len())])
                        .collect();
                }
                (0..60 + rng.below(100))
                    .map(|_| match rng.below(200) {
                        0 => PIECES[rng.below(PIECES.len())],
                        k => PIECES[[0, 1, 2, 3, 4, 18, 19, 20, 23, 24][k % 10]],
                    })
                    .collect()
            })
            .collect();
        let mut body = String::from(r#"{"model":"m","messages":["#);
        for (i, s) in strings.iter().enumerate() {
            let role = ["user", "assistant", "tool"][i % 3];
            body.push_str(&format!(
                r#"{}{{"role":"{role}","tool_call_id":"t","content":"{s}"}}"#,
                if i == 0 { "" } else { "," }
            ));
            let token = format!("\"{s}\"");
            let cleared = body::escaped_text_len(token.as_bytes()).is_some();
            escaped += usize::from(cleared);
            kept += usize::from(cleared && token.len() >= 512);
            let text = crate::json::tree::decode(token.as_bytes(), 0..token.len());
            searched += usize::from(
                !cleared
                    && token.len() >= 512
                    && !token.contains("\\u")
                    && text.is_some_and(|t| {
                        !t.trim_start_matches([' ', '\t', '\n', '\r'])
                            .starts_with(['{', '[', '"'])
                            && builtin.find(&t).is_empty()
                    }),
            );
        }
        body.push_str("]}");
        let secret = [b'k', (seed % 3) as u8];
        let mut a = Session::new(&builtin, &secret);
        let mut b = Session::new(&decoding, &secret);
        let (x, y) = (
            body::substitute(body.as_bytes(), &mut a),
            body::substitute(body.as_bytes(), &mut b),
        );
        assert_eq!(x, y, "{body}");
        assert_eq!(a.pairs(), b.pairs(), "{body}");
        assert_eq!(a.incomplete(), b.incomplete(), "{body}");
        // Again on this thread: the long strings cleared above are found kept.
        let mut c = Session::new(&builtin, &secret);
        let hits = plain::hits();
        assert_eq!(body::substitute(body.as_bytes(), &mut c), x, "{body}");
        found += plain::hits() - hits;
        assert_eq!(c.pairs(), a.pairs(), "{body}");
        assert_eq!(c.incomplete(), a.incomplete(), "{body}");
        substituted += usize::from(!a.pairs().is_empty());
    }
    // Every long string cleared or searched clean was found kept on the second pass.
    assert!(
        escaped > 300
            && kept > 30
            && searched > 30
            && found >= (kept + searched) as u64
            && substituted > 1_000,
        "{escaped} {kept} {searched} {found} {substituted}"
    );
}

#[test]
fn sets_built_one_after_another_on_a_thread_each_restore_their_own() {
    // The automaton is kept per thread by the stand-ins (in order); the originals are each
    // set's own.
    let text = b"to Alex Moreau at ab@example.com";
    let a = RestoreSet::new([("Alex Moreau", "Nora Quinn"), ("ab@example.com", "n@q.io")]);
    let b = RestoreSet::new([("ab@example.com", "x@y.io"), ("Alex Moreau", "Jo Roe")]);
    let c = RestoreSet::new([("Alex Moreau", "Kim Lee"), ("ab@example.com", "k@l.io")]);
    let d = RestoreSet::new([("Alex Moreau", "Kim Lee")]);
    let each = [
        (a, "to Nora Quinn at n@q.io"),
        (b, "to Jo Roe at x@y.io"),
        (c, "to Kim Lee at k@l.io"),
        (d, "to Kim Lee at ab@example.com"),
    ];
    // Twice over: the second round finds every automaton kept.
    for _ in 0..2 {
        for (set, want) in &each {
            let set = set.as_ref().unwrap();
            assert_eq!(set.restore_all(text), want.as_bytes());
        }
    }
}
