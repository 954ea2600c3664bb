//! Tries to use a capability and reports what happened, so tests can check
//! that grants work and everything else is denied:
//!
//! - `?op=read&path=P`: read file P (200 with its contents).
//! - `?op=write&path=P`: write `written by guest` to P (200 `written`).
//! - `?op=env`: list the environment, one `KEY=VALUE` per line.
//! - `?op=getenv&name=N`: one variable (200 with its value, or 404).
//! - `?op=fetch&url=U`: a GET to U through `wasi:http/outgoing-handler`
//!   (200 with `STATUS BODY` of the upstream answer); with `&times=N`, N
//!   GETs one after another, answered with the last.
//! - `?op=connect&addr=A`: a raw TCP connection through `wasi:sockets`
//!   (200 `connected`).
//! - `?op=print&bytes=N`: N bytes of `o` lines on stdout and one line on
//!   stderr (200 `printed`); with `&text=T`, T (percent-decoded) as one
//!   more line on stdout.
//!
//! A refused operation answers 403 with `denied: <the error>`.

use std::io::Write as _;
use wasip2::exports::http::incoming_handler::Guest;

use wasip2::http::types::{ErrorCode, IncomingRequest, ResponseOutparam};

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
                let lines: Vec<String> = std::env::vars()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                (200, lines.concat().into_bytes())
            }
            "getenv" => match std::env::var(param("name")) {
                Ok(value) => (200, value.into_bytes()),
                Err(err) => (404, format!("{err}").into_bytes()),
            },
            "fetch" => {
                let times = param("times").parse().unwrap_or(1usize).clamp(1, 1000);
                let url = param("url");
                (1..times).for_each(|_| drop(fetch(&url)));
                fetch(&url)
            }
            "connect" => match std::net::TcpStream::connect(param("addr")) {
                Ok(_) => (200, b"connected".to_vec()),
                Err(err) => denied(err),
            },
            "print" => {
                let bytes: usize = param("bytes").parse().unwrap_or(0);
                print_lines(bytes);
                let text = param("text");
                if !text.is_empty() {
                    println!("{text}");
                }
                eprintln!("a line on stderr");
                (200, b"printed".to_vec())
            }
            _ => (400, b"unknown op".to_vec()),
        };
        kit::respond(out, status, &[("content-type", b"text/plain")], &body);
    }
}

/// A GET to `url`, answered with the upstream's status and body.
fn fetch(url: &str) -> (u16, Vec<u8>) {
    match kit::http_get(url) {
        Ok((status, body)) => {
            let mut contents = format!("{status} ").into_bytes();
            contents.extend_from_slice(&body);
            (200, contents)
        }
        Err(kit::GetError::Url(why)) => (400, why.as_bytes().to_vec()),
        Err(kit::GetError::Refused(code)) => refused(code),
        Err(kit::GetError::Broken(why)) => (502, why.into_bytes()),
    }
}

/// An outbound request that failed: 403 if the host refused it, 502 for
/// any other error code.
fn refused(code: ErrorCode) -> (u16, Vec<u8>) {
    let status = match code {
        ErrorCode::HttpRequestDenied => 403,
        _ => 502,
    };
    (status, format!("denied: {code:?}").into_bytes())
}

fn print_lines(mut bytes: usize) {
    let line = [b'o'; 63];
    let mut stdout = std::io::stdout().lock();
    while bytes > 0 {
        let n = bytes.min(64);
        let _ = stdout.write_all(&line[..n - 1]);
        let _ = stdout.write_all(b"\n");
        bytes -= n;
    }
    let _ = stdout.flush();
}

fn denied(err: std::io::Error) -> (u16, Vec<u8>) {
    (403, format!("denied: {err}").into_bytes())
}

wasip2::http::proxy::export!(Capabilities);
