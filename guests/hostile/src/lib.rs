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
//! - `files`: opens the file at `path` over and over, closing none, until
//!   the host refuses; streams `opened N: ERROR`, then holds every file
//!   until the request body ends.
//! - `connections`: sends `count` GETs to `url` at once and holds them;
//!   streams a line each time more of them are settled (`refused` by the
//!   host's budget, `failed` otherwise, `answered`), until all are.
//! - `fields`: builds a 64 KiB header map, then clones it and deletes an
//!   absent header from each clone until the host refuses (each change
//!   copies the whole map).
//! - `method`: builds `count` (default 32) outgoing requests, never sent,
//!   each given a method of its own of `size` bytes (default 64 MiB);
//!   answers `method refused N of COUNT`.
//! - `target`: builds outgoing requests, never sent, each given a path of
//!   `size` bytes (default 1 MiB), `count` times (default 64); answers
//!   `targets set N of COUNT`.
//! - `bodies`: builds `count` (default 300) outgoing requests, never sent,
//!   and fills each one's body until the host takes no more, holding them
//!   all; answers `filled N bodies with B bytes`.
//! - `error-code`: answers with `error-code.internal-error` carrying a
//!   message of `size` bytes (default 16 MiB).
//! - `panic`: a Rust panic (which aborts the instance with a trap).
//! - `panic-after-body`: sends a whole response (`whole`, body finished),
//!   then panics: the response must still arrive whole.
//! - `silent`: returns without setting a response at all.
//! - `none`: no attack at all: 200 `ok`, to show the component still serves
//!   (or `status`, if given: a guest's own error status is not a limit).
//!
//! The attacks' names, parameters and answers are `common::hostile`'s,
//! shared with `hostile-p3`. Each must cost only its own request: the host
//! cuts it off at its limit and keeps serving everything else.

use std::hint::black_box;
use std::io::Write as _;

use common::attacks::{hoard, recurse, spin};
use common::hostile::{self, Attack};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hostile;

impl Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        match Attack::asked(|name| kit::query_param(&request, name)) {
            Attack::None { status } => {
                kit::respond(out, status, &[], hostile::OK.as_bytes());
                return;
            }
            Attack::Silent => {
                drop(out);
                return;
            }
            Attack::Panic => panic!("{}", hostile::PANIC),
            Attack::PanicAfterBody => {
                kit::respond(out, 200, &[], hostile::WHOLE.as_bytes());
                panic!("{}", hostile::PANIC_AFTER_BODY);
            }
            Attack::Loop => spin(),
            Attack::Memory => hoard(),
            Attack::Recursion => {
                black_box(recurse(black_box(0)));
            }
            Attack::Sleep => kit::sleep_ms(hostile::SLEEP_MS),
            Attack::EndlessBody => endless_body(out),
            Attack::Headers { count } => {
                header_flood(out, count);
                return;
            }
            Attack::Resources => hoard_resources(),
            Attack::Print => {
                let line = [b'p'; 1023];
                let mut stdout = std::io::stdout().lock();
                for _ in 0..(64 << 10) {
                    let _ = stdout.write_all(&line);
                    let _ = stdout.write_all(b"\n");
                }
            }
            Attack::Files { path } => {
                hoard_files(&request, out, &path);
                return;
            }
            Attack::Connections { url, count } => {
                hold_connections(out, &url, count);
                return;
            }
            Attack::Fields => grow_fields(),
            Attack::Method { count, size } => {
                let refused = long_methods(count, size);
                let answer = hostile::methods_refused(refused, count);
                kit::respond(out, 200, &[], answer.as_bytes());
                return;
            }
            Attack::Target { count, size } => {
                let set = long_paths(count, size);
                kit::respond(out, 200, &[], hostile::targets_set(set, count).as_bytes());
                return;
            }
            Attack::Bodies { count, .. } => {
                let count = count.unwrap_or(300);
                let (filled, bytes, held) = fill_bodies(count);
                let answer = format!("filled {filled} bodies with {bytes} bytes\n");
                kit::respond(out, 200, &[], answer.as_bytes());
                drop(black_box(held));
                return;
            }
            Attack::ErrorCode { size } => {
                use wasip2::http::types::ErrorCode;
                let message = hostile::error_message(size);
                ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(message))));
                return;
            }
            Attack::Newlines => {
                let _ = std::io::stdout().lock().write_all(&[b'\n'; 1 << 20]);
            }
            // The rest are what only WASI 0.3 does.
            _ => {
                kit::respond(out, 400, &[], hostile::UNKNOWN.as_bytes());
                return;
            }
        }
        // Reaching this line means the attack was not stopped.
        kit::respond(out, 200, &[], hostile::SURVIVED.as_bytes());
    }
}

/// Gives `count` requests a method of `size` bytes each, holding them all:
/// how many were refused.
fn long_methods(count: usize, size: usize) -> usize {
    use wasip2::http::types::{Method, OutgoingRequest};
    let method = Method::Other(hostile::long_method(size));
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        if request.set_method(&method).is_err() {
            refused += 1;
        }
        held.push(request);
    }
    black_box(held);
    refused
}

/// Gives `count` requests a path of `size` bytes each, holding them all:
/// how many the host took.
fn long_paths(count: usize, size: usize) -> usize {
    use wasip2::http::types::OutgoingRequest;
    let path = hostile::long_path(size);
    let mut held = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        if request.set_path_with_query(Some(&path)).is_err() {
            break;
        }
        held.push(request);
    }
    held.len()
}

/// Fills the bodies of `count` requests that are never sent, as far as
/// the host lets each go: how many, how many bytes in all, and everything
/// it holds.
fn fill_bodies(count: usize) -> (usize, u64, Vec<impl Sized>) {
    use wasip2::http::types::OutgoingRequest;
    let mut held = Vec::new();
    let mut bytes = 0u64;
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let body = request.body().expect("body is taken once");
        let stream = body.write().expect("body stream is taken once");
        loop {
            match stream.check_write() {
                Ok(0) | Err(_) => break,
                Ok(room) => {
                    let room = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
                    if stream.write(&chunk[..room]).is_err() {
                        break;
                    }
                    bytes += room as u64;
                }
            }
        }
        // (Dropped in this order: a stream before its body.)
        held.push((stream, body, request));
    }
    (held.len(), bytes, held)
}

fn header_flood(out: ResponseOutparam, count: u32) {
    let fields = Fields::new();
    for i in 0..count {
        if fields.append(&hostile::flood_header(i), b"1").is_err() {
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

fn hoard_files(request: &IncomingRequest, out: ResponseOutparam, path: &str) {
    let mut opened = 0;
    let error = loop {
        match std::fs::File::open(path) {
            Ok(file) => {
                std::mem::forget(file);
                opened += 1;
            }
            Err(err) => break err.to_string(),
        }
        if opened == hostile::MAX_FILES {
            break hostile::NOTHING_REFUSED.to_string();
        }
    };
    let (response, body) = kit::response_head(200, &[]);
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("response body stream");
    let _ = stream.write_all(hostile::opened(opened, &error).as_bytes());
    let _ = stream.flush();
    // Every file stays open until the client ends its request body.
    kit::read_body(request);
    let _ = stream.write_all(hostile::RELEASED.as_bytes());
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn hold_connections(out: ResponseOutparam, url: &str, count: u32) {
    use wasip2::http::types::ErrorCode;

    let mut pending = Vec::new();
    let (mut refused, mut failed, mut answered) = (0u32, 0u32, 0u32);
    let mut first_failure = String::new();
    for _ in 0..count {
        match kit::start_get(url) {
            Ok(future) => pending.push(future),
            Err(err) => {
                failed += 1;
                first_failure = format!("{err:?}");
            }
        }
    }
    let (response, body) = kit::response_head(200, &[]);
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("response body stream");
    while !pending.is_empty() {
        let pollables: Vec<_> = pending.iter().map(|f| f.subscribe()).collect();
        let ready = wasip2::io::poll::poll(&pollables.iter().collect::<Vec<_>>());
        drop(pollables);
        let mut ready: Vec<usize> = ready.into_iter().map(|i| i as usize).collect();
        ready.sort_unstable_by(|a, b| b.cmp(a));
        for index in ready {
            match pending.swap_remove(index).get() {
                Some(Ok(Ok(_))) => answered += 1,
                Some(Ok(Err(ErrorCode::ConnectionLimitReached))) => refused += 1,
                other => {
                    failed += 1;
                    if first_failure.is_empty() {
                        first_failure = format!("{other:?}");
                    }
                }
            }
        }
        let line = hostile::settled(refused, failed, answered, &first_failure);
        if stream.write_all(line.as_bytes()).is_err() {
            return;
        }
        let _ = stream.flush();
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn grow_fields() {
    let fields = Fields::new();
    for (name, value) in hostile::big_fields() {
        let _ = fields.append(&name, &value);
    }
    let mut copies = Vec::new();
    loop {
        let copy = fields.clone();
        // Any change to a copy, even deleting a header it does not have,
        // copies the whole map on the host.
        let _ = copy.delete("x-absent");
        copies.push(black_box(copy));
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
            spin();
        }
    }
}

wasip2::http::proxy::export!(Hostile);
