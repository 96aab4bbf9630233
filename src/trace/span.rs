//! The span model the workers fill and the exporter encodes: ids, times as unix nanoseconds
//! (passed in, never read here), attributes, events and status. Owned data, so a finished
//! span crosses to the exporter thread as it is.

/// Which side of a call a span stands for (OTLP's `SpanKind` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The model call as the gateway served it.
    Server = 2,
    /// One attempt sent to a provider.
    Client = 3,
}

/// A span's status (OTLP's `Status.StatusCode` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    StrList(Vec<String>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Attributes: keys are the conventions' names, known at compile time.
pub type Attributes = Vec<(&'static str, Value)>;

/// Something that happened at one moment of a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub time: u64,
    pub name: &'static str,
    pub attributes: Attributes,
}

/// A finished span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// None: a root span.
    pub parent: Option<[u8; 8]>,
    /// The caller's `tracestate`, carried on.
    pub trace_state: Option<Box<str>>,
    pub name: String,
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub status: Code,
    /// The status message (an error's reason), empty for none.
    pub message: String,
}

/// Span and trace ids from a per-worker generator (xorshift64*, seeded apart per worker and
/// per start). Ids are not secrets, only unique: no system call per request.
#[derive(Debug)]
pub struct Ids {
    state: u64,
}

impl Ids {
    /// A generator seeded with `seed` (zero is replaced: xorshift would stay at zero).
    pub fn new(seed: u64) -> Ids {
        Ids {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A span id, never all zeros.
    pub fn span_id(&mut self) -> [u8; 8] {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return v.to_be_bytes();
            }
        }
    }

    /// A trace id, never all zeros.
    pub fn trace_id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&self.span_id());
        id
    }

    /// True with probability `ratio` (0.0 never, 1.0 always).
    pub fn sample(&mut self, ratio: f64) -> bool {
        if ratio >= 1.0 {
            return true;
        }
        if ratio <= 0.0 {
            return false;
        }
        // 53 random bits as a fraction in [0, 1).
        ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_nonzero_and_do_not_repeat() {
        let mut ids = Ids::new(0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let t = ids.trace_id();
            assert_ne!(t, [0; 16]);
            assert!(seen.insert(t));
        }
    }

    #[test]
    fn sampling_follows_the_ratio() {
        let mut ids = Ids::new(42);
        assert!((0..100).all(|_| ids.sample(1.0)));
        assert!((0..100).all(|_| !ids.sample(0.0)));
        let hits = (0..100_000).filter(|_| ids.sample(0.01)).count();
        assert!((700..1300).contains(&hits), "{hits}");
    }
}
