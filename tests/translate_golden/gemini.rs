//! The Gemini pairs of the golden cases, run through [`Pair`] as the proxy runs them: which
//! pair a direction names, the options and seal every such case gets, inputs holding sealed
//! values made at test time, sealed values in outputs replaced by what they open to, the
//! request meta an answer is translated against, and the Gemini client's stream invariants.

use ringway::format::Format;
use ringway::seal::{Holder, SealKey};
use ringway::translate::chat_via_gemini::SignatureSeal;
use ringway::translate::gemini::GeminiSeal;
use ringway::translate::gemini_via_chat::{
    carried_token, ThinkingSeal, CARRIER_MAGIC, CARRIER_PREFIX,
};
use ringway::translate::{Options, Pair, RequestMeta};
use serde_json::{json, Value};

use super::{options, parse_json, Case, CREATED};

/// Every Gemini pair case seals with this key (`[SEAL_BYTE; 32]`, the open holder)…
const SEAL_BYTE: u8 = 7;
/// …for this provider.
pub const PROVIDER: &str = "golden-provider";
/// Between a tool call's id and its sealed signature (chat_via_gemini's separator).
const SIGNATURE_MARK: &str = "__rwts__";
/// Before a `thoughtSignature` that carries sealed thinking (gemini_via_chat's prefix).
const CARRIER_MARK: &str = "rwtc_";
/// Shortest run of token characters taken for a sealed value (a seal is 40+ characters).
const MIN_TOKEN: usize = 16;

/// The pair a Gemini direction names (`c` Chat Completions, `a` Messages, `r` Responses,
/// `g` Gemini), data flowing from its first letter to its last: a request goes client →
/// provider, an answer, stream or error provider → client (`g2g`: errors only). None: not a
/// Gemini direction (the older translators run those).
pub fn pair(kind: &str, direction: &str) -> Option<Pair> {
    let dialect = |c: u8| match c {
        b'c' => Format::OpenAi,
        b'a' => Format::Anthropic,
        b'r' => Format::Responses,
        _ => Format::Gemini,
    };
    let d = direction.as_bytes();
    if d.len() != 3 || d[1] != b'2' || !direction.contains('g') {
        return None;
    }
    // Gemini to Gemini passes through; only its errors are looked at.
    assert!(
        d[0] != d[2] || kind == "error",
        "{kind} {direction}: a passthrough"
    );
    let (from, to) = (dialect(d[0]), dialect(d[2]));
    let p = if kind == "request" {
        Pair::new(from, to)
    } else {
        Pair::new(to, from)
    };
    assert!(
        p.provider != Format::Responses,
        "{kind} {direction}: no provider speaks Responses"
    );
    Some(p)
}

/// The seal of a case: the fixed key, the case's provider, and the other providers its
/// `seals.json` names (so that a value sealed for one of them is recognised in an output).
pub struct Sealing {
    key: SealKey,
    providers: Vec<String>,
    seals: Value,
}

impl Sealing {
    /// None when the case turns sealing off (`options.seal: false`).
    pub fn of(case: &Case) -> Option<Sealing> {
        if case.spec.pointer("/options/seal") == Some(&json!(false)) {
            return None;
        }
        let seals = case
            .read("seals.json")
            .map_or(json!({}), |b| parse_json(&case.name, "seals.json", &b));
        let mut providers = vec![PROVIDER.to_owned()];
        for s in seals.as_object().into_iter().flatten().map(|(_, s)| s) {
            if let Some(p) = s["provider"].as_str() {
                if !providers.iter().any(|q| q == p) {
                    providers.push(p.to_owned());
                }
            }
        }
        Some(Sealing {
            key: SealKey::from_bytes(&[SEAL_BYTE; 32])
                .unwrap()
                .for_holder(Holder::Open),
            providers,
            seals,
        })
    }

    fn signature_seal(&self, provider: &str) -> GeminiSeal {
        GeminiSeal {
            key: self.key.clone(),
            provider: provider.to_owned(),
        }
    }

    fn thinking_seal(&self, provider: &str) -> ThinkingSeal {
        ThinkingSeal {
            key: self.key.clone(),
            provider: provider.to_owned(),
        }
    }

    /// A `seals.json` entry sealed now: `kind` `signature` (a thought signature, the text in
    /// `plain`) or `thinking` (thinking blocks, `plain` a JSON array); `provider` (default
    /// [`PROVIDER`]); `tamper: true` alters one character of the token.
    fn token(&self, name: &str, spec: &Value) -> String {
        let provider = spec["provider"].as_str().unwrap_or(PROVIDER);
        let token = match spec["kind"].as_str() {
            Some("signature") => {
                let plain = spec["plain"].as_str().expect("signature plain is text");
                self.signature_seal(provider).seal(plain.as_bytes())
            }
            Some("thinking") => {
                let plain = serde_json::to_vec(&spec["plain"]).unwrap();
                self.thinking_seal(provider).seal(&plain)
            }
            k => panic!("seal {name}: unknown kind {k:?}"),
        };
        let mut token = token.unwrap().into_bytes();
        if spec["tamper"] == json!(true) {
            let mid = token.len() / 2;
            token[mid] = if token[mid] == b'A' { b'B' } else { b'A' };
        }
        if spec["kind"] == "thinking" {
            // A carrier is base64 of the magic and the token (signatures are bytes).
            use base64::Engine as _;
            let mut bytes = CARRIER_MAGIC.to_vec();
            bytes.extend_from_slice(&token);
            return base64::engine::general_purpose::STANDARD.encode(bytes);
        }
        String::from_utf8(token).unwrap()
    }

    /// `bytes` with every `{{NAME}}` of `seals.json` replaced by a token sealed now (the same
    /// token wherever the name occurs).
    pub fn fill(&self, bytes: Vec<u8>) -> Vec<u8> {
        let mut text = String::from_utf8(bytes).unwrap();
        for (name, spec) in self.seals.as_object().into_iter().flatten() {
            // One seal per name: a call's id and its result's must be the same token.
            text = text.replace(&format!("{{{{{name}}}}}"), &self.token(name, spec));
        }
        text.into_bytes()
    }

    /// What a token after `mark` opens to, as `<provider:plain>` (`<does not open>`): the
    /// seal is checked, and the nonce, which differs every run, is gone.
    fn describe(&self, mark: &str, token: &str) -> String {
        for p in &self.providers {
            let plain = if mark == SIGNATURE_MARK {
                self.signature_seal(p).open(token)
            } else {
                self.thinking_seal(p).open(token)
            };
            if let Some(plain) = plain {
                return format!("<{p}:{}>", String::from_utf8_lossy(&plain));
            }
        }
        "<does not open>".to_owned()
    }

    /// `out` (JSON text, SSE or a JSON array of chunks) with the token after every
    /// `__rwts__` and `rwtc_` replaced by [`Sealing::describe`], escaped for a JSON string.
    pub fn normalise(&self, out: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(out);
        let mut result = String::with_capacity(text.len());
        let mut rest: &str = &text;
        loop {
            let next = [SIGNATURE_MARK, CARRIER_PREFIX]
                .iter()
                .filter_map(|m| rest.find(m).map(|at| (at, *m)))
                .min();
            let Some((at, mark)) = next else {
                result.push_str(rest);
                return result.into_bytes();
            };
            if mark == CARRIER_PREFIX {
                // A carrier is the whole base64 string: written as `rwtc_` and what it opens to.
                let len = rest[at..]
                    .bytes()
                    .take_while(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
                    })
                    .count();
                result.push_str(&rest[..at]);
                match carried_token(&rest[at..at + len]) {
                    Some(token) => {
                        let d =
                            serde_json::to_string(&self.describe(CARRIER_MARK, &token)).unwrap();
                        result.push_str(CARRIER_MARK);
                        result.push_str(&d[1..d.len() - 1]);
                    }
                    None => result.push_str(&rest[at..at + len]),
                }
                rest = &rest[at + len..];
                continue;
            }
            let start = at + mark.len();
            let len = rest[start..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                .count();
            result.push_str(&rest[..start]);
            if len >= MIN_TOKEN {
                let d =
                    serde_json::to_string(&self.describe(mark, &rest[start..start + len])).unwrap();
                result.push_str(&d[1..d.len() - 1]);
            } else {
                result.push_str(&rest[start..start + len]);
            }
            rest = &rest[start + len..];
        }
    }
}

/// The options a Gemini pair case runs with: the case's, the seal (unless turned off),
/// [`PROVIDER`], `path_stream` (a Gemini client's stream: its path says so) and
/// `gemini_call_ids`.
pub fn pair_options(case: &Case, sealing: Option<&Sealing>) -> Options {
    let mut o = options(&case.spec);
    o.seal = sealing.map(|s| s.key.clone());
    o.provider = PROVIDER.to_owned();
    let flag = |k: &str| case.spec.get("options").and_then(|o| o.get(k))?.as_bool();
    o.path_stream = flag("path_stream").unwrap_or(case.str("kind") == "stream");
    if let Some(ids) = flag("gemini_call_ids") {
        o.gemini_call_ids = ids;
    }
    o
}

/// The provider model of a case (`upstream_model`, else one of the provider's dialect).
pub fn model(case: &Case, pair: Pair) -> String {
    match case.str("upstream_model") {
        "" => match pair.provider {
            Format::Gemini => "gemini-3-flash-preview",
            Format::Anthropic => "claude-sonnet-4-5",
            _ => "gpt-4.1",
        }
        .to_owned(),
        m => m.to_owned(),
    }
}

/// The client request an answer case was asked by: `request.json`, else a one-line question
/// in the client's dialect (asking for a stream, with usage, in a stream case).
fn client_request(case: &Case, client: Format, sealing: Option<&Sealing>) -> Vec<u8> {
    if let Some(b) = case.read("request.json") {
        return sealing.map_or(b.clone(), |s| s.fill(b));
    }
    let stream = case.str("kind") == "stream";
    let mut r = match client {
        Format::OpenAi => json!({"model": "client-model",
            "messages": [{"role": "user", "content": "Hi"}]}),
        Format::Anthropic => json!({"model": "client-model", "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}]}),
        Format::Responses => json!({"model": "client-model", "input": "Hi"}),
        Format::Gemini => json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
    };
    if stream && client != Format::Gemini {
        r["stream"] = json!(true);
        if client == Format::OpenAi {
            r["stream_options"] = json!({"include_usage": true});
        }
    }
    serde_json::to_vec(&r).unwrap()
}

/// The meta an answer case's answer is translated against: its client request through the
/// pair (as the proxy does before it sends), dated [`CREATED`], the Responses id fixed,
/// `json_array` for a Gemini client streaming without `alt=sse`.
pub fn answer_meta(case: &Case, pair: Pair, sealing: Option<&Sealing>) -> RequestMeta {
    meta_for(
        case,
        pair,
        sealing,
        &client_request(case, pair.client, sealing),
    )
}

/// The meta of a Responses client streaming with reasoning summaries (the Responses
/// translator run over another client's stream case).
pub fn responses_meta(case: &Case, pair: Pair, sealing: Option<&Sealing>) -> RequestMeta {
    let body = json!({"model": "client-model", "input": "Hi", "stream": true,
        "reasoning": {"effort": "medium", "summary": "auto"}});
    meta_for(case, pair, sealing, &serde_json::to_vec(&body).unwrap())
}

fn meta_for(case: &Case, pair: Pair, sealing: Option<&Sealing>, body: &[u8]) -> RequestMeta {
    let opts = pair_options(case, sealing);
    let (_, mut meta) = pair
        .request(body, &model(case, pair), &opts)
        .unwrap_or_else(|e| {
            panic!(
                "{}: its client request does not translate: {e:?}",
                case.name
            )
        });
    meta.created = CREATED;
    if let Some(r) = meta.responses.as_deref_mut() {
        r.id = "resp_golden".into();
    }
    meta.gemini_json_array = case.spec.get("json_array") == Some(&json!(true));
    meta
}

/// The Gemini sides of a request's meta, for `expected_meta.json`.
pub fn meta_json(m: &RequestMeta, v: &mut Value) {
    if let Some(g) = &m.gemini {
        let gm = &g.meta;
        v["gemini"] = json!({
            "stream": gm.stream,
            "include_usage": gm.include_usage,
            "include_thoughts": gm.include_thoughts,
            "client_model": gm.client_model,
            "upstream_model": gm.upstream_model,
            "dropped": super::lossy(&gm.ledger),
            "seal_provider": g.seal.as_ref().map(|s| s.provider.as_str()),
        });
    }
    if let Some(c) = &m.gemini_client {
        v["gemini_client"] = json!({
            "include_thoughts": c.include_thoughts,
            "seal_provider": c.seal.as_ref().map(|s| s.provider.as_str()),
        });
    }
}

/// The chunks of a Gemini client's stream: SSE `data:` lines ended by CRLF CRLF (as
/// Google's), or one JSON array.
pub fn chunks(out: &[u8], json_array: bool) -> Result<Vec<Value>, String> {
    if json_array {
        return match serde_json::from_slice(out) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(v) => Err(format!("not a JSON array: {v}")),
            Err(e) => Err(format!("not JSON: {e}")),
        };
    }
    let text = std::str::from_utf8(out).map_err(|e| e.to_string())?;
    let body = text
        .strip_suffix("\r\n\r\n")
        .ok_or("does not end with a CRLF CRLF frame end")?;
    body.split("\r\n\r\n")
        .enumerate()
        .map(|(i, frame)| {
            let data = frame
                .strip_prefix("data: ")
                .filter(|d| !d.contains('\n'))
                .ok_or(format!("frame {i} is not one data line: {frame:?}"))?;
            serde_json::from_str(data).map_err(|e| format!("frame {i} is not JSON: {e}"))
        })
        .collect()
}

/// A Gemini client's stream as its SDKs read it: one or more chunks; each a
/// `GenerateContentResponse` with one candidate (role `model`, parts, index 0), a
/// `modelVersion` and a `responseId`, or Google's error object; the first chunk holding a
/// `finishReason` (with `usageMetadata`) or an error is the last.
pub fn check_stream(out: &[u8], json_array: bool) -> Result<(), String> {
    let chunks = chunks(out, json_array)?;
    if chunks.is_empty() {
        return Err("no chunk".into());
    }
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        if let Some(e) = c.get("error") {
            let ok = e["code"].is_u64() && e["message"].is_string() && e["status"].is_string();
            if !ok || !last || c.as_object().is_some_and(|o| o.len() != 1) {
                return Err(format!("chunk {i}: bad or early error: {c}"));
            }
            continue;
        }
        let cand = &c["candidates"];
        let ok = cand.as_array().is_some_and(|a| a.len() == 1)
            && cand[0]["content"]["role"] == "model"
            && cand[0]["content"]["parts"].is_array()
            && cand[0]["index"] == 0
            && c["modelVersion"].is_string()
            && c["responseId"].is_string();
        if !ok {
            return Err(format!("chunk {i}: not a GenerateContentResponse: {c}"));
        }
        let finish = cand[0].get("finishReason").is_some();
        if finish != last {
            return Err(format!(
                "chunk {i}: the finish is not last (or missing): {c}"
            ));
        }
        if finish && !c["usageMetadata"]["totalTokenCount"].is_u64() {
            return Err(format!("chunk {i}: the finish has no usage: {c}"));
        }
    }
    Ok(())
}

/// Does the last chunk of a Gemini client's stream say an error?
pub fn ends_in_error(out: &[u8], json_array: bool) -> bool {
    chunks(out, json_array)
        .ok()
        .and_then(|c| c.last().cloned())
        .is_some_and(|c| c.get("error").is_some())
}
