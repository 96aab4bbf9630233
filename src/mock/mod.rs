//! `ringway mock-upstream`: a deterministic provider simulator speaking both provider wire
//! formats (OpenAI Chat Completions and Anthropic Messages).
//! `script` decides what to send (pure); `fault` reshapes that for per-target faults (pure);
//! this module performs it over real sockets, records what it received, and tags responses with
//! connection numbers so tests can see keep-alive reuse.
//!
//! Control endpoints (never recorded, never faulted):
//!
//! | endpoint | effect |
//! |---|---|
//! | `GET /mock/requests` | the last [`RECORDED_REQUESTS`] requests: `conn`, `seq`, `path`, `headers`, `body`, `model`, `answered` |
//! | `DELETE /mock/requests` | clears the record and the counts |
//! | `GET /mock/counts` | `{"<model>": {"requests": N, "<answered>": N, …}}` over the mock's life |
//! | `GET /mock/faults` | the fault table, `{"<model>": "<fault>"}` |
//! | `POST /mock/faults` | replaces the fault table (400 and no change when an entry is bad) |
//! | `POST /mock/google-tokens/revoke` | every token the mock issued answers 401 until a new one is fetched |
//!
//! Cloud endpoints (recorded like the provider paths; `model` is the decoded model id):
//!
//! | endpoint | what it plays |
//! |---|---|
//! | `POST /model/{modelId}/invoke`, `…/invoke-with-response-stream`, `…/count-tokens` | Amazon Bedrock ([`bedrock`]): SigV4 or `Bearer ABSK…` ([`aws`]), Bedrock's body rules, AWS error shapes, event-stream frames |
//! | `POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict`, `:streamRawPredict`, `models/count-tokens:rawPredict` | Claude on Vertex AI ([`vertex`]): a bearer the mock issued or `mock-static-token` |
//! | `POST /v1beta/models/{m}:generateContent`, `:streamGenerateContent`, `:countTokens`, `GET /v1beta/models[/{m}]`; `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:…` | Gemini API (a key) and Gemini on Vertex AI (a bearer) ([`gemini`]): schema subset, Gemini 3 thought signatures, SSE or JSON-array streams split anywhere |
//! | `POST /token` | Google's OAuth token endpoint ([`google`]): JWT-bearer (RS256 against `--google-service-account`) and `refresh_token` (`mock-refresh-token`) grants |
//! | `GET /computeMetadata/v1/instance/service-accounts/default/token`, `GET /computeMetadata/v1/project/project-id` | a GCE metadata server (needs `Metadata-Flavor: Google`) |
//! | `GET /mock/aws-credentials` | an ECS-style container credentials endpoint: `AKIDRINGWAYMOCK` / `ringway-mock-secret`, token `mock-session-<n>`, `Expiration` now + `--aws-credentials-ttl` |
//!
//! Cloud directives (in the last user message, beside the script's): `mock:throttle` (Bedrock
//! 429 `ThrottlingException`, Vertex 429 `RESOURCE_EXHAUSTED`, before any stream);
//! Bedrock streams only: `mock:split=N` (N-byte pieces, each flushed; default: each write cut
//! in two at a shifting offset), `mock:bedrock_exception=NAME` (an exception frame after
//! [`script::FAULT_AFTER_TOKENS`] tokens, then the end; NAME a ResponseStream member such as
//! `throttlingException`, default `modelStreamErrorException`), `mock:bad_crc` (the second
//! frame's message CRC is wrong, then the end), `mock:huge_frame` (after the first frame, a
//! prelude claiming [`bedrock::HUGE_FRAME_BYTES`]). On Bedrock the fault table's and
//! `mock:status=` errors take AWS shapes (429 `ThrottlingException`, 503/529
//! `ServiceUnavailableException`, 5xx `InternalServerException`, 400 `ValidationException`…);
//! Vertex passes the Anthropic shapes through.

pub mod aws;
pub mod bedrock;
pub mod cloud;
pub mod fault;
pub mod gemini;
pub mod google;
pub mod script;
pub mod vertex;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::config::{Driver, ServerConfig};
use crate::downstream::{ClientConn, HeadOutcome};
use crate::http1::{self, ResponseBody};
use fault::{Answered, Fault, FaultTable};
use script::{Defaults, Step};

/// Requests remembered for `GET /mock/requests`.
pub const RECORDED_REQUESTS: usize = 256;
/// Bytes of each request body remembered.
pub const RECORDED_BODY_BYTES: usize = 256 * 1024;
/// How long a `Stall` holds a connection before giving up on it.
pub const STALL_FOR: Duration = Duration::from_secs(3600);
/// Distinct models `GET /mock/counts` keeps; requests for further models are not counted.
pub const COUNTED_MODELS: usize = 4096;
/// Longest model name counted or recorded whole (longer names are cut in the record and not
/// counted): the demo mock is reachable by any client of `serve`.
pub const MODEL_NAME_BYTES: usize = 1024;

/// How to run the mock.
#[derive(Clone)]
pub struct MockOptions {
    /// Listen address (port 0 picks one).
    pub listen: SocketAddr,
    /// Default delays.
    pub defaults: Defaults,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<(String, String)>,
    /// Driver for the mock's runtime.
    pub driver: Driver,
    /// The fault table to start with (`--faults`).
    pub faults: FaultTable,
    /// The cloud sides' settings.
    pub clouds: CloudOptions,
}

/// Settings of the mock's cloud sides.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// The service account whose JWTs `POST /token` accepts (`--google-service-account`).
    pub google_account: Option<google::ServiceAccount>,
    /// Lifetime of the Google tokens the mock issues (`--google-token-ttl`).
    pub google_token_ttl: u64,
    /// Lifetime of the AWS container credentials (`--aws-credentials-ttl`).
    pub aws_credentials_ttl: u64,
    /// Betas both clouds refuse whatever their allowlists say (`--refuse-beta`, repeatable):
    /// a region that does not have a feature yet.
    pub refused_betas: Vec<String>,
}

/// Default `--aws-credentials-ttl`.
pub const DEFAULT_AWS_CREDENTIALS_TTL_SECS: u64 = 3600;

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            google_account: None,
            google_token_ttl: google::DEFAULT_TOKEN_TTL_SECS,
            aws_credentials_ttl: DEFAULT_AWS_CREDENTIALS_TTL_SECS,
            refused_betas: Vec::new(),
        }
    }
}

struct MockState {
    defaults: Defaults,
    conns: Cell<u64>,
    recorded: RefCell<VecDeque<serde_json::Value>>,
    faults: RefCell<FaultTable>,
    counts: RefCell<BTreeMap<String, ModelCounts>>,
    clouds: CloudOptions,
    google_tokens: RefCell<google::Tokens>,
    aws_credentials: Cell<u64>,
}

/// One model's line in `GET /mock/counts`.
#[derive(Default)]
struct ModelCounts {
    requests: u64,
    answered: BTreeMap<String, u64>,
}

/// Start the mock on its own thread; returns the bound address once it listens.
pub fn spawn(opts: MockOptions) -> Result<(SocketAddr, std::thread::JoinHandle<()>), String> {
    let acceptor = match &opts.tls {
        None => None,
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
    };
    let (tx, rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
    let t = std::thread::Builder::new()
        .name("ringway-mock".into())
        .spawn(move || {
            let run = move |kind| async move {
                let listener = match crate::rt::bind(opts.listen, kind) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(format!("mock cannot listen on {}: {e}", opts.listen)));
                        return;
                    }
                };
                let _ = tx.send(Ok(listener.local_addr().unwrap_or(opts.listen)));
                let state = Rc::new(MockState {
                    defaults: opts.defaults,
                    conns: Cell::new(0),
                    recorded: RefCell::new(VecDeque::new()),
                    faults: RefCell::new(opts.faults),
                    counts: RefCell::new(BTreeMap::new()),
                    clouds: opts.clouds,
                    google_tokens: RefCell::new(google::Tokens::default()),
                    aws_credentials: Cell::new(0),
                });
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        monoio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    let acceptor = acceptor.clone();
                    monoio::spawn(async move {
                        let n = state.conns.get() + 1;
                        state.conns.set(n);
                        let fd = stream.as_raw_fd();
                        match acceptor {
                            None => serve(ClientConn::new(stream), fd, n, &state).await,
                            Some(acc) => {
                                if let Ok(tls) = acc.accept(stream).await {
                                    serve(ClientConn::new(tls), fd, n, &state).await;
                                }
                            }
                        }
                    });
                }
            };
            if let Err(e) = crate::rt::block_on(opts.driver, 256, run) {
                crate::log::error(format_args!("mock: {e}"));
            }
        })
        .map_err(|e| format!("cannot spawn mock thread: {e}"))?;
    match rx.recv() {
        Ok(Ok(addr)) => Ok((addr, t)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("mock failed to start".into()),
    }
}

fn tls_acceptor(cert: &str, key: &str) -> Result<monoio_rustls::TlsAcceptor, String> {
    let certs: Vec<_> = rustls_pemfile::certs(
        &mut std::fs::read(cert)
            .map_err(|e| format!("{cert}: {e}"))?
            .as_slice(),
    )
    .collect::<Result<_, _>>()
    .map_err(|e| format!("{cert}: {e}"))?;
    let key = rustls_pemfile::private_key(
        &mut std::fs::read(key)
            .map_err(|e| format!("{key}: {e}"))?
            .as_slice(),
    )
    .map_err(|e| format!("{key}: {e}"))?
    .ok_or_else(|| format!("{key}: no private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(monoio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Limits for the mock's own request reading: generous, it is a test tool.
fn mock_server_config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        plain_listen: None,
        tls: None,
        workers: 1,
        driver: Driver::Auto,
        pin_workers: false,
        uring_entries: 256,
        max_body_bytes: 64 * 1024 * 1024,
        responses_websocket: false,
        header_read_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(300),
        write_timeout: Duration::from_secs(300),
        body_timeout: Duration::from_secs(300),
        max_buffered_bytes: 256 * 1024 * 1024,
        reuse_port: false,
        drain_timeout: Duration::from_secs(1),
        pid_file: None,
        headers: crate::headers::GatewayHeaders::default(),
        hop: crate::config::DEFAULT_NODE.to_owned(),
        default_tier: None,
    }
}

async fn serve<S: AsyncReadRent + AsyncWriteRent>(
    mut conn: ClientConn<S>,
    fd: i32,
    conn_no: u64,
    state: &MockState,
) {
    let cfg = mock_server_config();
    let mut seq = 0u64;
    loop {
        let head = match conn.read_head((&cfg).into(), None).await {
            Ok(h) => h,
            Err(HeadOutcome::Closed | HeadOutcome::Failed(..)) => return,
        };
        seq += 1;
        let Ok(body) = conn
            .read_body(
                &head,
                cfg.max_body_bytes,
                cfg.body_read_timeout,
                cfg.body_timeout,
            )
            .await
        else {
            return;
        };
        let tags = [
            ("x-mock-conn", conn_no.to_string()),
            ("x-mock-seq", seq.to_string()),
        ];

        if let Some((status, reply)) = control(state, head.method_str(), head.path(), &body) {
            let reply = serde_json::to_vec(&reply).unwrap_or_default();
            if write_simple(&mut conn, status, &tags, &reply, head.keep_alive())
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let (model, steps) = match cloud_plan(state, &head, &body) {
            Some(planned) => planned,
            None => {
                let model = fault::model_of(&body);
                let Some(api) = script::api_for_path(head.path()) else {
                    record(
                        state,
                        &head,
                        &body,
                        (conn_no, seq),
                        model,
                        Answered::Status(404),
                    );
                    let body = br#"{"error":{"message":"mock: unknown path","type":"invalid_request_error","param":null,"code":null}}"#;
                    if write_simple(&mut conn, 404, &tags, body, head.keep_alive())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                };
                let fault = if head.path().starts_with("/mock/") {
                    Fault::None
                } else {
                    state.faults.borrow().lookup(model.as_deref()).clone()
                };
                let steps = match fault {
                    Fault::EchoKey => fault::echo_key_reply(api, &body, &presented_key(&head)),
                    _ => fault::plan(&fault, api, &body, &state.defaults),
                };
                (model, steps)
            }
        };
        record(
            state,
            &head,
            &body,
            (conn_no, seq),
            model,
            fault::answered(&steps),
        );
        // Bytes with no pause between them go out in one write, as a provider's socket would
        // carry them: a stream without pacing is one write, and a gateway in front reads it
        // whole (the load tests measure the gateway, not the mock's syscalls).
        conn.wbuf.clear();
        let mut chunked = false;
        for step in steps {
            let ok = match step {
                Step::Head {
                    status,
                    headers,
                    content_length,
                } => {
                    let mut h: Vec<(&str, &[u8])> =
                        headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
                    h.extend(tags.iter().map(|(n, v)| (*n, v.as_bytes())));
                    let framing = match content_length {
                        Some(n) => ResponseBody::Length(n as u64),
                        None => {
                            chunked = true;
                            ResponseBody::Chunked
                        }
                    };
                    // A scripted header the writer refuses ends the exchange: the mock never
                    // writes a broken head (raw-socket tests play hostile providers).
                    http1::write_response_head(
                        &mut conn.wbuf,
                        status,
                        &h,
                        framing,
                        head.keep_alive(),
                    )
                    .is_ok()
                }
                Step::Data(data) => {
                    if chunked {
                        http1::write_chunk(&mut conn.wbuf, &data);
                    } else {
                        conn.wbuf.extend_from_slice(&data);
                    }
                    true
                }
                Step::Sleep(d) => {
                    let ok = conn.flush().await.is_ok();
                    monoio::time::sleep(d).await;
                    ok
                }
                Step::Reset => {
                    // What was written reaches the peer before the reset does.
                    let _ = conn.flush().await;
                    // SO_LINGER 0 makes close() send RST instead of FIN.
                    let linger = nix::libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    let _ = nix::sys::socket::setsockopt(
                        fd,
                        nix::sys::socket::sockopt::Linger,
                        &linger,
                    );
                    return;
                }
                Step::Stall => {
                    let _ = conn.flush().await;
                    monoio::time::sleep(STALL_FOR).await;
                    return;
                }
                Step::End => {
                    if chunked {
                        conn.wbuf.extend_from_slice(http1::LAST_CHUNK);
                    }
                    true
                }
                Step::Raw(bytes) => {
                    conn.wbuf.extend_from_slice(&bytes);
                    true
                }
                Step::Close => {
                    let _ = conn.flush().await;
                    return;
                }
            };
            if !ok {
                return;
            }
        }
        if conn.flush().await.is_err() {
            return;
        }
        if !head.keep_alive() {
            return;
        }
    }
}

/// Plans the answer on a cloud path (Bedrock, Vertex, the token and credentials endpoints):
/// the model for the record and the steps; `None`: not a cloud path.
fn cloud_plan(
    state: &MockState,
    head: &http1::RequestHead,
    body: &[u8],
) -> Option<(Option<String>, Vec<Step>)> {
    let now = SystemTime::now();
    let path = head.path();
    if let Some((op, model)) = bedrock::route(path) {
        let target = head.target();
        let req = aws::Presented {
            method: head.method_str(),
            target: if target.starts_with('/') {
                target
            } else {
                path
            },
            headers: head
                .headers()
                .filter_map(|(n, v)| Some((n, std::str::from_utf8(v).ok()?)))
                .collect(),
            body,
        };
        let faults = state.faults.borrow();
        let steps = match bedrock::refuse_betas(body, &state.clouds.refused_betas) {
            Some(refusal) => refusal,
            None => bedrock::plan(op, &model, &req, &faults, &state.defaults, now),
        };
        return Some((Some(model), steps));
    }
    if let Some((host, op)) = gemini::route(path) {
        let target = head.target();
        let req = gemini::GeminiRequest {
            method: head.method_str(),
            query: target.split_once('?').map(|(_, q)| q),
            api_key: head.header("x-goog-api-key"),
            authorization: head.header("authorization"),
            body,
        };
        let tokens = state.google_tokens.borrow();
        let faults = state.faults.borrow();
        let steps = gemini::plan(host, &op, &req, &tokens, &faults, &state.defaults, now);
        return Some((op.model().map(str::to_owned), steps));
    }
    if let Some(op) = vertex::route(path) {
        let req = vertex::VertexRequest {
            authorization: head.header("authorization"),
            betas: head
                .headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case("anthropic-beta"))
                .map(|(_, v)| v)
                .collect(),
            body,
        };
        let tokens = state.google_tokens.borrow();
        let faults = state.faults.borrow();
        let steps = match vertex::refuse_betas(&req.betas, &state.clouds.refused_betas) {
            Some(refusal) => refusal,
            None => vertex::plan(&op, &req, &tokens, &faults, &state.defaults, now),
        };
        return Some((vertex::model_of(&op, body), steps));
    }
    let ttl = state.clouds.google_token_ttl;
    let steps = match (path, head.method_str()) {
        ("/token", "POST") => {
            let host = String::from_utf8_lossy(head.header("host").unwrap_or_default());
            google::token_endpoint(
                state.clouds.google_account.as_ref(),
                &mut state.google_tokens.borrow_mut(),
                body,
                &host,
                now,
                ttl,
            )
        }
        ("/mock/aws-credentials", "GET") => {
            let n = state.aws_credentials.get() + 1;
            state.aws_credentials.set(n);
            aws::container_credentials(n, now, state.clouds.aws_credentials_ttl)
        }
        _ => google::metadata(
            path,
            head.header("metadata-flavor"),
            &mut state.google_tokens.borrow_mut(),
            now,
            ttl,
        )?,
    };
    Some((None, steps))
}

/// The API key a request presented: `Authorization: Bearer …` or `x-api-key`.
fn presented_key(head: &http1::RequestHead) -> String {
    let bearer = head.header("authorization").and_then(|v| {
        let (scheme, rest) = v.split_at_checked(7)?;
        scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
    });
    let key = bearer
        .or_else(|| head.header("x-api-key"))
        .unwrap_or_default();
    String::from_utf8_lossy(key).into_owned()
}

async fn write_simple<S: AsyncReadRent + AsyncWriteRent>(
    conn: &mut ClientConn<S>,
    status: u16,
    tags: &[(&str, String)],
    body: &[u8],
    keep_alive: bool,
) -> crate::error::Result<()> {
    let mut h: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    h.extend(tags.iter().map(|(n, v)| (*n, v.as_bytes())));
    conn.wbuf.clear();
    http1::write_response_head(
        &mut conn.wbuf,
        status,
        &h,
        ResponseBody::Length(body.len() as u64),
        keep_alive,
    )
    .map_err(|e| crate::error::Error::new(crate::error::ErrorKind::Internal, e.to_string()))?;
    conn.wbuf.extend_from_slice(body);
    conn.flush().await
}

/// Answers the mock's own endpoints (`None`: not one of them): status and JSON body.
fn control(
    state: &MockState,
    method: &str,
    path: &str,
    body: &[u8],
) -> Option<(u16, serde_json::Value)> {
    let ok = || serde_json::json!({"ok": true});
    let reply = match (path, method) {
        ("/mock/requests", "DELETE") => {
            state.recorded.borrow_mut().clear();
            state.counts.borrow_mut().clear();
            (200, ok())
        }
        ("/mock/requests", _) => {
            let list: Vec<serde_json::Value> = state.recorded.borrow().iter().cloned().collect();
            (200, serde_json::Value::Array(list))
        }
        ("/mock/counts", _) => {
            let counts = state
                .counts
                .borrow()
                .iter()
                .map(|(model, c)| {
                    let mut line = serde_json::Map::new();
                    line.insert("requests".into(), c.requests.into());
                    for (answered, n) in &c.answered {
                        line.insert(answered.clone(), (*n).into());
                    }
                    (model.clone(), serde_json::Value::Object(line))
                })
                .collect();
            (200, serde_json::Value::Object(counts))
        }
        ("/mock/faults", "POST" | "PUT") => match FaultTable::from_json(body) {
            Ok(table) => {
                *state.faults.borrow_mut() = table;
                (200, ok())
            }
            Err(e) => (400, e.to_json()),
        },
        ("/mock/faults", _) => (200, state.faults.borrow().to_json()),
        ("/mock/google-tokens/revoke", "POST") => {
            state.google_tokens.borrow_mut().revoke();
            (200, ok())
        }
        _ => return None,
    };
    Some(reply)
}

fn record(
    state: &MockState,
    head: &http1::RequestHead,
    body: &[u8],
    (conn, seq): (u64, u64),
    model: Option<String>,
    answered: Answered,
) {
    let headers: serde_json::Map<String, serde_json::Value> = head
        .headers()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    let entry = serde_json::json!({
        "conn": conn,
        "seq": seq,
        "path": head.target(),
        "headers": headers,
        // Bounded: the demo mock runs inside `serve`, reachable by any client.
        "body": String::from_utf8_lossy(body.get(..RECORDED_BODY_BYTES).unwrap_or(body)),
        "model": model.as_deref().map(|m| cut(m, MODEL_NAME_BYTES)),
        "answered": answered.to_json(),
    });
    if let Some(model) = model.filter(|m| m.len() <= MODEL_NAME_BYTES) {
        let mut counts = state.counts.borrow_mut();
        if counts.len() < COUNTED_MODELS || counts.contains_key(&model) {
            let line = counts.entry(model).or_default();
            line.requests += 1;
            *line.answered.entry(answered.key()).or_default() += 1;
        }
    }
    let mut rec = state.recorded.borrow_mut();
    if rec.len() >= RECORDED_REQUESTS {
        rec.pop_front();
    }
    rec.push_back(entry);
}

/// `text` cut to at most `max` bytes on a char boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}
