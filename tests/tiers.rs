//! Residency tiers through the real binary: every path that could leave a tier's
//! jurisdiction (fallback, load balancing, direct `provider/model` addressing, a key without
//! the tier, no target in the tier) is tried and refused with nothing sent upstream (the
//! mock's request log says so); the custody headers on all three dialects, streaming and
//! not, under the default prefix and `x-ni-`; `privacy_tier` never reaches a provider, also
//! on the native Responses passthrough (two recording providers standing in for deployments).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const KEY_ANY: &str = "sk-tier-any";
const KEY_CA: &str = "sk-tier-ca";
const KEY_US_ONLY: &str = "sk-tier-us-only";

/// The mock and a gateway with providers in Canada (`ca-oa`, `ca-an`, `ca-dead` on a closed
/// port), the US (`us-oa`, `us-an`) and nowhere known (`nowhere`); tiers `canada`, `us` and
/// `eu` (no provider in it); routes that mix jurisdictions; three keys.
fn setup_tiers(server_extra: &str) -> (Proc, Proc) {
    let m = mock(&[]);
    let dead = closed_port();
    let g = gateway_env(
        &format!(
            r#"[server]
workers = 1
jurisdiction = "CA"
{server_extra}

[[tier]]
name = "canada"
jurisdictions = ["CA"]

[[tier]]
name = "us"
jurisdictions = ["US"]

[[tier]]
name = "eu"
jurisdictions = ["DE", "FR"]

[[provider]]
name = "ca-oa"
kind = "openai"
base_url = "http://{m}/v1"
api_key_env = "RW_TEST_OPENAI_KEY"
region = "ca-central-1"
jurisdiction = "CA"
custody = "provider-managed"

[[provider]]
name = "ca-an"
kind = "anthropic"
base_url = "http://{m}"
region = "ca-central-1"
jurisdiction = "CA"
custody = "self-hosted"

[[provider]]
name = "ca-dead"
kind = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
region = "ca-west-1"
jurisdiction = "CA"

[[provider]]
name = "us-oa"
kind = "openai"
base_url = "http://{m}/v1"
region = "us-east-1"
jurisdiction = "US"

[[provider]]
name = "us-an"
kind = "anthropic"
base_url = "http://{m}"
jurisdiction = "US"

[[provider]]
name = "nowhere"
kind = "openai"
base_url = "http://{m}/v1"

[[route]]
model = "fallback"
targets = ["ca-oa/fb-ca", "us-oa/fb-us"]
backoff_base_ms = 5

[[route]]
model = "fallback-dead"
targets = ["ca-dead/fbd-ca", "nowhere/fbd-nowhere", "us-oa/fbd-us"]

[[route]]
model = "balanced"
strategy = "weighted"
targets = [{{ target = "us-oa/lb-us", weight = 5 }}, {{ target = "ca-oa/lb-ca", weight = 1 }}, {{ target = "nowhere/lb-nowhere", weight = 5 }}]

[[route]]
model = "sonnet"
aliases = ["claude-sonnet-4-5-20250929"]
targets = ["us-an/sonnet-us", "ca-an/sonnet-ca"]

[[route]]
model = "mixed"
targets = ["ca-oa/mixed-ca"]

[[route]]
model = "relabelled"
targets = [{{ target = "us-oa/relabelled-ca", jurisdiction = "CA", region = "ca-east-2" }}]

[[key]]
name = "any"
key_env = "RW_TIER_KEY_ANY"

[[key]]
name = "ca"
key_env = "RW_TIER_KEY_CA"
tiers = ["canada"]
default_tier = "canada"

[[key]]
name = "us-only"
key_env = "RW_TIER_KEY_US"
tiers = ["us"]
"#,
            m = m.addr
        ),
        &[
            ("RW_TEST_OPENAI_KEY", "sk-provider-openai"),
            ("RW_TIER_KEY_ANY", KEY_ANY),
            ("RW_TIER_KEY_CA", KEY_CA),
            ("RW_TIER_KEY_US", KEY_US_ONLY),
        ],
    );
    (m, g)
}

/// The upstream models the mock was asked for, in order.
fn models_seen(mock: &Proc) -> Vec<String> {
    mock_requests(mock)
        .iter()
        .map(|r| r["model"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The three dialects: path and body for `model`.
#[derive(Clone, Copy, Debug)]
enum Dialect {
    Chat,
    Messages,
    Responses,
}

impl Dialect {
    const ALL: [Dialect; 3] = [Dialect::Chat, Dialect::Messages, Dialect::Responses];

    fn path(self) -> &'static str {
        match self {
            Dialect::Chat => "/v1/chat/completions",
            Dialect::Messages => "/v1/messages",
            Dialect::Responses => "/v1/responses",
        }
    }

    fn body(self, model: &str, stream: bool) -> Value {
        match self {
            Dialect::Chat => json!({
                "model": model, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
            }),
            Dialect::Messages => json!({
                "model": model, "max_tokens": 32, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
            }),
            Dialect::Responses => json!({"model": model, "stream": stream, "input": "hi"}),
        }
    }
}

/// POST `body` in `dialect` with `key` and extra headers.
fn call(g: &Proc, dialect: Dialect, key: &str, headers: &[(&str, &str)], body: &Value) -> Response {
    let auth = format!("Bearer {key}");
    let mut all: Vec<(&str, &str)> = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    request(g.addr, &post(dialect.path(), &all, &body.to_string()))
}

/// A chat completions call for `model` with `key`, the tier in a header when given.
fn chat(g: &Proc, key: &str, model: &str, tier: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = tier.map(|t| ("x-privacy-tier", t)).into_iter().collect();
    call(
        g,
        Dialect::Chat,
        key,
        &headers,
        &Dialect::Chat.body(model, false),
    )
}

/// A 403 naming the tier, in the client's format.
fn assert_tier_refused(r: &Response, dialect: Dialect, tier: &str) {
    assert_eq!(r.status, 403, "{}", r.text());
    let v = r.json();
    let message = match dialect {
        Dialect::Messages => {
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "permission_error", "{v}");
            v["error"]["message"].as_str().unwrap().to_owned()
        }
        _ => {
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
            assert!(
                v["error"]["code"]
                    .as_str()
                    .unwrap()
                    .starts_with("privacy_tier_"),
                "{v}"
            );
            v["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    assert!(message.contains(&format!("`{tier}`")), "{message}");
}

#[test]
fn fallback_never_leaves_the_tier() {
    let (m, g) = setup_tiers("");
    set_faults(&m, &json!({"fb-ca": "status=503"}));
    // Without a tier, the US target serves when the Canadian one fails: the path exists.
    let r = chat(&g, KEY_ANY, "fallback", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("us-oa"));
    assert!(r.header("x-ringway-tier").is_none());
    clear_records(&m);

    // Under `canada`, the failed Canadian target is the last word: the US one is never tried.
    let r = chat(&g, KEY_ANY, "fallback", Some("canada"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-ringway-tier"), Some("canada"));
    assert_eq!(r.header("x-ringway-provider"), Some("ca-oa"));
    assert_eq!(r.header("x-ringway-jurisdiction"), Some("CA"));
    let seen = models_seen(&m);
    assert!(
        !seen.is_empty() && seen.iter().all(|s| s == "fb-ca"),
        "{seen:?}"
    );
    clear_records(&m);

    // A refused connection in the tier: the gateway's own 502, with the custody headers of
    // the target it tried; neither the unlocated nor the US target is asked.
    let r = chat(&g, KEY_ANY, "fallback-dead", Some("canada"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("ca-dead"));
    assert_eq!(r.header("x-ringway-region"), Some("ca-west-1"));
    assert_eq!(
        r.header("x-ringway-custody-path"),
        Some("ringway-CA -> ca-dead-CA")
    );
    assert!(models_seen(&m).is_empty(), "{:?}", models_seen(&m));
    // Without the tier the same route reaches the next target.
    let r = chat(&g, KEY_ANY, "fallback-dead", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-provider"), Some("nowhere"));
}

#[test]
fn load_balancing_stays_in_the_tier() {
    let (m, g) = setup_tiers("");
    const N: usize = 30;
    for _ in 0..N {
        let r = chat(&g, KEY_ANY, "balanced", Some("canada"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-ringway-provider"), Some("ca-oa"));
        assert_eq!(r.header("x-ringway-jurisdiction"), Some("CA"));
    }
    let seen = models_seen(&m);
    assert_eq!(seen.len(), N);
    assert!(seen.iter().all(|s| s == "lb-ca"), "{seen:?}");
    // Without the tier the draw does reach the heavier targets (weights 5:1:5 over 30 draws).
    clear_records(&m);
    for _ in 0..N {
        assert_eq!(chat(&g, KEY_ANY, "balanced", None).status, 200);
    }
    assert!(models_seen(&m).iter().any(|s| s != "lb-ca"));
}

#[test]
fn direct_addressing_and_empty_tiers_are_refused_with_nothing_sent() {
    let (m, g) = setup_tiers("");
    for dialect in Dialect::ALL {
        for (model, tier) in [
            ("us-oa/gpt-x", "canada"),
            ("@us-an/claude-x", "canada"),
            // A deployment a route target places in CA, addressed directly: judged where it
            // runs, not by its provider's default (US).
            ("us-oa/relabelled-ca", "us"),
            // No jurisdiction configured: never inside any tier.
            ("nowhere/gpt-x", "us"),
            // No provider at all in the tier.
            ("sonnet", "eu"),
            ("claude-sonnet-4-5-20250929", "eu"),
            ("mixed", "us"),
        ] {
            let r = call(
                &g,
                dialect,
                KEY_ANY,
                &[("x-privacy-tier", tier)],
                &dialect.body(model, false),
            );
            assert_tier_refused(&r, dialect, tier);
            assert_eq!(r.header("x-ringway-tier"), Some(tier));
            assert!(r.header("x-ringway-request-id").is_some());
        }
    }
    // Token counts send the conversation upstream too: held to the tier the same way.
    let body = json!({"model": "us-an/claude-x", "privacy_tier": "canada",
        "messages": [{"role": "user", "content": "hi"}]});
    let auth = format!("Bearer {KEY_ANY}");
    let r = request(
        g.addr,
        &post(
            "/v1/messages/count_tokens",
            &[("authorization", auth.as_str())],
            &body.to_string(),
        ),
    );
    assert_tier_refused(&r, Dialect::Messages, "canada");
    assert!(models_seen(&m).is_empty(), "{:?}", models_seen(&m));
    // In the tier, direct addressing works.
    let r = chat(&g, KEY_ANY, "ca-oa/gpt-direct", Some("canada"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-jurisdiction"), Some("CA"));
    // A target's own jurisdiction overrides its provider's.
    let r = chat(&g, KEY_ANY, "relabelled", Some("canada"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-region"), Some("ca-east-2"));
    assert_eq!(models_seen(&m), ["gpt-direct", "relabelled-ca"]);
}

#[test]
fn keys_tiers_and_defaults() {
    let (m, g) = setup_tiers("");
    // The key's default tier applies: the native id goes to the Canadian deployment, though
    // the US one is first in the route.
    let r = chat(&g, KEY_CA, "claude-sonnet-4-5-20250929", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-tier"), Some("canada"));
    assert_eq!(r.header("x-ringway-model"), Some("sonnet-ca"));
    // Without a tier the route's first target serves; with `us` the US deployment.
    let r = chat(&g, KEY_ANY, "claude-sonnet-4-5-20250929", None);
    assert_eq!(r.header("x-ringway-model"), Some("sonnet-us"));
    let r = chat(&g, KEY_ANY, "claude-sonnet-4-5-20250929", Some("us"));
    assert_eq!(r.header("x-ringway-model"), Some("sonnet-us"));
    assert_eq!(r.header("x-ringway-tier"), Some("us"));
    clear_records(&m);
    // A tier the key may not use: 403 naming it, in the header or the body.
    let r = chat(&g, KEY_CA, "sonnet", Some("us"));
    assert_tier_refused(&r, Dialect::Chat, "us");
    let mut body = Dialect::Messages.body("sonnet", true);
    body["privacy_tier"] = json!("us");
    let r = call(&g, Dialect::Messages, KEY_CA, &[], &body);
    assert_tier_refused(&r, Dialect::Messages, "us");
    // A key held to tiers that names none, with no default: 403 naming the choice.
    let r = chat(&g, KEY_US_ONLY, "sonnet", None);
    assert_tier_refused(&r, Dialect::Chat, "us");
    let r = chat(&g, KEY_US_ONLY, "sonnet", Some("canada"));
    assert_tier_refused(&r, Dialect::Chat, "canada");
    assert!(models_seen(&m).is_empty(), "{:?}", models_seen(&m));
    let r = chat(&g, KEY_US_ONLY, "sonnet", Some("us"));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn unknown_and_malformed_tiers_are_400s() {
    let (m, g) = setup_tiers("");
    let r = chat(&g, KEY_ANY, "sonnet", Some("mars"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("unknown privacy tier `mars`"),
        "{}",
        r.text()
    );
    let mut body = Dialect::Responses.body("sonnet", false);
    body["privacy_tier"] = json!("mars");
    let r = call(&g, Dialect::Responses, KEY_ANY, &[], &body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "privacy_tier");
    for bad in [json!(7), json!(null), json!("a b"), json!("x".repeat(300))] {
        let mut body = Dialect::Chat.body("sonnet", false);
        body["privacy_tier"] = bad.clone();
        let r = call(&g, Dialect::Chat, KEY_ANY, &[], &body);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(!r.text().contains("a b"), "not echoed: {}", r.text());
    }
    let r = chat(&g, KEY_ANY, "sonnet", Some("can ada"));
    assert_eq!(r.status, 400, "{}", r.text());
    // A valid body value loses to the header, but an unknown one is never silently dropped.
    let with_us_header = |body: &Value| {
        call(
            &g,
            Dialect::Chat,
            KEY_ANY,
            &[("x-privacy-tier", "us")],
            body,
        )
    };
    let mut body = Dialect::Chat.body("sonnet", false);
    body["privacy_tier"] = json!("mars");
    let r = with_us_header(&body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(models_seen(&m).is_empty(), "{:?}", models_seen(&m));
    // The header wins over the body.
    body["privacy_tier"] = json!("canada");
    let r = with_us_header(&body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-tier"), Some("us"));
    assert_eq!(r.header("x-ringway-model"), Some("sonnet-us"));
}

/// Every dialect, streaming and not, to a same-format and a translated provider: the custody
/// headers are all there, and neither `privacy_tier` nor `x-privacy-tier` reaches the mock.
fn custody_headers_on_every_dialect(prefix: &str, server_extra: &str) {
    let (m, g) = setup_tiers(server_extra);
    for dialect in Dialect::ALL {
        for stream in [false, true] {
            for (model, provider, region, custody, credential) in [
                (
                    "ca-oa/up-openai",
                    "ca-oa",
                    "ca-central-1",
                    "provider-managed",
                    "gateway",
                ),
                (
                    "ca-an/up-anthropic",
                    "ca-an",
                    "ca-central-1",
                    "self-hosted",
                    "none",
                ),
            ] {
                let mut body = dialect.body(model, stream);
                body["privacy_tier"] = json!("canada");
                let r = call(&g, dialect, KEY_ANY, &[("x-privacy-tier", "canada")], &body);
                let what = format!("{dialect:?} stream={stream} {model}");
                assert_eq!(r.status, 200, "{what}: {}", r.text());
                let h = |name: &str| r.header(&format!("{prefix}{name}")).map(str::to_owned);
                assert_eq!(h("tier").as_deref(), Some("canada"), "{what}");
                assert_eq!(h("provider").as_deref(), Some(provider), "{what}");
                assert_eq!(h("region").as_deref(), Some(region), "{what}");
                assert_eq!(h("jurisdiction").as_deref(), Some("CA"), "{what}");
                assert_eq!(h("custody").as_deref(), Some(custody), "{what}");
                assert_eq!(
                    h("custody-path"),
                    Some(format!("ringway-CA -> {provider}-CA")),
                    "{what}"
                );
                assert_eq!(
                    h("credential-source").as_deref(),
                    Some(credential),
                    "{what}"
                );
                assert_eq!(
                    h("model").as_deref(),
                    model.split_once('/').map(|(_, m)| m),
                    "{what}"
                );
                assert!(h("request-id").is_some(), "{what}");
                if stream {
                    assert!(r.text().contains("data:"), "{what}: {}", r.text());
                }
                if prefix != "x-ringway-" {
                    assert!(
                        r.headers.iter().all(|(n, _)| !n.starts_with("x-ringway-")),
                        "{what}: {:?}",
                        r.headers
                    );
                }
            }
        }
    }
    let seen = mock_requests(&m);
    assert_eq!(seen.len(), 12);
    for s in &seen {
        let body = s["body"].as_str().unwrap();
        assert!(!body.contains("privacy_tier"), "{body}");
        let headers = s["headers"].as_object().unwrap();
        assert!(headers.keys().all(|k| k != "x-privacy-tier"), "{headers:?}");
    }
}

#[test]
fn custody_headers_on_every_dialect_default_prefix() {
    custody_headers_on_every_dialect("x-ringway-", "");
}

#[test]
fn custody_headers_on_every_dialect_under_another_prefix() {
    custody_headers_on_every_dialect("x-ni-", "header_prefix = \"x-ni-\"");
}

const CHECKED: &str = r#"[server]
jurisdiction = "CA"
header_prefix = "x-ni-"

[[tier]]
name = "canada_managed"
jurisdictions = ["CA"]

[[provider]]
name = "bedrock-ca"
kind = "anthropic"
base_url = "http://127.0.0.1:1"
region = "ca-central-1"
jurisdiction = "CA"
custody = "provider-managed"

[[route]]
model = "sonnet"
aliases = ["claude-sonnet-4-5-20250929"]
targets = ["bedrock-ca/claude"]

[[key]]
name = "k"
sha256 = "f2d4b279b82ad92867af5878fe7482caebdd7b75499868d0362a6e63ff51f046"
tiers = ["canada_managed"]
default_tier = "canada_managed"
"#;

#[test]
fn check_shows_tiers_and_refuses_bad_tier_config_with_file_and_line() {
    let (ok, out, err, _) = check(CHECKED);
    assert!(ok, "{out}{err}");
    assert!(out.contains("canada_managed   in CA"), "{out}");
    assert!(out.contains("bedrock-ca/claude [CA]"), "{out}");
    assert!(out.contains("claude-sonnet-4-5-20250929"), "{out}");
    for (from, to, line_and_path, reason) in [
        (
            "jurisdiction = \"CA\"\nheader",
            "jurisdiction = \"ca\"\nheader",
            ":2: server.jurisdiction: ",
            "ISO 3166-1 alpha-2",
        ),
        (
            "header_prefix = \"x-ni-\"",
            "header_prefix = \"x-ni-\\r\\nx-evil: 1\"",
            ":3: server.header_prefix: ",
            "end with `-`",
        ),
        (
            "name = \"canada_managed\"",
            "name = \"canada managed\"",
            ":6: tier[0].name: ",
            "A-Z a-z 0-9",
        ),
        (
            "jurisdictions = [\"CA\"]",
            "jurisdictions = [\"CAN\"]",
            ":7: tier[0].jurisdictions[0]: ",
            "ISO 3166-1 alpha-2",
        ),
        (
            "tier]]\nname = \"canada_managed\"\njurisdictions = [\"CA\"]",
            "tier]]\nname = \"canada_managed\"\njurisdictions = [\"CA\"]\nzone = 1",
            ":8: tier[0].zone: ",
            "unknown key",
        ),
        (
            "region = \"ca-central-1\"",
            "region = \"ca-central-1\\nX: y\"",
            ":13: provider[0].region: ",
            "A-Z a-z 0-9",
        ),
        (
            "custody = \"provider-managed\"",
            "custody = \"provider managed\"",
            ":15: provider[0].custody: ",
            "A-Z a-z 0-9",
        ),
        (
            "tiers = [\"canada_managed\"]",
            "tiers = [\"canada\"]",
            ":25: key[0].tiers[0]: ",
            "unknown tier \"canada\"",
        ),
        (
            "aliases = [\"claude-sonnet-4-5-20250929\"]",
            "aliases = [\"sonnet\"]",
            ":19: route[0].aliases[0]: ",
            "already names a route",
        ),
    ] {
        let toml = CHECKED.replacen(from, to, 1);
        assert_ne!(toml, CHECKED, "{from}");
        check_refuses(&toml, line_and_path, reason);
    }
}

#[test]
fn aliases_are_listed_and_looked_up_under_their_own_name() {
    let (_m, g) = setup_tiers("");
    let auth = format!("Bearer {KEY_ANY}");
    let r = request(
        g.addr,
        &get("/v1/models", &[("authorization", auth.as_str())]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let at = |id: &str| ids.iter().position(|i| i == id).unwrap();
    assert_eq!(
        at("claude-sonnet-4-5-20250929"),
        at("sonnet") + 1,
        "{ids:?}"
    );
    let r = request(
        g.addr,
        &get(
            "/v1/models/claude-sonnet-4-5-20250929",
            &[("authorization", auth.as_str())],
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], "claude-sonnet-4-5-20250929");
}

/// A provider with native Responses, on its own port, standing in for one deployment: it
/// records every request it gets (head and body, as sent) and answers a Responses request with
/// `answer_json`, or with `answer_events` as a chunked event stream when the body asks to
/// stream. A connection thread ends when its client closes or after `READ_TIMEOUT` idle.
struct NativeUpstream {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl NativeUpstream {
    fn start(answer_json: String, answer_events: String) -> NativeUpstream {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let json = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer_json}",
            answer_json.len()
        );
        let events = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{answer_events}\r\n0\r\n\r\n",
            answer_events.len()
        );
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let (log, json, events) = (log.clone(), json.clone(), events.clone());
                std::thread::spawn(move || Self::serve(s, &log, &json, &events));
            }
        });
        NativeUpstream { addr, seen }
    }

    /// One connection: each request (Content-Length framed) recorded, then answered.
    fn serve(
        mut s: std::net::TcpStream,
        log: &std::sync::Mutex<Vec<String>>,
        json: &str,
        events: &str,
    ) {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            let end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| {
                let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                i + 4 + len
            });
            let Some(end) = end.filter(|&e| buf.len() >= e) else {
                match s.read(&mut tmp) {
                    Ok(n) if n > 0 => buf.extend_from_slice(&tmp[..n]),
                    _ => return,
                }
                continue;
            };
            let req = String::from_utf8(buf.drain(..end).collect()).unwrap();
            let answer = if req.contains(r#""stream":true"#) {
                events
            } else {
                json
            };
            log.lock().unwrap().push(req);
            if s.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// The requests received so far, oldest first.
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn native_responses_passthrough_stays_in_the_tier() {
    // Each deployment answers with its own name, so the client can tell which one served.
    let answers = |who: &str| {
        let json = format!(
            r#"{{"id":"resp_{who}","object":"response","status":"completed","model":"up-{who}","output":[{{"type":"message","id":"msg_{who}","role":"assistant","status":"completed","content":[{{"type":"output_text","text":"served in {who}","annotations":[]}}]}}],"usage":{{"input_tokens":3,"output_tokens":3,"total_tokens":6}}}}"#
        );
        let events = format!(
            "event: response.created\ndata: {{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{{\"id\":\"resp_{who}\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}}}\n\n\
             event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_{who}\",\"output_index\":0,\"content_index\":0,\"delta\":\"served in {who}\"}}\n\n\
             event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{{\"id\":\"resp_{who}\",\"object\":\"response\",\"status\":\"completed\",\"output\":[]}}}}\n\n"
        );
        (json, events)
    };
    let (ca_json, ca_events) = answers("ca");
    let (us_json, us_events) = answers("us");
    let ca = NativeUpstream::start(ca_json.clone(), ca_events.clone());
    let us = NativeUpstream::start(us_json.clone(), us_events);
    // The US deployment is first in the route: only the tier keeps a request away from it.
    let g = gateway_env(
        &format!(
            r#"[server]
workers = 1
jurisdiction = "CA"

[[tier]]
name = "canada"
jurisdictions = ["CA"]

[[tier]]
name = "eu"
jurisdictions = ["DE", "FR"]

# Server-side state passes to a native provider as it came.
[responses.store]
enabled = false

[[provider]]
name = "us-native"
kind = "openai"
base_url = "http://{us}/v1"
responses = "native"
region = "us-east-1"
jurisdiction = "US"

[[provider]]
name = "ca-native"
kind = "openai"
base_url = "http://{ca}/v1"
api_key_env = "RW_TEST_OPENAI_KEY"
responses = "native"
region = "ca-central-1"
jurisdiction = "CA"
custody = "provider-managed"

[[route]]
model = "native"
targets = ["us-native/up-us", "ca-native/up-ca"]

[[key]]
name = "any"
key_env = "RW_TIER_KEY_ANY"
"#,
            us = us.addr,
            ca = ca.addr
        ),
        &[
            ("RW_TEST_OPENAI_KEY", "sk-provider-openai"),
            ("RW_TIER_KEY_ANY", KEY_ANY),
        ],
    );
    // Server-side state parameters: only a native provider serves them (a translated route
    // answers a 400), so a 200 shows the request took the native path.
    let body = |model: &str, tier: bool, stream: bool| {
        let tier = if tier {
            r#""privacy_tier":"canada","#
        } else {
            ""
        };
        format!(
            r#"{{"model":"{model}",{tier}"stream":{stream},"previous_response_id":"resp_0","store":true,"input":"hi"}}"#
        )
    };
    let send = |body: &str, headers: &[(&str, &str)]| {
        let auth = format!("Bearer {KEY_ANY}");
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        request(g.addr, &post("/v1/responses", &all, body))
    };

    // No tier: the route's first target, in the US, serves.
    let r = send(&body("native", false, false), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), us_json);
    assert_eq!(r.header("x-ringway-provider"), Some("us-native"));
    assert_eq!(us.seen().len(), 1);
    assert!(ca.seen().is_empty(), "{:?}", ca.seen());

    // Under `canada` (in the body, or in the header too): only the Canadian deployment, with
    // the body as the client sent it but for the model and without `privacy_tier`, and the
    // answer as the provider sent it, under the custody headers.
    let mut sent_in_tier = 0;
    for stream in [false, true] {
        for header in [false, true] {
            let what = format!("stream={stream} header={header}");
            let headers: &[(&str, &str)] = if header {
                &[("x-privacy-tier", "canada")]
            } else {
                &[]
            };
            let r = send(&body("native", true, stream), headers);
            assert_eq!(r.status, 200, "{what}: {}", r.text());
            assert_eq!(
                r.text(),
                *if stream { &ca_events } else { &ca_json },
                "{what}"
            );
            let h = |name: &str| r.header(&format!("x-ringway-{name}"));
            assert_eq!(h("tier"), Some("canada"), "{what}");
            assert_eq!(h("provider"), Some("ca-native"), "{what}");
            assert_eq!(h("model"), Some("up-ca"), "{what}");
            assert_eq!(h("region"), Some("ca-central-1"), "{what}");
            assert_eq!(h("jurisdiction"), Some("CA"), "{what}");
            assert_eq!(h("custody"), Some("provider-managed"), "{what}");
            assert_eq!(
                h("custody-path"),
                Some("ringway-CA -> ca-native-CA"),
                "{what}"
            );
            assert_eq!(h("credential-source"), Some("gateway"), "{what}");
            assert!(h("request-id").is_some(), "{what}");

            // One send each: the request was not also tried anywhere else first.
            let mut seen = ca.seen();
            assert_eq!(seen.len(), sent_in_tier + 1, "{what}: {seen:?}");
            sent_in_tier += 1;
            let sent = seen.pop().unwrap();
            let (head, sent_body) = sent.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with("POST /v1/responses HTTP/1.1\r\n"),
                "{what}: {head}"
            );
            let head = head.to_lowercase();
            assert!(
                head.contains("\r\nauthorization: bearer sk-provider-openai\r\n"),
                "{what}: {head}"
            );
            assert!(!head.contains("x-privacy-tier"), "{what}: {head}");
            assert_eq!(sent_body, body("up-ca", false, stream), "{what}");
        }
    }
    assert_eq!(
        us.seen().len(),
        1,
        "the US deployment was asked under `canada`"
    );

    // A tier with no native deployment of the model in it, or a deployment outside the tier
    // addressed directly: a 403 in the Responses (OpenAI) error shape, nothing sent upstream.
    for stream in [false, true] {
        for (model, tier) in [("native", "eu"), ("us-native/up-us", "canada")] {
            let what = format!("{model} under {tier}, stream={stream}");
            let r = send(&body(model, false, stream), &[("x-privacy-tier", tier)]);
            assert_tier_refused(&r, Dialect::Responses, tier);
            assert_eq!(
                r.json()["error"]["code"],
                "privacy_tier_unavailable",
                "{what}"
            );
            assert_eq!(r.header("x-ringway-tier"), Some(tier), "{what}");
            assert!(r.header("x-ringway-request-id").is_some(), "{what}");
        }
    }
    assert_eq!(ca.seen().len(), 4, "{:?}", ca.seen());
    assert_eq!(us.seen().len(), 1, "{:?}", us.seen());
}
