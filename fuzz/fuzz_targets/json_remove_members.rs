//! Removing a gateway-only field: for any body the request parsers accept, cutting out every
//! top-level `allow_fallbacks` leaves a body they accept too, with the same `model`, and equal
//! to the original with that key removed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::json::{inspect_request_serde, remove_members};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = inspect_request_serde(data) else {
        return;
    };
    let (out, _) = remove_members(data, "allow_fallbacks").unwrap();
    let again = inspect_request_serde(&out).unwrap();
    assert_eq!(
        (again.model.as_str(), again.stream),
        (info.model.as_str(), info.stream)
    );
    assert_eq!(again.allow_fallbacks, ringway::json::Flag::Absent);
    // `Value` refuses numbers beyond f64 and 128 levels of nesting; compare when it can read it.
    if let Ok(Value::Object(mut want)) = serde_json::from_slice::<Value>(data) {
        want.remove("allow_fallbacks");
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            Value::Object(want)
        );
    }
});
