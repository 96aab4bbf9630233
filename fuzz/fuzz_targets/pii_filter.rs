//! PII's escaped-string filter (`pii::lines::plain_escapes`): the build this CPU picks (the
//! role tables in AVX2 lanes, where it has AVX2) says what the byte-class masks say, on any
//! bytes, for every way a pattern's needs can sit across the 64-byte windows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (picked, masks) = ringway::pii::plain_escapes_both(data);
    assert_eq!(picked, masks, "{:?}", String::from_utf8_lossy(data));
});
