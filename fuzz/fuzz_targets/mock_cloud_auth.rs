//! Hostile requests at the mock's cloud front ends (the built-in mock is reachable by any
//! client of `serve`): SigV4 verification and the Google token endpoint never panic; a SigV4
//! request accepted is refused once its body changes (the fuzzer can learn a signature from
//! the comparison, so acceptance alone proves nothing); no JWT is accepted that the fuzzer
//! would have had to sign with RSA.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use ringway::mock::aws::{authenticate, Presented};
use ringway::mock::google::{token_endpoint, ServiceAccount, Tokens};

fuzz_target!(|data: &[u8]| {
    // method 0xFF target 0xFF header lines (name:value, \n) 0xFF body
    let mut parts = data.split(|b| *b == 0xFF);
    fn text(p: Option<&[u8]>) -> &str {
        std::str::from_utf8(p.unwrap_or_default()).unwrap_or("")
    }
    let (method, target, head) = (text(parts.next()), text(parts.next()), text(parts.next()));
    let body = parts.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> = head.lines().filter_map(|l| l.split_once(':')).collect();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let req = Presented {
        method,
        target,
        headers: headers.clone(),
        body,
    };
    if authenticate(&req, now).is_ok() {
        let auth = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        let bearer = auth.is_some_and(|(_, v)| v.get(7..).is_some_and(|k| k.starts_with("ABSK")));
        if !bearer {
            let mut changed = body.to_vec();
            changed.push(b'x');
            let req = Presented {
                body: &changed,
                ..req
            };
            assert!(
                authenticate(&req, now).is_err(),
                "the signature does not cover the body"
            );
        }
    }
    let account = ServiceAccount {
        client_email: "a@b".into(),
        token_uri: "http://t/token".into(),
        public_key: vec![0x30, 0x03, 0x02, 0x01, 0x01],
    };
    let steps = token_endpoint(Some(&account), &mut Tokens::default(), body, "t", now, 60);
    if let Some(ringway::mock::script::Step::Head { status, .. }) = steps.first() {
        let refresh = body.windows(18).any(|w| w == b"mock-refresh-token");
        assert!(
            *status == 400 || refresh,
            "accepted a JWT it could not verify"
        );
    }
});
