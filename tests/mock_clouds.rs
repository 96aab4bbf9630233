//! The mock provider's cloud sides over real sockets: Bedrock behind SigV4 (requests signed here
//! with AWS's own signer), its event-stream frames, exceptions and throttling, CountTokens;
//! Google's token endpoint (JWTs signed here with a key openssl makes), the metadata server,
//! the AWS container credentials endpoint, and Vertex's rawPredict / streamRawPredict.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::Message;
use base64::Engine;
use common::*;
use serde_json::{json, Value};

const AKID: &str = "AKIDRINGWAYMOCK";
const SECRET: &str = "ringway-mock-secret";
const HOST: &str = "bedrock-runtime.ca-central-1.amazonaws.com";
const MODEL_PATH: &str = "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0";

fn bedrock_body(prompt: &str) -> String {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string()
}

/// A POST signed with SigV4 (service `bedrock`) at `time`, as an SDK sends it.
fn signed_post(
    path: &str,
    body: &str,
    akid: &str,
    secret: &str,
    token: Option<&str>,
    time: SystemTime,
) -> Vec<u8> {
    let credentials =
        aws_credential_types::Credentials::new(akid, secret, token.map(str::to_owned), None, "t");
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("ca-central-1")
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("host", HOST), ("content-type", "application/json")];
    let req = SignableRequest::new(
        "POST",
        format!("https://{HOST}{path}"),
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let mut raw = format!("POST {path} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    for (n, v) in instructions.headers() {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

fn good(path: &str, body: &str) -> Vec<u8> {
    signed_post(path, body, AKID, SECRET, None, SystemTime::now())
}

fn bearer(path: &str, body: &str, key: &str) -> Vec<u8> {
    post(path, &[("authorization", &format!("Bearer {key}"))], body)
}

fn aws_error(r: &Response) -> (String, String) {
    let kind = r.header("x-amzn-ErrorType").expect("x-amzn-ErrorType");
    assert!(
        kind.ends_with(":http://internal.amazon.com/coral/com.amazon.coral.service/"),
        "{kind}"
    );
    let kind = kind.split(':').next().unwrap().to_owned();
    (kind, r.json()["message"].as_str().unwrap().to_owned())
}

fn decode_frames(body: &[u8]) -> Result<Vec<Message>, String> {
    let mut buf = bytes::Bytes::copy_from_slice(body);
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(read_message_from(&mut buf).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// The Anthropic events the `chunk` frames carry.
fn chunk_events(frames: &[Message]) -> Vec<Value> {
    frames
        .iter()
        .filter(|m| header(m, ":event-type") == Some("chunk"))
        .map(|m| {
            let payload: Value = serde_json::from_slice(m.payload()).unwrap();
            assert!(payload["p"].as_str().is_some_and(|p| !p.is_empty()));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload["bytes"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
        .collect()
}

#[test]
fn bedrock_verifies_sigv4_like_aws() {
    let m = mock(&[]);
    let path = format!("{MODEL_PATH}/invoke");
    let body = bedrock_body("hello there");

    let r = request(m.addr, &good(&path, &body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    assert!(r.header("x-amzn-requestid").is_some());
    let input: u64 = r
        .header("x-amzn-bedrock-input-token-count")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(input, r.json()["usage"]["input_tokens"].as_u64().unwrap());
    assert!(r.header("x-amzn-bedrock-output-token-count").is_some());
    assert!(r.header("x-amzn-bedrock-invocation-latency").is_some());
    let rec = mock_requests(&m);
    assert_eq!(
        rec[0]["model"],
        "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    );
    assert_eq!(rec[0]["path"], path.as_str());

    // A session token is signed too.
    let r = request(
        m.addr,
        &signed_post(&path, &body, AKID, SECRET, Some("tok"), SystemTime::now()),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // The Python SDK keeps `:` literal; signed as sent, that verifies too.
    let literal = "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke";
    let r = request(m.addr, &good(literal, &body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock_requests(&m).last().unwrap()["model"],
        "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    );

    // ARNs travel percent-encoded and are signed as sent.
    let arn_path = "/model/arn%3Aaws%3Abedrock%3Aca-central-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/invoke";
    let r = request(m.addr, &good(arn_path, &body));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock_requests(&m).last().unwrap()["model"],
        "arn:aws:bedrock:ca-central-1:123456789012:application-inference-profile/abc123"
    );

    let r = request(
        m.addr,
        &signed_post(&path, &body, AKID, "wrong-secret", None, SystemTime::now()),
    );
    assert_eq!(r.status, 403);
    let (kind, message) = aws_error(&r);
    assert_eq!(kind, "InvalidSignatureException");
    assert!(
        message.starts_with(
            "The request signature we calculated does not match the signature you provided."
        ),
        "{message}"
    );

    // The body changed after signing: the signature no longer matches.
    let mut tampered = good(&path, &body);
    let at = tampered.len() - 3;
    tampered[at] = b'X';
    let r = request(m.addr, &tampered);
    assert_eq!(aws_error(&r).0, "InvalidSignatureException");

    let old = SystemTime::now() - Duration::from_secs(600);
    let r = request(m.addr, &signed_post(&path, &body, AKID, SECRET, None, old));
    assert_eq!(r.status, 403);
    let (kind, message) = aws_error(&r);
    assert_eq!(kind, "InvalidSignatureException");
    assert!(
        message.starts_with("Signature expired: ") && message.ends_with(" - 5 min.)"),
        "{message}"
    );
    assert!(message.contains(" is now earlier than "), "{message}");

    let r = request(
        m.addr,
        &signed_post(
            &path,
            &body,
            AKID,
            SECRET,
            Some("expired-session"),
            SystemTime::now(),
        ),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        aws_error(&r),
        (
            "ExpiredTokenException".into(),
            "The security token included in the request is expired".into()
        )
    );

    let r = request(
        m.addr,
        &signed_post(
            &path,
            &body,
            "AKIDSOMEONEELSE",
            SECRET,
            None,
            SystemTime::now(),
        ),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        aws_error(&r),
        (
            "UnrecognizedClientException".into(),
            "The security token included in the request is invalid.".into()
        )
    );

    let r = request(m.addr, &post(&path, &[], &body));
    assert_eq!(r.status, 403);
    assert_eq!(aws_error(&r).1, "Missing Authentication Token");

    // Bedrock's Messages-API path is the Anthropic one under /anthropic.
    let r = request(
        m.addr,
        &post(
            "/anthropic/v1/messages",
            &[],
            &anthropic_body("m", "hi", false),
        ),
    );
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (200, Some("message"))
    );

    // Bedrock API keys.
    assert_eq!(
        request(m.addr, &bearer(&path, &body, "ABSKbWFkZS11cA==")).status,
        200
    );
    assert_eq!(
        aws_error(&request(m.addr, &bearer(&path, &body, "sk-not-bedrock"))).0,
        "UnrecognizedClientException"
    );
}

#[test]
fn bedrock_body_rules_and_error_shapes() {
    let m = mock(&[]);
    let path = format!("{MODEL_PATH}/invoke");
    let send = |body: &Value| request(m.addr, &bearer(&path, &body.to_string(), "ABSKkey"));
    let base = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]});

    for key in ["model", "stream"] {
        let mut b = base.clone();
        b[key] = json!("x");
        let r = send(&b);
        assert_eq!(r.status, 400);
        assert_eq!(
            aws_error(&r),
            ("ValidationException".into(), format!("Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again."))
        );
    }
    let mut b = base.clone();
    b["anthropic_beta"] = json!(["context-1m-2025-08-07", "claude-code-20250219"]);
    let r = send(&b);
    assert_eq!(
        (r.status, aws_error(&r)),
        (
            400,
            ("ValidationException".into(), "invalid beta flag".into())
        )
    );
    b["anthropic_beta"] = json!(["context-1m-2025-08-07"]);
    assert_eq!(send(&b).status, 200);
    let mut b = base.clone();
    b.as_object_mut().unwrap().remove("anthropic_version");
    assert_eq!(aws_error(&send(&b)).0, "ValidationException");

    // Script errors and the fault table take AWS shapes.
    let mut b = base.clone();
    b["messages"][0]["content"] = json!("hi mock:throttle");
    let r = send(&b);
    assert_eq!(r.status, 429);
    assert_eq!(
        aws_error(&r),
        (
            "ThrottlingException".into(),
            "Too many requests, please wait before trying again.".into()
        )
    );
    b["messages"][0]["content"] = json!("hi mock:status=529");
    let r = send(&b);
    assert_eq!(
        (r.status, aws_error(&r).0.as_str()),
        (503, "ServiceUnavailableException")
    );
    b["messages"][0]["content"] = json!("hi mock:status=500");
    assert_eq!(aws_error(&send(&b)).0, "InternalServerException");
    set_faults(
        &m,
        &json!({"us.anthropic.claude-haiku-4-5-20251001-v1:0": "status=429"}),
    );
    let r = send(&base);
    assert_eq!(
        (r.status, aws_error(&r).0.as_str()),
        (429, "ThrottlingException")
    );
    let r = request(
        m.addr,
        &bearer(
            &format!("{MODEL_PATH}/invoke-with-response-stream"),
            &base.to_string(),
            "ABSKkey",
        ),
    );
    assert_eq!(
        (r.status, aws_error(&r).0.as_str()),
        (429, "ThrottlingException"),
        "before any stream"
    );
}

#[test]
fn bedrock_streams_event_stream_frames() {
    let m = mock(&[]);
    let path = format!("{MODEL_PATH}/invoke-with-response-stream");
    let r = request(m.addr, &good(&path, &bedrock_body("tell me mock:tokens=5")));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let frames = decode_frames(&r.body).unwrap();
    for f in &frames {
        let names: Vec<&str> = f.headers().iter().map(|h| h.name().as_str()).collect();
        assert_eq!(names, [":event-type", ":content-type", ":message-type"]);
        assert_eq!(header(f, ":message-type"), Some("event"));
    }
    let events = chunk_events(&frames);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(types.last(), Some(&"message_stop"));
    let text: String = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "w1 w2 w3 w4 w5");
    let metrics = &events.last().unwrap()["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["outputTokenCount"], 5);
    assert!(metrics["inputTokenCount"].as_u64().unwrap() > 0);
    // Padding varies in length.
    let pads: std::collections::BTreeSet<usize> = frames
        .iter()
        .map(|f| {
            serde_json::from_slice::<Value>(f.payload()).unwrap()["p"]
                .as_str()
                .unwrap()
                .len()
        })
        .collect();
    assert!(pads.len() > 1);

    // mock:split=5: every write is at most 5 bytes, so frames straddle reads.
    let mut c = Client::connect(m.addr);
    c.send_raw(&good(&path, &bedrock_body("hi mock:split=5")));
    let (status, _) = c.read_head().unwrap();
    assert_eq!(status, 200);
    let mut body = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = c.read_chunk() {
        assert!(chunk.len() <= 5, "{}", chunk.len());
        chunks += 1;
        body.extend(chunk);
    }
    let frames = decode_frames(&body).unwrap();
    assert!(
        chunks > frames.len() * 10,
        "{chunks} pieces for {} frames",
        frames.len()
    );
    assert_eq!(
        chunk_events(&frames).last().unwrap()["type"],
        "message_stop"
    );
}

#[test]
fn bedrock_stream_exceptions_and_broken_frames() {
    let m = mock(&[]);
    let path = format!("{MODEL_PATH}/invoke-with-response-stream");
    let send = |prompt: &str| request(m.addr, &bearer(&path, &bedrock_body(prompt), "ABSKkey"));

    let r = send("go mock:bedrock_exception=throttlingException");
    assert_eq!(r.status, 200);
    let frames = decode_frames(&r.body).unwrap();
    let last = frames.last().unwrap();
    assert_eq!(header(last, ":message-type"), Some("exception"));
    assert_eq!(header(last, ":exception-type"), Some("throttlingException"));
    let payload: Value = serde_json::from_slice(last.payload()).unwrap();
    assert_eq!(
        payload["message"],
        "Too many requests, please wait before trying again."
    );
    let events = chunk_events(&frames);
    let deltas = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .count();
    assert_eq!(deltas, 3, "a few tokens first");
    assert!(events.iter().all(|e| e["type"] != "message_stop"));

    let r = send("go mock:bedrock_exception");
    let last = decode_frames(&r.body).unwrap().pop().unwrap();
    assert_eq!(
        header(&last, ":exception-type"),
        Some("modelStreamErrorException")
    );
    let payload: Value = serde_json::from_slice(last.payload()).unwrap();
    assert_eq!(payload["originalStatusCode"], 529);
    assert!(payload["originalMessage"].is_string());

    let r = send("go mock:bad_crc");
    assert_eq!(r.status, 200);
    let err = decode_frames(&r.body).unwrap_err();
    assert!(
        err.to_lowercase().contains("crc") || err.to_lowercase().contains("checksum"),
        "{err}"
    );

    let r = send("go mock:huge_frame");
    assert_eq!(r.status, 200);
    let first_len = u32::from_be_bytes(r.body[..4].try_into().unwrap()) as usize;
    let next = &r.body[first_len..];
    assert_eq!(u32::from_be_bytes(next[..4].try_into().unwrap()), 64 << 20);
    assert!(next.len() < 1024, "the claimed body never comes");
    assert!(decode_frames(&r.body).is_err());
}

#[test]
fn bedrock_count_tokens() {
    let m = mock(&[]);
    let inner = bedrock_body("count me");
    let wrapped = json!({"input": {"invokeModel": {"body": base64::engine::general_purpose::STANDARD.encode(&inner)}}}).to_string();
    let r = request(
        m.addr,
        &good(
            "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens",
            &wrapped,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"inputTokens": inner.len().div_ceil(4)}));
    for geo in ["us.", "global.", "eu.", "ca.", "apac.", "jp.", "au."] {
        let path = format!("/model/{geo}anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens");
        let r = request(m.addr, &good(&path, &wrapped));
        assert_eq!(r.status, 400);
        assert_eq!(
            aws_error(&r),
            (
                "ValidationException".into(),
                "The provided model doesn't support counting tokens.".into()
            )
        );
    }
}

// ---- Google ----

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh RSA key (PKCS#8 PEM) from openssl, which tests/setup.sh installs.
fn openssl_key() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl is required (tests/setup.sh installs it)");
    assert!(out.status.success(), "openssl genpkey failed");
    String::from_utf8(out.stdout).unwrap()
}

struct Account {
    file: PathBuf,
    email: String,
    pem: String,
}

fn service_account(pem: &str) -> Account {
    let email = "ringway-test@mock-project.iam.gserviceaccount.com".to_owned();
    let file = temp_path("sa.json");
    let sa = json!({"type": "service_account", "project_id": "mock-project",
        "private_key_id": "k1", "private_key": pem, "client_email": email,
        "token_uri": "http://127.0.0.1:0/token"});
    std::fs::write(&file, sa.to_string()).unwrap();
    Account {
        file,
        email,
        pem: pem.to_owned(),
    }
}

fn jwt(pem: &str, claims: &Value) -> String {
    let key = rustls_pemfile::private_key(&mut pem.as_bytes())
        .unwrap()
        .unwrap();
    let rustls::pki_types::PrivateKeyDer::Pkcs8(der) = key else {
        panic!("not PKCS#8")
    };
    let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let signed = format!(
        "{}.{}",
        b64url(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signed}.{}", b64url(&sig))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(email: &str, addr: SocketAddr, iat: i64, exp: i64) -> Value {
    json!({"iss": email, "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": format!("http://{addr}/token"), "iat": iat, "exp": exp})
}

fn token_request(addr: SocketAddr, form: &str) -> Response {
    let raw = format!(
        "POST /token HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        form.len()
    );
    request(addr, raw.as_bytes())
}

fn exchange(addr: SocketAddr, assertion: &str) -> Response {
    token_request(
        addr,
        &format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"),
    )
}

fn mock_with(account: &Path, extra: &[&str]) -> Proc {
    let mut flags = vec!["--google-service-account", account.to_str().unwrap()];
    flags.extend_from_slice(extra);
    mock(&flags)
}

#[test]
fn google_token_endpoint_verifies_jwts() {
    let a = service_account(&openssl_key());
    let m = mock_with(&a.file, &["--google-token-ttl", "1234"]);
    let now = now_secs();

    let r = exchange(
        m.addr,
        &jwt(&a.pem, &claims(&a.email, m.addr, now, now + 3600)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"access_token": "mock-token-1", "expires_in": 1234, "token_type": "Bearer"})
    );
    let rec = mock_requests(&m);
    assert_eq!(rec.last().unwrap()["path"], "/token");

    // Signed by another key.
    let other = openssl_key();
    let r = exchange(
        m.addr,
        &jwt(&other, &claims(&a.email, m.addr, now, now + 3600)),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    );

    let short = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
    for (iat, exp) in [
        (now, now + 7200),
        (now - 4000, now - 400),
        (now + 1000, now + 2000),
    ] {
        let r = exchange(m.addr, &jwt(&a.pem, &claims(&a.email, m.addr, iat, exp)));
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error_description"], short, "iat {iat} exp {exp}");
    }
    let r = exchange(
        m.addr,
        &jwt(&a.pem, &claims("someone@else", m.addr, now, now + 60)),
    );
    assert_eq!(r.json()["error"], "invalid_grant");

    // authorized_user's refresh_token grant.
    let r = token_request(
        m.addr,
        "grant_type=refresh_token&client_id=c&client_secret=s&refresh_token=mock-refresh-token",
    );
    assert_eq!(r.json()["access_token"], "mock-token-2");
    let r = token_request(m.addr, "grant_type=refresh_token&refresh_token=nope");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[test]
fn metadata_server_and_aws_container_credentials() {
    let m = mock(&["--google-token-ttl", "100", "--aws-credentials-ttl", "900"]);
    let path = "/computeMetadata/v1/instance/service-accounts/default/token";
    assert_eq!(request(m.addr, &get(path, &[])).status, 403);
    let r = request(
        m.addr,
        &get(
            &format!("{path}?scopes=x"),
            &[("Metadata-Flavor", "Google")],
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    assert_eq!(
        r.json(),
        json!({"access_token": "mock-token-1", "expires_in": 100, "token_type": "Bearer"})
    );
    let r = request(
        m.addr,
        &get(
            "/computeMetadata/v1/project/project-id",
            &[("Metadata-Flavor", "Google")],
        ),
    );
    assert_eq!(r.text(), "mock-project");

    let r = request(
        m.addr,
        &get("/mock/aws-credentials", &[("authorization", "anything")]),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["AccessKeyId"], AKID);
    assert_eq!(v["SecretAccessKey"], SECRET);
    assert_eq!(v["Token"], "mock-session-1");
    let exp = v["Expiration"].as_str().unwrap();
    assert!(exp.ends_with('Z') && exp.len() == 20, "{exp}");
    assert_eq!(
        request(m.addr, &get("/mock/aws-credentials", &[])).json()["Token"],
        "mock-session-2"
    );
}

const VERTEX: &str = "/v1/projects/mock-project/locations/us-east5/publishers/anthropic/models";

fn vertex_body(prompt: &str, stream: bool) -> Value {
    json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": prompt}]})
}

fn vertex(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: &Value,
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    request(addr, &post(path, &headers, &body.to_string()))
}

#[test]
fn vertex_raw_predict_behind_issued_tokens() {
    let a = service_account(&openssl_key());
    let m = mock_with(&a.file, &[]);
    let now = now_secs();
    let token = exchange(
        m.addr,
        &jwt(&a.pem, &claims(&a.email, m.addr, now, now + 3600)),
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = format!("{VERTEX}/claude-sonnet-4-5@20250929:rawPredict");
    let stream = format!("{VERTEX}/claude-sonnet-4-5@20250929:streamRawPredict");

    let r = vertex(m.addr, &raw, Some(&token), &[], &vertex_body("hi", false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    let rec = mock_requests(&m);
    assert_eq!(rec.last().unwrap()["model"], "claude-sonnet-4-5@20250929");

    let r = vertex(
        m.addr,
        &stream,
        Some("mock-static-token"),
        &[],
        &vertex_body("hi", true),
    );
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    assert_eq!(events.first().unwrap().0.as_deref(), Some("message_start"));
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));

    let unauth = json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.", "status": "UNAUTHENTICATED"}});
    let r = vertex(m.addr, &raw, None, &[], &vertex_body("hi", false));
    assert_eq!((r.status, r.json()), (401, unauth.clone()));
    let r = vertex(
        m.addr,
        &raw,
        Some("mock-token-999"),
        &[],
        &vertex_body("hi", false),
    );
    assert_eq!(r.status, 401);

    // Revoked tokens answer 401 until a new one is fetched.
    assert_eq!(
        request(m.addr, &post("/mock/google-tokens/revoke", &[], "")).status,
        200
    );
    let r = vertex(m.addr, &raw, Some(&token), &[], &vertex_body("hi", false));
    assert_eq!((r.status, r.json()), (401, unauth));
    let fresh = exchange(
        m.addr,
        &jwt(&a.pem, &claims(&a.email, m.addr, now, now + 3600)),
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, token);
    assert_eq!(
        vertex(m.addr, &raw, Some(&fresh), &[], &vertex_body("hi", false)).status,
        200
    );

    // Betas outside Vertex's allowlist, in Anthropic's words.
    let r = vertex(
        m.addr,
        &raw,
        Some(&fresh),
        &[(
            "anthropic-beta",
            "interleaved-thinking-2025-05-14,oauth-2025-04-20",
        )],
        &vertex_body("hi", false),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "Unexpected value(s) `oauth-2025-04-20` for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header."}})
    );
    let ok = vertex(
        m.addr,
        &raw,
        Some(&fresh),
        &[("anthropic-beta", "interleaved-thinking-2025-05-14")],
        &vertex_body("hi", false),
    );
    assert_eq!(ok.status, 200);

    let mut b = vertex_body("hi", false);
    b["model"] = json!("claude-sonnet-4-5@20250929");
    let r = vertex(m.addr, &raw, Some(&fresh), &[], &b);
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let mut b = vertex_body("hi", false);
    b["anthropic_version"] = json!("2023-06-01");
    assert_eq!(vertex(m.addr, &raw, Some(&fresh), &[], &b).status, 400);

    let r = vertex(
        m.addr,
        &stream,
        Some(&fresh),
        &[],
        &vertex_body("hi mock:throttle", true),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    let r = vertex(
        m.addr,
        &raw,
        Some(&fresh),
        &[],
        &vertex_body("hi mock:status=529", false),
    );
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (529, Some("overloaded_error"))
    );

    // count-tokens keeps the model in the body.
    let mut b = vertex_body("count me", false);
    b.as_object_mut().unwrap().remove("stream");
    b["model"] = json!("claude-sonnet-4-5@20250929");
    let r = vertex(
        m.addr,
        &format!("{VERTEX}/count-tokens:rawPredict"),
        Some(&fresh),
        &[],
        &b,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    b.as_object_mut().unwrap().remove("model");
    assert_eq!(
        vertex(
            m.addr,
            &format!("{VERTEX}/count-tokens:rawPredict"),
            Some(&fresh),
            &[],
            &b
        )
        .status,
        400
    );
}

#[test]
fn fixture_service_account_is_usable() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/google/service-account.json");
    let sa: Value = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    assert!(sa["_comment"].as_str().unwrap().contains("TEST-ONLY"));
    let m = mock_with(&fixture, &[]);
    let now = now_secs();
    let email = sa["client_email"].as_str().unwrap();
    let r = exchange(
        m.addr,
        &jwt(
            sa["private_key"].as_str().unwrap(),
            &claims(email, m.addr, now, now + 600),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
