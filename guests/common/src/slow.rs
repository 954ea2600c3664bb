//! `slow` and `slow-p3`: a request that waits before it answers.
//!
//! - `?ms=N`: sleeps N milliseconds (at most a minute; 100 if not given),
//!   then responds `slept N ms`.
//! - `&head_first=1`: sends the response head and a first line
//!   ([`SLEEPING`]) before it sleeps, so a client can tell that its
//!   request is in flight.

/// The longest a request may ask to sleep.
const MAX_MS: u64 = 60_000;

/// The response's headers.
pub const HEADERS: &[(&str, &[u8])] = &[("content-type", b"text/plain")];

/// The first line of a `head_first` response.
pub const SLEEPING: &str = "sleeping\n";

/// What a request asks for, from its query parameters (`param`).
pub struct Nap {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
    /// Whether to send the head and [`SLEEPING`] first.
    pub head_first: bool,
}

impl Nap {
    /// The nap asked for by the query parameters `param` reads.
    pub fn asked(param: impl Fn(&str) -> Option<String>) -> Nap {
        let ms = param("ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(100)
            .min(MAX_MS);
        Nap {
            ms,
            head_first: param("head_first").as_deref() == Some("1"),
        }
    }

    /// What is sent once the nap is over.
    pub fn done(&self) -> String {
        format!("slept {} ms\n", self.ms)
    }
}
