//! A guest that attacks its host, one way per request: `?attack=NAME`.
//!
//! - `loop`: spins forever without ever calling the host.
//! - `memory`: allocates (and touches) memory until allocation fails.
//! - `recursion`: recurses until the call stack runs out.
//! - `sleep`: sleeps ten minutes through `wasi:clocks`.
//! - `endless-body`: sends a response whose body never ends.
//! - `headers`: sends a response with `count` (default 10000) headers.
//! - `resources`: creates host resources, never dropping one, until the
//!   host refuses.
//! - `print`: writes 64 MiB to stdout.
//! - `newlines`: writes 1 MiB of empty lines to stdout.
//! - `panic`: a Rust panic (which aborts the instance with a trap).
//! - `none`: no attack at all: 200 `ok`, to show the component still serves
//!   (or `status`, if given: a guest's own error status is not a limit).
//!
//! Each must cost only its own request: the host cuts it off at its limit
//! and keeps serving everything else.

use std::hint::black_box;
use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hostile;

impl Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        match kit::query_param(&request, "attack").as_deref() {
            Some("none") => {
                let status = kit::query_param(&request, "status")
                    .and_then(|status| status.parse().ok())
                    .unwrap_or(200);
                kit::respond(out, status, &[], b"ok\n");
                return;
            }
            Some("panic") => panic!("hostile guest: panicking on purpose"),
            Some("loop") => kit::attacks::spin(),
            Some("memory") => kit::attacks::hoard(),
            Some("recursion") => {
                black_box(recurse(black_box(0)));
            }
            Some("sleep") => kit::sleep_ms(600_000),
            Some("endless-body") => endless_body(out),
            Some("headers") => {
                let count = kit::query_param(&request, "count").and_then(|c| c.parse().ok());
                header_flood(out, count.unwrap_or(10_000));
                return;
            }
            Some("resources") => hoard_resources(),
            Some("print") => {
                let line = [b'p'; 1023];
                let mut stdout = std::io::stdout().lock();
                for _ in 0..(64 << 10) {
                    let _ = stdout.write_all(&line);
                    let _ = stdout.write_all(b"\n");
                }
            }
            Some("newlines") => {
                let _ = std::io::stdout().lock().write_all(&[b'\n'; 1 << 20]);
            }
            _ => {
                kit::respond(out, 400, &[], b"unknown attack\n");
                return;
            }
        }
        // Reaching this line means the attack was not stopped.
        kit::respond(out, 200, &[], b"survived\n");
    }
}

/// Never returns in practice: the base case is hidden from the optimiser
/// behind `black_box`, so the recursion is real.
fn recurse(depth: u64) -> u64 {
    if black_box(depth == u64::MAX) {
        return depth;
    }
    black_box(recurse(black_box(depth + 1))) + 1
}

fn header_flood(out: ResponseOutparam, count: u32) {
    let fields = Fields::new();
    for i in 0..count {
        if fields.append(&format!("x-flood-{i}"), b"1").is_err() {
            // The host's cap on a header block's size: send what fits.
            break;
        }
    }
    let response = OutgoingResponse::new(fields);
    let body = response.body().expect("body is taken once");
    ResponseOutparam::set(out, Ok(response));
    OutgoingBody::finish(body, None).expect("finish response body");
}

fn hoard_resources() -> ! {
    loop {
        std::mem::forget(black_box(Fields::new()));
    }
}

fn endless_body(out: ResponseOutparam) -> ! {
    let (response, body) = kit::response_head(200, &[("content-type", b"text/plain")]);
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("response body stream");
    let line = [b'x'; 1024];
    loop {
        if stream.write_all(&line).is_err() {
            // The client went away: nothing else to do but keep the CPU busy.
            kit::attacks::spin();
        }
    }
}

wasip2::http::proxy::export!(Hostile);
