//! `hostile` and `hostile-p3`: which attack a request asks for
//! (`?attack=NAME` and its parameters, with their defaults), and the
//! answers both guests give. Each guest carries the attacks out through
//! its own world; `hostile-p3`'s crate documents them all.

/// The answer of a request that attacked nothing.
pub const OK: &str = "ok\n";
/// The answer of an attack the host did not stop.
pub const SURVIVED: &str = "survived\n";
/// The answer to an attack this guest does not know.
pub const UNKNOWN: &str = "unknown attack\n";
/// The whole body sent before `panic-after-body` panics.
pub const WHOLE: &str = "whole\n";
/// The start of the body sent before `panic-mid-body` panics.
pub const PARTIAL: &str = "partial\n";
/// What `files` and `bodies` say once they let go of what they held.
pub const RELEASED: &str = "released\n";

/// What `panic` panics with.
pub const PANIC: &str = "hostile guest: panicking on purpose";
/// What `panic-after-body` panics with.
pub const PANIC_AFTER_BODY: &str = "hostile guest: panicking after the body on purpose";
/// What `panic-mid-body` panics with.
pub const PANIC_MID_BODY: &str = "hostile guest: panicking mid-body on purpose";

/// How long `sleep` sleeps: ten minutes.
pub const SLEEP_MS: u64 = 600_000;
/// `files` stops opening after this many, refused or not.
pub const MAX_FILES: usize = 100_000;

/// One request's attack.
pub enum Attack {
    /// No attack: answers [`OK`] with `status`.
    None {
        status: u16,
    },
    Silent,
    Panic,
    PanicMidBody,
    PanicAfterBody,
    Loop,
    Memory,
    Recursion,
    Sleep,
    EndlessBody,
    Headers {
        count: u32,
    },
    Resources,
    Print,
    Newlines,
    Files {
        path: String,
    },
    Connections {
        url: String,
        count: u32,
    },
    Fields,
    Method {
        count: usize,
        size: usize,
    },
    Target {
        count: usize,
        size: usize,
    },
    /// (Each world has its own default `count`.)
    Bodies {
        count: Option<usize>,
        url: String,
    },
    ErrorCode {
        size: usize,
    },
    Tasks {
        how: String,
    },
    Streams,
    Random {
        bytes: u64,
        chunk: u64,
    },
    Escape {
        path: Option<String>,
        write: bool,
    },
    Env {
        name: Option<String>,
    },
    Outbound {
        url: String,
    },
    Unknown,
}

impl Attack {
    /// The attack the query parameters `param` reads ask for.
    pub fn asked(param: impl Fn(&str) -> Option<String>) -> Attack {
        let number = |name: &str| param(name).and_then(|value| value.parse::<usize>().ok());
        let text = |name: &str| param(name).unwrap_or_default();
        match param("attack").as_deref() {
            Some("none") => Attack::None {
                status: param("status")
                    .and_then(|status| status.parse().ok())
                    .unwrap_or(200),
            },
            Some("silent") => Attack::Silent,
            Some("panic") => Attack::Panic,
            Some("panic-mid-body") => Attack::PanicMidBody,
            Some("panic-after-body") => Attack::PanicAfterBody,
            Some("loop") => Attack::Loop,
            Some("memory") => Attack::Memory,
            Some("recursion") => Attack::Recursion,
            Some("sleep") => Attack::Sleep,
            Some("endless-body") => Attack::EndlessBody,
            Some("headers") => Attack::Headers {
                count: param("count")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(10_000),
            },
            Some("resources") => Attack::Resources,
            Some("print") => Attack::Print,
            Some("newlines") => Attack::Newlines,
            Some("files") => Attack::Files { path: text("path") },
            Some("connections") => Attack::Connections {
                url: text("url"),
                count: param("count").and_then(|c| c.parse().ok()).unwrap_or(100),
            },
            Some("fields") => Attack::Fields,
            Some("method") => Attack::Method {
                count: number("count").unwrap_or(32),
                size: number("size").unwrap_or(64 << 20),
            },
            Some("target") => Attack::Target {
                count: number("count").unwrap_or(64),
                size: number("size").unwrap_or(1 << 20),
            },
            Some("bodies") => Attack::Bodies {
                count: number("count"),
                url: text("url"),
            },
            Some("error-code") => Attack::ErrorCode {
                size: number("size").unwrap_or(16 << 20),
            },
            Some("tasks") => Attack::Tasks { how: text("how") },
            Some("streams") => Attack::Streams,
            Some("random") => Attack::Random {
                bytes: param("bytes")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(1 << 30),
                chunk: param("chunk")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(u64::MAX),
            },
            Some("escape") => Attack::Escape {
                path: param("path"),
                write: param("write").as_deref() == Some("1"),
            },
            Some("env") => Attack::Env {
                name: param("name"),
            },
            Some("outbound") => Attack::Outbound { url: text("url") },
            _ => Attack::Unknown,
        }
    }
}

/// The message of `error-code`'s `internal-error`: `size` bytes.
pub fn error_message(size: usize) -> String {
    "e".repeat(size)
}

/// The name of header `i` of `headers`' flood.
pub fn flood_header(i: u32) -> String {
    format!("x-flood-{i}")
}

/// The method each request of `method` is given: `size` bytes.
pub fn long_method(size: usize) -> String {
    "A".repeat(size)
}

/// The path each request of `target` is given: `size` bytes.
pub fn long_path(size: usize) -> String {
    format!("/{}", "p".repeat(size.saturating_sub(1)))
}

/// `method`'s answer.
pub fn methods_refused(refused: usize, count: usize) -> String {
    format!("method refused {refused} of {count}\n")
}

/// `target`'s answer.
pub fn targets_set(set: usize, count: usize) -> String {
    format!("targets set {set} of {count}\n")
}

/// `files`' first line: how many it opened, and why the next was refused.
pub fn opened(count: usize, error: &str) -> String {
    format!("opened {count}: {error}\n")
}

/// What `files` says when nothing was refused.
pub const NOTHING_REFUSED: &str = "nothing refused";

/// `connections`' line each time more of its calls are settled.
pub fn settled(refused: u32, failed: u32, answered: u32, first_failure: &str) -> String {
    format!("refused {refused} failed {failed} answered {answered} {first_failure}\n")
}

/// `fields`: the 64 KiB header map it clones, as entries.
pub fn big_fields() -> impl Iterator<Item = (String, [u8; 1000])> {
    (0..64).map(|i| (format!("x-big-{i}"), [b'v'; 1000]))
}
