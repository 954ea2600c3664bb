//! Tries to use a capability and reports what happened, so tests can check
//! that grants work and everything else is denied:
//!
//! - `?op=read&path=P`: read file P (200 with its contents).
//! - `?op=write&path=P`: write `written by guest` to P (200 `written`).
//! - `?op=env`: list the environment, one `KEY=VALUE` per line.
//! - `?op=getenv&name=N`: one variable (200 with its value, or 404).
//!
//! A refused operation answers 403 with `denied: <the error>`.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Capabilities;

impl Guest for Capabilities {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let param = |name| kit::query_param(&request, name).unwrap_or_default();
        let path = param("path");
        let (status, body) = match param("op").as_str() {
            "read" => match std::fs::read(&path) {
                Ok(contents) => (200, contents),
                Err(err) => denied(err),
            },
            "write" => match std::fs::write(&path, b"written by guest") {
                Ok(()) => (200, b"written".to_vec()),
                Err(err) => denied(err),
            },
            "env" => {
                let lines: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect();
                (200, lines.concat().into_bytes())
            }
            "getenv" => match std::env::var(param("name")) {
                Ok(value) => (200, value.into_bytes()),
                Err(err) => (404, format!("{err}").into_bytes()),
            },
            _ => (400, b"unknown op".to_vec()),
        };
        kit::respond(out, status, &[("content-type", b"text/plain")], &body);
    }
}

fn denied(err: std::io::Error) -> (u16, Vec<u8>) {
    (403, format!("denied: {err}").into_bytes())
}

wasip2::http::proxy::export!(Capabilities);
