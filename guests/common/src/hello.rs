//! `hello` and `hello-p3`: the same greeting for every request.

/// The response's headers.
pub const HEADERS: &[(&str, &[u8])] = &[("content-type", b"text/plain; charset=utf-8")];

/// The response's body.
pub const GREETING: &str = "Hello from Mayfly!\n";
