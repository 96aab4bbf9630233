//! Usage reading never panics on any provider bytes, and what it reads does not depend on how
//! the answer was cut into reads: a body read through `BodyMeter` in two pieces (short enough
//! to be held whole) agrees with `from_body`, and an event stream split anywhere gives the
//! meter the same numbers as the stream whole.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::sse::Decoder;
use ringway::usage::{from_body, BodyMeter, Meter, BODY_HEAD_BYTES};

fn meter(format: Format, reads: &[&[u8]]) -> ringway::usage::Metered {
    let mut dec = Decoder::new(1 << 20);
    let mut m = Meter::new(format);
    for r in reads {
        dec.push(Bytes::copy_from_slice(r));
        while let Ok(Some(ev)) = dec.next_event() {
            m.on_event(ev.event.as_deref(), ev.data.as_deref().unwrap_or_default());
        }
    }
    m.metered()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = [Format::OpenAi, Format::Anthropic, Format::Responses][usize::from(selector % 3)];
    let at = usize::from(selector) * rest.len() / 256;
    let (a, b) = rest.split_at(at);
    let whole = from_body(format, rest);
    if rest.len() <= BODY_HEAD_BYTES {
        let mut bm = BodyMeter::new(format);
        bm.push(a);
        bm.push(b);
        assert_eq!(bm.finish(), whole);
    }
    assert_eq!(meter(format, &[a, b]), meter(format, &[rest]));
});
