//! What several integration tests share: the three client dialects' requests and answers,
//! the mock's records read back, and a Google service account the mock verifies.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;

/// The three client dialects: a request for `model` saying `prompt`.
#[derive(Clone, Copy, Debug)]
pub enum Dialect {
    Chat,
    Messages,
    Responses,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Chat, Dialect::Messages, Dialect::Responses];

    pub fn request(
        self,
        model: &str,
        prompt: &str,
        stream: bool,
        headers: &[(&str, &str)],
    ) -> Vec<u8> {
        let (path, body) = match self {
            Dialect::Chat => ("/v1/chat/completions", openai_body(model, prompt, stream)),
            Dialect::Messages => ("/v1/messages", anthropic_body(model, prompt, stream)),
            Dialect::Responses => (
                "/v1/responses",
                json!({"model": model, "input": prompt, "stream": stream, "store": false})
                    .to_string(),
            ),
        };
        post(path, headers, &body)
    }

    /// The answer's text, from a whole body or a stream.
    pub fn text(self, r: &Response, stream: bool) -> String {
        if !stream {
            let v = r.json();
            return match self {
                Dialect::Chat => v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                Dialect::Messages => v["content"][0]["text"].as_str().unwrap_or("").to_owned(),
                Dialect::Responses => v["output"]
                    .as_array()
                    .and_then(|o| o.iter().find(|i| i["type"] == "message"))
                    .map(|m| m["content"][0]["text"].as_str().unwrap_or("").to_owned())
                    .unwrap_or_default(),
            };
        }
        let mut text = String::new();
        for (event, data) in sse_events(&r.body) {
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            match self {
                Dialect::Chat => {
                    text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""))
                }
                Dialect::Messages if event.as_deref() == Some("content_block_delta") => {
                    text.push_str(v["delta"]["text"].as_str().unwrap_or(""))
                }
                Dialect::Responses if v["type"] == "response.output_text.delta" => {
                    text.push_str(v["delta"].as_str().unwrap_or(""))
                }
                _ => {}
            }
        }
        text
    }
}

pub fn header_of<'a>(rec: &'a Value, name: &str) -> Option<&'a str> {
    rec["headers"]
        .as_object()?
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

pub fn body_of(rec: &Value) -> Value {
    match &rec["body"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// A service-account file for the gateway whose token URI is `mock`'s, and the key's file the
/// mock verifies with.
pub fn google_account(dir_name: &str) -> (PathBuf, String) {
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
    assert!(out.status.success());
    let pem = String::from_utf8(out.stdout).unwrap();
    let file = temp_path(dir_name);
    (file, pem)
}

pub fn write_account(file: &PathBuf, pem: &str, token_uri: &str) {
    let sa = json!({"type": "service_account", "project_id": "mock-project",
        "private_key_id": "k1", "private_key": pem,
        "client_email": "ringway-test@mock-project.iam.gserviceaccount.com",
        "token_uri": token_uri});
    std::fs::write(file, sa.to_string()).unwrap();
}
