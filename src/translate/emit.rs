//! Hand-written JSON/SSE output for the stream machines: string escaping, integers, frames.
//! Streams write small fixed-shape objects per event, so templates beat a serializer.

/// Appends `s` as a quoted JSON string.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    crate::json::write_json_string(out, s);
}

/// Appends the escaped contents of `s` (no quotes).
pub(crate) fn push_str_contents(out: &mut Vec<u8>, s: &str) {
    crate::json::write_json_escaped(out, s);
}

/// Appends `n` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        // `n % 10 < 10`, so the narrowing is exact.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends `"key":` (the key is a trusted literal).
pub(crate) fn push_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends an optional string as JSON (`null` when absent).
pub(crate) fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends an Anthropic SSE frame: `event: <name>\ndata: <json>\n\n`.
pub(crate) fn anthropic_frame(out: &mut Vec<u8>, name: &str, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    body(out);
    out.extend_from_slice(b"\n\n");
}

/// Appends an OpenAI SSE frame: `data: <json>\n\n`.
pub(crate) fn openai_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"data: ");
    body(out);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Differential check against serde_json on strings covering every escape class.
    #[test]
    fn escaping_matches_serde_json() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet: Vec<char> = "ab\"\\\n\r\t\u{0}\u{1f}\u{7f}°é€😀/ <>\u{8}\u{c}"
            .chars()
            .collect();
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let s: String = (0..len)
                .map(|k| alphabet[((seed >> (k * 4)) as usize + k) % alphabet.len()])
                .collect();
            let mut out = Vec::new();
            push_str(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
        }
    }

    #[test]
    fn integers() {
        for n in [0u64, 7, 10, 4096, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
