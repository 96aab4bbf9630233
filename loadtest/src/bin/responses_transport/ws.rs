//! The client side of RFC 6455 this bench needs, sans-IO: the upgrade request, masked text
//! frames out, and unmasked server frames read back from a buffer.

/// The `Sec-WebSocket-Key` sent (any 16 bytes in base64 will do; the server's accept is not
/// checked: this is a bench against our own gateway, not a conformant client).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Largest server frame accepted: a Responses event is at most a few MB.
pub const MAX_FRAME: u64 = 64 << 20;

/// The upgrade request for `path` on `authority`.
pub fn upgrade_request(authority: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {authority}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// One masked text frame carrying `payload` (clients must mask, RFC 6455 §5.3).
pub fn text_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x81);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

/// A server frame: its opcode and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// The first whole frame in `buf` and the bytes it took; `Ok(None)` when more are needed.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, &'static str> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("server frame is masked");
    }
    let (len, at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME {
        return Err("server frame too large");
    }
    let end = at + len as usize;
    let Some(payload) = buf.get(at..end) else {
        return Ok(None);
    };
    Ok(Some((
        Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload: payload.to_vec(),
        },
        end,
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn masked_frames_unmask_to_their_payload() {
        for len in [0, 5, 125, 126, 65_535, 65_536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mask = [1, 2, 3, 250];
            let f = text_frame(&payload, mask);
            assert_eq!(f[0], 0x81);
            assert_eq!(f[1] & 0x80, 0x80);
            let at = f.len() - len;
            let back: Vec<u8> = f[at..]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            assert_eq!(back, payload);
            assert_eq!(&f[at - 4..at], &mask);
        }
    }

    #[test]
    fn server_frames_parse_whole_or_ask_for_more() {
        let mut wire = vec![0x81, 126, 0x01, 0x00];
        wire.extend(std::iter::repeat_n(b'x', 256));
        wire.extend_from_slice(&[0x88, 2, 0x03, 0xe8]);
        for cut in 0..wire.len() - 4 {
            assert_eq!(parse_frame(&wire[..cut]).unwrap(), None, "cut {cut}");
        }
        let (f, used) = parse_frame(&wire).unwrap().unwrap();
        assert_eq!(
            (f.fin, f.opcode, f.payload.len(), used),
            (true, 1, 256, 260)
        );
        let (f, used) = parse_frame(&wire[used..]).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload, used), (8, vec![0x03, 0xe8], 4));
        assert!(parse_frame(&[0x81, 0x85, 0, 0, 0, 0]).is_err());
    }
}
