//! JSON model splice: the serde_json and simd-json parsers agree on any input, and splicing a
//! new model into an accepted body gives a valid body with only that model changed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::json::{inspect_request_serde, inspect_request_simd, splice_string, SimdScratch};
use serde_json::Value;

const NEW_MODEL: &str = "up\"stream\\ 模型\n😀";

fuzz_target!(|data: &[u8]| {
    let mut scratch = SimdScratch::new();
    let serde = inspect_request_serde(data);
    assert_eq!(serde, inspect_request_simd(data, &mut scratch));
    let Ok(info) = serde else { return };
    let spliced = splice_string(data, info.model_span.clone(), NEW_MODEL).unwrap();
    let again = inspect_request_serde(&spliced).unwrap();
    assert_eq!(
        (again.model.as_str(), again.stream),
        (NEW_MODEL, info.stream)
    );
    assert_eq!(again.model_span.start, info.model_span.start);
    assert_eq!(
        Ok(&again),
        inspect_request_simd(&spliced, &mut scratch).as_ref()
    );
    // `Value` refuses numbers beyond f64 and 128 levels of nesting; compare when it can read it.
    if let Ok(mut want) = serde_json::from_slice::<Value>(data) {
        want["model"] = Value::String(NEW_MODEL.to_owned());
        assert_eq!(serde_json::from_slice::<Value>(&spliced).unwrap(), want);
    }
});
