//! Entities the PII targets drop into their text with the byte 0xFF then an index: random
//! bytes would almost never form a Luhn-valid card, a mod-97 IBAN or a dictionary term by
//! themselves. Both targets search with the same detector: dictionary terms and operator
//! regexes for the entities of the list that no built-in detector finds.

use std::sync::OnceLock;

use ringway::pii::{Detector, Kind, Term};

/// The detector, built once per process (None if it cannot be, which no input can cause).
pub fn detector() -> Option<&'static Detector> {
    static D: OnceLock<Option<Detector>> = OnceLock::new();
    D.get_or_init(|| {
        let terms = [
            Term {
                text: "Jane Doe".into(),
                kind: Kind::Name,
            },
            Term {
                text: "García".into(),
                kind: Kind::Name,
            },
            Term {
                text: "Halifax".into(),
                kind: Kind::Place,
            },
        ];
        Detector::new(&["EMP-\\d{6}".into(), "\\b9\\d{5}\\b".into()], &terms).ok()
    })
    .as_ref()
}

pub const ENTITIES: &[&str] = &[
    "jane.doe@corp.example.io",
    "+44 20 7946 0958",
    "(415) 555-2671",
    "4111 1111 1111 1111",
    "378282246310005",
    "123-45-6789",
    "130 692 544",
    "GB82 WEST 1234 5698 7654 32",
    "10.20.30.40",
    "2001:470:1f0b:12::1",
    "Jane Doe",
    "Halifax",
    "EMP-123456",
    "020 7946 0958",
    "DE89370400440532013000",
    "García",
    "912345",
    "4111111111111111",
    "192.0.2.7",
];
