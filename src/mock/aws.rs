//! The AWS front end the mock plays: SigV4 verification (the expected signature recomputed by
//! AWS's own signer from the request as received), Bedrock API keys, AWS-shaped error replies,
//! and the container credentials endpoint. Pure: the clock is a parameter.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::json;

use super::cloud::{amz_date, from_unix, json_reply, parse_amz_date, rfc3339};
use super::script::Step;

/// The access key id the mock knows.
pub const MOCK_ACCESS_KEY_ID: &str = "AKIDRINGWAYMOCK";
/// Its secret.
pub const MOCK_SECRET_KEY: &str = "ringway-mock-secret";
/// Bedrock API keys (bearer) start with this; the mock accepts any such key.
pub const BEDROCK_API_KEY_PREFIX: &str = "ABSK";
/// A session token starting with this is expired.
pub const EXPIRED_TOKEN_PREFIX: &str = "expired";
/// Clock skew AWS tolerates on `x-amz-date`.
pub const MAX_SKEW_SECS: i64 = 300;

/// An AWS error: shape name, HTTP status, message, extra body members.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    /// The shape, as in `x-amzn-ErrorType`.
    pub kind: &'static str,
    /// HTTP status.
    pub status: u16,
    /// `message`.
    pub message: String,
}

impl AwsError {
    /// An error of `kind` with its usual status.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        let status = match kind {
            "ThrottlingException" | "ModelNotReadyException" => 429,
            "ValidationException" | "ServiceQuotaExceededException" => 400,
            "ResourceNotFoundException" => 404,
            "ModelTimeoutException" => 408,
            "ModelErrorException" | "ModelStreamErrorException" => 424,
            "InternalServerException" => 500,
            "ServiceUnavailableException" => 503,
            _ => 403,
        };
        Self {
            kind,
            status,
            message: message.into(),
        }
    }

    /// The reply: status, `x-amzn-ErrorType`, `{"message":…}`.
    pub fn steps(&self, request_id: &str) -> Vec<Step> {
        json_reply(
            self.status,
            vec![
                (
                    "x-amzn-ErrorType",
                    format!(
                        "{}:http://internal.amazon.com/coral/com.amazon.coral.service/",
                        self.kind
                    ),
                ),
                ("x-amzn-requestid", request_id.to_owned()),
            ],
            &json!({ "message": self.message }),
        )
    }
}

/// What a request carries for authentication, as the mock reads it.
pub struct Presented<'a> {
    /// Method.
    pub method: &'a str,
    /// Request target as sent (path and query, still encoded).
    pub target: &'a str,
    /// Headers as received (any case).
    pub headers: Vec<(&'a str, &'a str)>,
    /// Body.
    pub body: &'a [u8],
}

impl Presented<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Checks a request's credentials as the AWS front end does: `Ok` or the 403 AWS answers.
pub fn authenticate(req: &Presented<'_>, now: SystemTime) -> Result<(), AwsError> {
    let Some(auth) = req.header("authorization") else {
        return Err(AwsError::new(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    if let Some(key) = auth
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("bearer "))
        .and_then(|_| auth.get(7..))
    {
        return if key.starts_with(BEDROCK_API_KEY_PREFIX) {
            Ok(())
        } else {
            Err(invalid_token())
        };
    }
    let Some(fields) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(AwsError::new(
            "IncompleteSignatureException",
            format!("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={auth}"),
        ));
    };
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    };
    let (Some(credential), Some(signed), Some(signature)) = (
        field("Credential"),
        field("SignedHeaders"),
        field("Signature"),
    ) else {
        return Err(AwsError::new(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        ));
    };
    // Credential=AKID/yyyymmdd/region/service/aws4_request
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, _day, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(AwsError::new(
            "IncompleteSignatureException",
            format!("Credential should be scoped to a valid region. Credential={credential}"),
        ));
    };
    if *akid != MOCK_ACCESS_KEY_ID {
        return Err(invalid_token());
    }
    let token = req.header("x-amz-security-token");
    if token.is_some_and(|t| t.starts_with(EXPIRED_TOKEN_PREFIX)) {
        return Err(AwsError::new(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    let Some(date) = req.header("x-amz-date").and_then(parse_amz_date) else {
        return Err(AwsError::new(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let now_secs = super::cloud::unix(now);
    if date < now_secs - MAX_SKEW_SECS {
        return Err(AwsError::new(
            "InvalidSignatureException",
            format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                amz_date(date),
                amz_date(now_secs - MAX_SKEW_SECS),
                amz_date(now_secs)
            ),
        ));
    }
    if date > now_secs + MAX_SKEW_SECS {
        return Err(AwsError::new(
            "InvalidSignatureException",
            format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                amz_date(date),
                amz_date(now_secs + MAX_SKEW_SECS),
                amz_date(now_secs)
            ),
        ));
    }
    let names: Vec<&str> = signed.split(';').collect();
    let expected = expected_signature(req, &names, token, region, service, from_unix(date));
    if expected.as_deref() != Some(signature) {
        return Err(AwsError::new(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(())
}

fn invalid_token() -> AwsError {
    AwsError::new(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

/// The signature the mock's secret gives this request over exactly the headers it lists.
fn expected_signature(
    req: &Presented<'_>,
    signed: &[&str],
    token: Option<&str>,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Option<String> {
    let host = req.header("host")?;
    let uri = format!("http://{host}{}", req.target);
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| signed.iter().any(|s| n.eq_ignore_ascii_case(s)))
        .copied()
        .collect();
    let signs_token = signed.contains(&"x-amz-security-token");
    let identity = Credentials::new(
        MOCK_ACCESS_KEY_ID,
        MOCK_SECRET_KEY,
        token.filter(|_| signs_token).map(str::to_owned),
        None,
        "ringway-mock",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign what the client listed, nothing taken out.
    settings.excluded_headers = Some(Vec::new());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let signable = SignableRequest::new(
        req.method,
        uri,
        headers.into_iter(),
        SignableBody::Bytes(req.body),
    )
    .ok()?;
    let (_, signature) = sign(signable, &params).ok()?.into_parts();
    Some(signature)
}

/// The container credentials endpoint's answer (`GET /mock/aws-credentials`).
pub fn container_credentials(n: u64, now: SystemTime, ttl_secs: u64) -> Vec<Step> {
    let expires =
        super::cloud::unix(now).saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2));
    json_reply(
        200,
        Vec::new(),
        &json!({
            "AccessKeyId": MOCK_ACCESS_KEY_ID,
            "SecretAccessKey": MOCK_SECRET_KEY,
            "Token": format!("mock-session-{n}"),
            "Expiration": rfc3339(expires),
        }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn signed(token: Option<&str>, date: SystemTime, secret: &str) -> Vec<(String, String)> {
        let identity = Credentials::new(
            MOCK_ACCESS_KEY_ID,
            secret,
            token.map(str::to_owned),
            None,
            "t",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("ca-central-1")
            .name("bedrock")
            .time(date)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", "127.0.0.1:9"),
            ("content-type", "application/json"),
        ];
        let req = SignableRequest::new(
            "POST",
            "http://127.0.0.1:9/model/us.anthropic.claude-x-v1%3A0/invoke",
            headers.into_iter(),
            SignableBody::Bytes(b"{}"),
        )
        .unwrap();
        let (instr, _) = sign(req, &params).unwrap().into_parts();
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        out.extend(instr.headers().map(|(n, v)| (n.to_owned(), v.to_owned())));
        out
    }

    fn check(headers: &[(String, String)], now: SystemTime) -> Result<(), AwsError> {
        let req = Presented {
            method: "POST",
            target: "/model/us.anthropic.claude-x-v1%3A0/invoke",
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            body: b"{}",
        };
        authenticate(&req, now)
    }

    #[test]
    fn sigv4_verdicts() {
        let now = SystemTime::now();
        assert_eq!(check(&signed(None, now, MOCK_SECRET_KEY), now), Ok(()));
        assert_eq!(
            check(&signed(Some("tok"), now, MOCK_SECRET_KEY), now),
            Ok(())
        );
        let bad = check(&signed(None, now, "other"), now).unwrap_err();
        assert_eq!(bad.kind, "InvalidSignatureException");
        assert!(bad
            .message
            .starts_with("The request signature we calculated"));
        let old = now - std::time::Duration::from_secs(600);
        let skew = check(&signed(None, old, MOCK_SECRET_KEY), now).unwrap_err();
        assert!(skew.message.starts_with("Signature expired: "), "{skew:?}");
        let exp = check(&signed(Some("expired-1"), now, MOCK_SECRET_KEY), now).unwrap_err();
        assert_eq!(exp.kind, "ExpiredTokenException");
        assert_eq!(check(&[], now).unwrap_err().status, 403);
    }
}
