//! SigV4 request signing for Bedrock: the headers to add to a request whose final body bytes
//! and request-target are known. Pure (the caller gives the time); the canonical request is
//! AWS's own signer's (`aws-sigv4`), the body hash ring's.

use std::time::SystemTime;

use super::aws::Keys;

/// Lower-case hex SHA-256 of `body` (ring: one pass, the signer is handed the digest).
pub fn sha256_hex(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The headers to add so AWS accepts the request: `x-amz-date`, `x-amz-security-token` (when
/// the keys have one), `authorization`. `path` is the request-target exactly as it will be
/// written (already percent-encoded; the signer encodes it once more, as every service but S3
/// expects), `headers` the other headers that will be sent and are signed (a `host` among
/// them is ignored: `host` is), `body_sha256_hex` the digest of the final body bytes.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    keys: &Keys,
    region: &str,
    service: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_sha256_hex: &str,
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    if host.is_empty() || !path.starts_with('/') {
        return Err(format!("cannot sign a request to `{host}` `{path}`"));
    }
    let creds = aws_credential_types::Credentials::new(
        keys.access_key_id.as_str(),
        keys.secret_access_key.as_str(),
        keys.session_token.clone(),
        keys.expires,
        "ringway",
    );
    let identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let signed = std::iter::once(("host", host)).chain(
        headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
            .copied(),
    );
    // The scheme does not enter the signature; the host comes from the `host` header.
    let uri = format!("https://{host}{path}");
    let request = SignableRequest::new(
        method,
        uri,
        signed,
        SignableBody::Precomputed(body_sha256_hex.to_owned()),
    )
    .map_err(|e| format!("SigV4: {e}"))?;
    let (instructions, _) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| format!("SigV4: {e}"))?
        .into_parts();
    let (out, _) = instructions.into_parts();
    Ok(out
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 20150830T123600Z, the AWS test suite's instant.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_keys(token: Option<&str>) -> Keys {
        Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
            expires: None,
        }
    }

    fn header<'a>(out: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        out.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn signature(out: &[(&'static str, String)]) -> String {
        let authz = header(out, "authorization").unwrap_or_default();
        authz
            .rsplit("Signature=")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn sha256_of_the_empty_body() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        let out = sign(
            &suite_keys(None),
            "us-east-1",
            "service",
            "GET",
            "example.amazonaws.com",
            "/",
            &[],
            &sha256_hex(b""),
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&out, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&out, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(header(&out, "x-amz-security-token"), None);
    }

    #[test]
    fn aws_test_suite_post_vanilla() {
        let out = sign(
            &suite_keys(None),
            "us-east-1",
            "service",
            "POST",
            "example.amazonaws.com",
            "/",
            &[],
            &sha256_hex(b""),
            suite_time(),
        )
        .unwrap();
        assert_eq!(
            signature(&out),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn aws_test_suite_get_vanilla_query_order_key_case() {
        let out = sign(
            &suite_keys(None),
            "us-east-1",
            "service",
            "GET",
            "example.amazonaws.com",
            "/?Param2=value2&Param1=value1",
            &[],
            &sha256_hex(b""),
            suite_time(),
        )
        .unwrap();
        assert_eq!(
            signature(&out),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    /// A non-ASCII value is signed as its bytes (smithy-rs's `test_sign_headers_utf8` vector);
    /// runs of spaces fold to one and the ends are trimmed (`some-header:test test` in the
    /// canonical request: botocore 1.43.11 gives this signature, as the UTF-8 one; an older
    /// smithy-rs vector, 0bd74dbf…, did not fold).
    #[test]
    fn header_values_are_canonicalized_like_the_sdks_do() {
        let one = |value: &str| {
            let out = sign(
                &suite_keys(None),
                "us-east-1",
                "service",
                "GET",
                "some-endpoint.some-region.amazonaws.com",
                "/",
                &[("some-header", value)],
                &sha256_hex(b""),
                suite_time(),
            )
            .unwrap();
            signature(&out)
        };
        assert_eq!(
            one("\u{30c6}\u{30b9}\u{30c8}"),
            "4596b207a7fc6bdf18725369bc0cd7022cf20efbd2c19730549f42d1a403648e"
        );
        assert_eq!(
            one("  test  test   "),
            "a2debe66eace1337940c47d7908ab34319fa432431188791ad7788c85973d2d7"
        );
    }

    #[test]
    fn a_host_among_the_headers_is_the_given_one() {
        let a = sign(
            &suite_keys(None),
            "us-east-1",
            "service",
            "GET",
            "example.amazonaws.com",
            "/",
            &[("Host", "elsewhere.example")],
            &sha256_hex(b""),
            suite_time(),
        )
        .unwrap();
        assert_eq!(
            signature(&a),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn bad_targets_are_refused_not_signed() {
        let keys = suite_keys(None);
        let sign_path = |host: &str, path: &str| {
            sign(
                &keys,
                "us-east-1",
                "bedrock",
                "POST",
                host,
                path,
                &[],
                &sha256_hex(b""),
                suite_time(),
            )
        };
        assert!(sign_path("", "/").is_err());
        assert!(sign_path("h.example", "model").is_err());
        assert!(sign_path("h.example", "/a b").is_err());
    }

    /// A Bedrock request as ringway sends it: the model id percent-encoded in the path (`:` as
    /// `%3A`, signed double-encoded), a session token, content-type and accept signed.
    /// Expected values from botocore 1.43.11 (installed here):
    /// python3 -c 'import datetime,botocore.auth as a;from botocore.credentials import Credentials as C;from botocore.awsrequest import AWSRequest as R
    /// r=R(method="POST",url="https://bedrock-runtime.ca-central-1.amazonaws.com/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",data=b"{\"max_tokens\":16}",headers={"content-type":"application/json","accept":"application/json"})
    /// s=a.SigV4Auth(C("AKIDRINGWAYMOCK","ringway-mock-secret","session-token-1"),"bedrock","ca-central-1")
    /// a.datetime.datetime=type("D",(datetime.datetime,),{"utcnow":classmethod(lambda c:datetime.datetime(2026,11,25,15,0,0)),"now":classmethod(lambda c,tz=None:datetime.datetime(2026,11,25,15,0,0,tzinfo=tz))})
    /// s.add_auth(r);print(r.headers["Authorization"])'
    #[test]
    fn a_bedrock_request_matches_botocore() {
        let keys = Keys {
            access_key_id: "AKIDRINGWAYMOCK".into(),
            secret_access_key: "ringway-mock-secret".into(),
            session_token: Some("session-token-1".into()),
            expires: None,
        };
        // 2026-11-25T15:00:00Z
        let now = UNIX_EPOCH + Duration::from_secs(1_795_618_800);
        let body = br#"{"max_tokens":16}"#;
        let out = sign(
            &keys,
            "ca-central-1",
            "bedrock",
            "POST",
            "bedrock-runtime.ca-central-1.amazonaws.com",
            "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            &sha256_hex(body),
            now,
        )
        .unwrap();
        assert_eq!(header(&out, "x-amz-date"), Some("20261125T150000Z"));
        assert_eq!(
            header(&out, "x-amz-security-token"),
            Some("session-token-1")
        );
        assert_eq!(header(&out, "authorization"), Some(BOTOCORE_AUTHZ));
    }

    const BOTOCORE_AUTHZ: &str = "AWS4-HMAC-SHA256 \
        Credential=AKIDRINGWAYMOCK/20261125/ca-central-1/bedrock/aws4_request, \
        SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, \
        Signature=c061bd1924801a6969d2230d3c563560bf384343a7bed3061ca5a0d49aa2e955";
}
