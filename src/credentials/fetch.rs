//! A small blocking HTTP/1.1 client for the credentials refresher thread (never a worker):
//! one request per connection, http or https (rustls, webpki roots), bounded in time and size.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;

use crate::http1::{decode_head, BodyCodec, BodyStep};

/// Longest wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for any one read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole exchange may take (a server dripping bytes under [`IO_TIMEOUT`] each).
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response body accepted (credential answers are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// Longest URL accepted.
const MAX_URL: usize = 2048;

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// Host as written (brackets stripped from an IPv6 literal).
    pub host: String,
    pub port: u16,
    /// Path and query, `/` at least.
    pub target: String,
}

impl Url {
    /// Parse `url`: a scheme, a host, an optional port, an optional path; no user info.
    pub fn parse(url: &str) -> Result<Url, String> {
        if url.len() > MAX_URL || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("`{}` is not a usable URL", super::clip(url)));
        }
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "`{}` is not an http:// or https:// URL",
                super::clip(url)
            ));
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        if authority.contains('@') || authority.is_empty() {
            return Err(format!("`{}` has no usable host", super::clip(url)));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{}`: unclosed [", super::clip(url)))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("`{}`: bad port", super::clip(url)))?,
                None if tail.is_empty() => default_port,
                None => return Err(format!("`{}`: bad host", super::clip(url))),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    p.parse()
                        .map_err(|_| format!("`{}`: bad port", super::clip(url)))?,
                ),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("`{}` has no host", super::clip(url)));
        }
        Ok(Url {
            tls,
            host,
            port,
            target,
        })
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A response: status, headers (names lower-case), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(cfg))
        })
        .clone()
}

/// Send one request and read the whole response (blocking, bounded).
pub fn request(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    let mut last = format!("no address for {}", url.host);
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let tcp = tcp.ok_or(last)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        url.target,
        url.host_header(),
        body.len()
    );
    for (n, v) in headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    if url.tls {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| format!("bad TLS name {}: {e}", url.host))?;
        let conn =
            rustls::ClientConnection::new(tls_config()?, name).map_err(|e| format!("TLS: {e}"))?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        exchange(&mut stream, &out)
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, &out)
    }
}

fn exchange(stream: &mut (impl Read + Write), out: &[u8]) -> Result<Response, String> {
    let deadline = std::time::Instant::now() + TOTAL_TIMEOUT;
    stream.write_all(out).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    let mut eof = false;
    let head = loop {
        if let Some(h) = decode_head(&mut buf).map_err(|e| format!("bad response head: {e:?}"))? {
            break h;
        }
        if eof {
            return Err("connection closed before a response".into());
        }
        eof = read_some(stream, &mut chunk, &mut buf, deadline)?;
    };
    let mut codec = BodyCodec::new(head.framing);
    let mut body = Vec::new();
    loop {
        let step = if eof {
            codec.decode_eof(&mut buf)
        } else {
            codec.decode(&mut buf)
        }
        .map_err(|e| format!("bad response body: {e:?}"))?;
        match step {
            BodyStep::Data(d) => {
                if body.len() + d.len() > MAX_BODY {
                    return Err(format!("response body over {MAX_BODY} bytes"));
                }
                body.extend_from_slice(&d);
            }
            BodyStep::End => break,
            BodyStep::NeedMore => {
                if eof {
                    return Err("response body cut short".into());
                }
                eof = read_some(stream, &mut chunk, &mut buf, deadline)?;
            }
        }
    }
    Ok(Response {
        status: head.status,
        headers: head
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect(),
        body,
    })
}

/// Read what is there into `buf`; true at the end of the stream.
fn read_some(
    stream: &mut impl Read,
    chunk: &mut [u8],
    buf: &mut BytesMut,
    deadline: std::time::Instant,
) -> Result<bool, String> {
    if std::time::Instant::now() >= deadline {
        return Err(format!("no complete answer within {TOTAL_TIMEOUT:?}"));
    }
    match stream.read(chunk) {
        Ok(0) => Ok(true),
        Ok(n) => {
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            Ok(false)
        }
        // A TLS peer that closes without close_notify: the framing decides if that was early.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err("timed out".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:9000/mock/aws-credentials").unwrap();
        assert_eq!(
            u,
            Url {
                tls: false,
                host: "127.0.0.1".into(),
                port: 9000,
                target: "/mock/aws-credentials".into()
            }
        );
        assert_eq!(u.host_header(), "127.0.0.1:9000");
        let u = Url::parse("https://oauth2.googleapis.com/token").unwrap();
        assert_eq!(
            (u.tls, u.port, u.host_header()),
            (true, 443, "oauth2.googleapis.com".into())
        );
        let u = Url::parse("http://[fd00:ec2::23]/creds?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("fd00:ec2::23", 80, "/creds?x=1")
        );
        assert_eq!(u.host_header(), "[fd00:ec2::23]");
        assert_eq!(Url::parse("http://h?q").unwrap().target, "/?q");
        for bad in [
            "ftp://h/",
            "http://",
            "http://u@h/",
            "http://h:x/",
            "http://h/a b",
            "h:80",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("a", "x y/+")
            ]),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&a=x%20y%2F%2B"
        );
    }

    #[test]
    fn a_chunked_answer_is_read_whole_and_a_huge_one_refused() {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let answers: [Vec<u8>; 2] = [
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: b\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    .to_vec(),
                [
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", MAX_BODY + 1).into_bytes(),
                    vec![b'x'; MAX_BODY + 1],
                ]
                .concat(),
            ];
            for a in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req).unwrap();
                let _ = s.write_all(&a);
            }
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
        let r = request("GET", &url, &[("metadata-flavor", "Google")], b"").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.header("x-a"), Some(&b"b"[..]));
        let e = request("GET", &url, &[], b"").unwrap_err();
        assert!(e.contains("over"), "{e}");
        server.join().unwrap();
    }
}
