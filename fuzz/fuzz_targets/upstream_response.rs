//! Provider responses: head decoder, then body framing. The first byte picks a split pattern;
//! the rest fed in those pieces, then closed, must give what it gives fed whole: same status
//! and framing, same body bytes, same ending (complete, truncated, or which error).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[path = "common/split.rs"]
mod split;
use ringway::http1::{decode_head, BodyCodec, BodyStep};

#[derive(Debug, PartialEq)]
struct Outcome {
    head: Option<(u16, String, bool)>,
    body: Vec<u8>,
    end: String,
}

fn run(input: &[u8], mut piece: impl FnMut() -> usize) -> Outcome {
    let mut out = Outcome {
        head: None,
        body: Vec::new(),
        end: String::new(),
    };
    let (mut buf, mut rest) = (BytesMut::new(), input);
    let mut feed = |buf: &mut BytesMut, rest: &mut &[u8]| -> bool {
        if rest.is_empty() {
            return false;
        }
        let (now, later) = rest.split_at(piece().clamp(1, rest.len()));
        buf.extend_from_slice(now);
        *rest = later;
        true
    };
    let head = loop {
        match decode_head(&mut buf) {
            Ok(Some(h)) => break h,
            Ok(None) if feed(&mut buf, &mut rest) => {}
            Ok(None) => {
                out.end = "closed before the head".into();
                return out;
            }
            Err(e) => {
                out.end = format!("head error {:?}", std::mem::discriminant(&e));
                return out;
            }
        }
    };
    out.head = Some((head.status, format!("{:?}", head.framing), head.reusable));
    let mut body = BodyCodec::new(head.framing);
    loop {
        let step = match body.decode(&mut buf) {
            Ok(BodyStep::NeedMore) if feed(&mut buf, &mut rest) => continue,
            Ok(BodyStep::NeedMore) => body.decode_eof(&mut buf),
            other => other,
        };
        match step {
            Ok(BodyStep::Data(d)) => out.body.extend_from_slice(&d),
            Ok(BodyStep::End) => {
                out.end = format!("end, {} left over", buf.len() + rest.len());
                return out;
            }
            Ok(BodyStep::NeedMore) => {
                out.end = "starved".into();
                return out;
            }
            Err(e) => {
                out.end = format!("body error {e}");
                return out;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pattern, input)) = data.split_first() else {
        return;
    };
    let split = run(input, split::pieces(pattern, 64));
    assert_eq!(split, run(input, || usize::MAX));
});
