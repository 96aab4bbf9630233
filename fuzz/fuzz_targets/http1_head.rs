//! Request head parser on arbitrary bytes: no panic; a parsed head covers a prefix of the
//! input, and reparsing exactly its bytes yields the same head.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringway::http1::{parse_request_head, MAX_HEAD_BYTES};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let Ok(Some(head)) = parse_request_head(&mut buf, MAX_HEAD_BYTES) else {
        return;
    };
    assert!(head.head_len() <= data.len());
    assert_eq!(head.head_len() + buf.len(), data.len());
    assert_eq!(&head.raw()[..], &data[..head.head_len()]);
    let _ = (
        head.target(),
        head.path(),
        head.query(),
        head.headers().count(),
    );
    let mut again = BytesMut::from(&head.raw()[..]);
    assert_eq!(
        parse_request_head(&mut again, MAX_HEAD_BYTES),
        Ok(Some(head))
    );
    assert!(again.is_empty());
});
