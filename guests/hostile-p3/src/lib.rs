//! A WASI 0.3 guest that attacks its host, one way per request:
//! `?attack=NAME`. The attacks of `hostile`, its WASI 0.2 twin, have the
//! same names, parameters and answers (`common::hostile`), made through the
//! 0.3 interfaces (async clocks,
//! `stream<u8>` bodies and output, `wasi:filesystem@0.3.0`,
//! `wasi:http/client@0.3.0`):
//!
//! - `loop`: spins forever without ever calling the host.
//! - `memory`: allocates (and touches) memory until allocation fails.
//! - `recursion`: recurses until the call stack runs out.
//! - `sleep`: sleeps ten minutes through `wasi:clocks`.
//! - `endless-body`: sends a response whose body never ends.
//! - `headers`: sends a response with `count` (default 10000) headers.
//! - `resources`: creates host resources (header maps), never dropping
//!   one, until the host refuses.
//! - `print`: writes 64 MiB to stdout.
//! - `newlines`: writes 1 MiB of empty lines to stdout.
//! - `files`: opens the file at `path` over and over, closing none, until
//!   the host refuses; streams `opened N: ERROR`, then holds every file
//!   until the request body ends, and says `released`.
//! - `connections`: sends `count` (default 100) GETs to `url` at once and
//!   holds them; streams a line each time one more of them is settled
//!   (`refused` by the host's budget, `failed` otherwise, `answered`),
//!   until all are.
//! - `fields`: builds a 64 KiB header map, then clones it and deletes an
//!   absent header from each clone until the host refuses (each change
//!   copies the whole map).
//! - `method`: builds `count` (default 32) requests, never sent, each
//!   given a method of its own of `size` bytes (default 64 MiB); answers
//!   `method refused N of COUNT`.
//! - `target`: builds requests, never sent, each given a path of `size`
//!   bytes (default 1 MiB), `count` times (default 64); answers
//!   `targets set N of COUNT`.
//! - `bodies`: sends `count` (default 100) POSTs to `url` at once, each
//!   with a body that a task of its own writes to, 64 KiB at a time, for as
//!   long as the host takes it (an upstream that answers without reading
//!   lets the bodies fill). Once every request is settled it streams
//!   `sent S refused R FIRST-ERROR`, then, every 50 ms, `accepted B bytes`
//!   until that stops growing (then `settled`), and holds everything until
//!   the request body ends (then `released`).
//! - `error-code`: answers with `error-code.internal-error` carrying a
//!   message of `size` bytes (default 16 MiB).
//! - `panic`: a Rust panic (which aborts the instance with a trap).
//! - `panic-mid-body`: sends the response head and `partial\n`, waits for
//!   the request body to end (so the client can tell that the response
//!   has started), then panics (`hostile guest: panicking mid-body on
//!   purpose`): a trap mid-body, which the client must see as a body cut
//!   short.
//! - `panic-after-body`: sends a whole response, `whole\n` (its body ended
//!   and its trailers sent), then panics (`hostile guest: panicking after
//!   the body on purpose`): the response must still reach the client whole.
//! - `none`: no attack at all: 200 `ok`, to show the component still serves
//!   (or `status`, if given: a guest's own error status is not a limit).
//!
//! What WASI 0.3 adds:
//!
//! - `tasks`: answers `task spawned` (the whole response), then keeps a
//!   task of the instance running after it: `&how=spin` (the default)
//!   spins, `yield` yields to the host in a loop, `sleep` sleeps 10 ms in a
//!   loop. The instance is never done: only the host's deadline ends it.
//! - `streams`: creates stream and future handles (both ends), never
//!   dropping one, until the host refuses.
//! - `random`: reads `bytes` (default 1 GiB) from `wasi:random`, asking for
//!   all that is left in each call (or `chunk` bytes at most); answers
//!   `got N random bytes in C calls`.
//! - `escape`: tries to read outside its grants through
//!   `wasi:filesystem@0.3.0`: `/etc/passwd`, `../` paths and absolute
//!   paths, resolved by the guest and also handed to the host's `open-at`
//!   on each granted directory as they are. One line per attempt,
//!   `ATTEMPT: denied: ERROR`, or `ATTEMPT: ESCAPED: read N bytes`. With
//!   `&path=P` it reads P alone and answers as `capabilities`' `op=read`
//!   does (200 with the contents, 403 `denied: ERROR` with the same error
//!   text), and with `&write=1` writes `written by guest` to it as `op=write`
//!   does (200 `written`).
//! - `env`: every environment variable it sees, one `KEY=VALUE` per line
//!   (as `capabilities`' `op=env`); with `&name=N` just that one (404
//!   `environment variable not found` if it is not set).
//! - `outbound`: a GET to `url` through `wasi:http/client@0.3.0`, answered
//!   as `capabilities`' `op=fetch` is: 200 with `STATUS BODY`, 403
//!   `denied: ErrorCode::HttpRequestDenied`, 502 `denied: ErrorCode::...`.
//!
//! Each must cost only its own request: the host cuts it off at its limit
//! and keeps serving everything else. An attack that was not stopped
//! answers 200 `survived`.

use std::hint::black_box;

use common::attacks::{hoard, recurse, spin};
use common::hostile::{self, Attack};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use kit3::fs::{Preopens, io_error};
use kit3::http::{ErrorCode, Fields, Incoming, Request, Response, query_param, respond};

struct Hostile;

impl kit3::Handler for Hostile {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        match Attack::asked(|name| query_param(&request, name)) {
            Attack::None { status } => return respond(status, &[], hostile::OK),
            Attack::Panic => panic!("{}", hostile::PANIC),
            Attack::Loop => spin(),
            Attack::Memory => hoard(),
            Attack::Recursion => {
                black_box(recurse(black_box(0)));
            }
            Attack::Sleep => kit3::sleep_ms(hostile::SLEEP_MS).await,
            Attack::EndlessBody => return endless_body(),
            Attack::PanicMidBody => return panic_mid_body(request),
            Attack::PanicAfterBody => return panic_after_body(),
            Attack::Headers { count } => return Ok(header_flood(count)),
            Attack::Resources => loop {
                std::mem::forget(black_box(Fields::new()));
            },
            Attack::Print => {
                let chunk = [[b'p'; 1023].as_slice(), b"\n"].concat().repeat(64);
                let mut stdout = kit3::cli::Output::stdout();
                for _ in 0..1024 {
                    if !stdout.write(chunk.clone()).await {
                        break;
                    }
                }
                let _ = stdout.close().await;
            }
            Attack::Newlines => kit3::cli::print(vec![b'\n'; 1 << 20]).await,
            Attack::Files { path } => return hoard_files(request, &path).await,
            Attack::Connections { url, count } => return hold_connections(url, count),
            Attack::Fields => grow_fields(),
            Attack::Method { count, size } => {
                let refused = long_methods(count, size);
                return respond(200, &[], hostile::methods_refused(refused, count));
            }
            Attack::Target { count, size } => {
                let set = long_paths(count, size);
                return respond(200, &[], hostile::targets_set(set, count));
            }
            Attack::Bodies { count, url } => {
                return fill_bodies(request, url, count.unwrap_or(100)).await;
            }
            Attack::ErrorCode { size } => {
                return Err(ErrorCode::InternalError(Some(hostile::error_message(size))));
            }
            Attack::Tasks { how } => return runaway_task(how),
            Attack::Streams => hoard_handles(),
            Attack::Random { bytes, chunk } => return respond(200, &[], read_random(bytes, chunk)),
            Attack::Escape { path, write } => {
                let (status, body) = match path {
                    Some(path) => read_or_write(&path, write).await,
                    None => (200, escape().await.into_bytes()),
                };
                return respond(status, &[("content-type", b"text/plain")], body);
            }
            Attack::Env { name } => {
                let (status, body) = match name {
                    Some(name) => match kit3::cli::var(&name) {
                        Some(value) => (200, value),
                        None => (404, "environment variable not found".to_string()),
                    },
                    None => (200, env_lines()),
                };
                return respond(status, &[("content-type", b"text/plain")], body);
            }
            Attack::Outbound { url } => {
                let (status, body) = kit3::http::fetch_answer(kit3::http::get_all(&url).await);
                return respond(status, &[("content-type", b"text/plain")], body);
            }
            // A 0.3 handler cannot return without a response: `silent` is
            // the 0.2 guest's alone.
            Attack::Silent | Attack::Unknown => return respond(400, &[], hostile::UNKNOWN),
        }
        // Reaching this line means the attack was not stopped.
        respond(200, &[], hostile::SURVIVED)
    }
}

/// A request that is never sent (its body and trailers are never written).
fn unsent() -> Request {
    let (_, trailers) = kit3::wit_future::new(|| Ok(None));
    Request::new(Fields::new(), None, trailers, None).0
}

/// Gives `count` requests a method of `size` bytes each, holding them all:
/// how many were refused.
fn long_methods(count: usize, size: usize) -> usize {
    let method = kit3::http::Method::Other(hostile::long_method(size));
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        let request = unsent();
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
    let path = hostile::long_path(size);
    let mut held = Vec::new();
    for _ in 0..count {
        let request = unsent();
        if request.set_path_with_query(Some(&path)).is_err() {
            break;
        }
        held.push(request);
    }
    held.len()
}

/// Sends `count` POSTs to `url` whose bodies are written for as long as
/// the host takes them (see the `bodies` attack).
async fn fill_bodies(request: Request, url: String, count: usize) -> Result<Response, ErrorCode> {
    use std::cell::Cell;
    use std::rc::Rc;

    let accepted = Rc::new(Cell::new(0u64));
    let mut sends = FuturesUnordered::new();
    for _ in 0..count {
        let outgoing = match kit3::http::get_request(&url) {
            Ok(outgoing) => outgoing,
            Err(err) => return respond(400, &[], format!("{err:?}\n")),
        };
        let _ = outgoing.set_method(&kit3::http::Method::Post);
        // The body goes in a request of its own, with the same target.
        let (mut writer, contents) = kit3::wit_stream::new();
        let (_trailers_writer, trailers) = kit3::wit_future::new(|| Ok(None));
        let (post, _sent) = Request::new(Fields::new(), Some(contents), trailers, None);
        let _ = post.set_method(&kit3::http::Method::Post);
        let _ = post.set_scheme(outgoing.get_scheme().as_ref());
        let _ = post.set_authority(outgoing.get_authority().as_deref());
        let _ = post.set_path_with_query(outgoing.get_path_with_query().as_deref());
        let counted = accepted.clone();
        kit3::spawn(async move {
            let _keep = _trailers_writer;
            loop {
                let left = writer.write_all(vec![0u8; 64 << 10]).await;
                counted.set(counted.get() + (64 << 10) - left.len() as u64);
                if !left.is_empty() {
                    break;
                }
            }
        });
        sends.push(kit3::wasi::http::client::send(post));
    }
    let (mut sent, mut refused, mut first_error) = (0u32, 0u32, String::new());
    let mut held = Vec::new();
    while let Some(result) = sends.next().await {
        match result {
            Ok(response) => {
                sent += 1;
                held.push(response);
            }
            Err(code) => {
                refused += 1;
                if first_error.is_empty() {
                    first_error = format!("{code:?}");
                }
            }
        }
    }
    let (response, mut body) = kit3::http::response(200, &[])?;
    let input = Incoming::request(request);
    kit3::spawn(async move {
        body.write(format!("sent {sent} refused {refused} {first_error}\n"))
            .await;
        let mut last = u64::MAX;
        while accepted.get() != last {
            last = accepted.get();
            kit3::sleep_ms(50).await;
            body.write(format!("accepted {} bytes\n", accepted.get()))
                .await;
        }
        body.write("settled\n").await;
        // Everything is held until the client ends its request body.
        let _ = input.count().await;
        drop(held);
        body.write(hostile::RELEASED).await;
        body.finish(None).await;
    });
    Ok(response)
}

fn endless_body() -> Result<Response, ErrorCode> {
    let (response, mut body) = kit3::http::response(200, &[("content-type", b"text/plain")])?;
    kit3::spawn(async move {
        loop {
            if !body.write([b'x'; 1024].to_vec()).await {
                // The client went away: nothing else to do but keep the CPU busy.
                spin();
            }
        }
    });
    Ok(response)
}

fn panic_mid_body(request: Request) -> Result<Response, ErrorCode> {
    let (response, mut body) = kit3::http::response(200, &[("content-type", b"text/plain")])?;
    let input = Incoming::request(request);
    kit3::spawn(async move {
        body.write(hostile::PARTIAL).await;
        let _ = input.count().await;
        panic!("{}", hostile::PANIC_MID_BODY);
    });
    Ok(response)
}

fn panic_after_body() -> Result<Response, ErrorCode> {
    let (response, mut body) = kit3::http::response(200, &[("content-type", b"text/plain")])?;
    kit3::spawn(async move {
        body.write(hostile::WHOLE).await;
        body.finish(None).await;
        panic!("{}", hostile::PANIC_AFTER_BODY);
    });
    Ok(response)
}

fn header_flood(count: u32) -> Response {
    let fields = Fields::new();
    for i in 0..count {
        if fields.append(&hostile::flood_header(i), b"1").is_err() {
            // The host's cap on a header block's size: send what fits.
            break;
        }
    }
    let (_, trailers) = kit3::wit_future::new(|| Ok(None));
    Response::new(fields, None, trailers).0
}

async fn hoard_files(request: Request, path: &str) -> Result<Response, ErrorCode> {
    let preopens = Preopens::get();
    let mut files = Vec::new();
    let error = loop {
        match preopens.open(path, false).await {
            Ok(file) => files.push(file),
            Err(code) => break io_error(&code).to_string(),
        }
        if files.len() == hostile::MAX_FILES {
            break hostile::NOTHING_REFUSED.to_string();
        }
    };
    let line = hostile::opened(files.len(), &error);
    let (response, mut body) = kit3::http::response(200, &[])?;
    let input = Incoming::request(request);
    kit3::spawn(async move {
        body.write(line).await;
        // Every file stays open until the client ends its request body.
        let _ = input.count().await;
        drop(files);
        body.write(hostile::RELEASED).await;
        body.finish(None).await;
    });
    Ok(response)
}

fn hold_connections(url: String, count: u32) -> Result<Response, ErrorCode> {
    let (response, mut body) = kit3::http::response(200, &[])?;
    kit3::spawn(async move {
        let mut pending: FuturesUnordered<_> = (0..count).map(|_| kit3::http::get(&url)).collect();
        let (mut refused, mut failed, mut answered) = (0u32, 0u32, 0u32);
        let mut first_failure = String::new();
        while let Some(result) = pending.next().await {
            match result {
                Ok(_) => answered += 1,
                Err(kit3::http::GetError::Refused(ErrorCode::ConnectionLimitReached)) => {
                    refused += 1
                }
                Err(err) => {
                    failed += 1;
                    if first_failure.is_empty() {
                        first_failure = match err {
                            kit3::http::GetError::Refused(code) => format!("{code:?}"),
                            other => format!("{other:?}"),
                        };
                    }
                }
            }
            let line = hostile::settled(refused, failed, answered, &first_failure);
            if !body.write(line).await {
                return;
            }
        }
        body.finish(None).await;
    });
    Ok(response)
}

fn grow_fields() -> ! {
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

/// A whole response, then a task of the instance that never ends.
fn runaway_task(how: String) -> Result<Response, ErrorCode> {
    let (response, mut body) = kit3::http::response(200, &[])?;
    kit3::spawn(async move {
        body.write("task spawned\n").await;
        body.finish(None).await;
        match how.as_str() {
            "yield" => loop {
                kit3::yield_async().await;
            },
            "sleep" => loop {
                kit3::sleep_ms(10).await;
            },
            _ => spin(),
        }
    });
    Ok(response)
}

fn hoard_handles() -> ! {
    loop {
        std::mem::forget(black_box(kit3::wit_stream::new::<u8>()));
        std::mem::forget(black_box(kit3::wit_future::new::<Result<(), ErrorCode>>(
            || Ok(()),
        )));
    }
}

fn read_random(bytes: u64, chunk: u64) -> String {
    let (mut got, mut calls) = (0u64, 0u64);
    while got < bytes {
        let asked = (bytes - got).min(chunk);
        let random = kit3::wasi::random::random::get_random_bytes(asked);
        calls += 1;
        if random.is_empty() {
            break;
        }
        got += random.len() as u64;
        black_box(random);
    }
    format!("got {got} random bytes in {calls} calls\n")
}

/// What `capabilities` answers for `op=read` (or `op=write`).
async fn read_or_write(path: &str, write: bool) -> (u16, Vec<u8>) {
    let preopens = Preopens::get();
    let result = if write {
        preopens
            .write(path, b"written by guest")
            .await
            .map(|()| b"written".to_vec())
    } else {
        preopens.read(path).await
    };
    match result {
        Ok(contents) => (200, contents),
        Err(code) => (403, format!("denied: {}", io_error(&code)).into_bytes()),
    }
}

/// Tries every way out it knows, one line each.
async fn escape() -> String {
    const GUEST_PATHS: &[&str] = &["/etc/passwd", "../../etc/passwd", "/../etc/passwd"];
    const HOST_PATHS: &[&str] = &[
        "/etc/passwd",
        "../../../../etc/passwd",
        "..",
        "../",
        "./../",
        "/",
    ];
    let preopens = Preopens::get();
    let mut lines = String::new();
    let mut report = |attempt: String, result: Result<Vec<u8>, kit3::fs::ErrorCode>| {
        let outcome = match result {
            Ok(bytes) => format!("ESCAPED: read {} bytes", bytes.len()),
            Err(code) => format!("denied: {}", io_error(&code)),
        };
        lines.push_str(&format!("{attempt}: {outcome}\n"));
    };
    for path in GUEST_PATHS {
        report(format!("read {path}"), preopens.read(path).await);
    }
    for (dir, name) in preopens.dirs() {
        report(format!("read {name}/../../../../etc/passwd"), {
            preopens
                .read(&format!("{name}/../../../../etc/passwd"))
                .await
        });
        for path in HOST_PATHS {
            let opened = kit3::fs::open_at(dir, path, false).await;
            let result = match opened {
                Ok(file) => match kit3::fs::read_all(&file).await {
                    // A directory opened outside the grant is an escape too.
                    Err(kit3::fs::ErrorCode::IsDirectory) => Ok(Vec::new()),
                    other => other,
                },
                Err(code) => Err(code),
            };
            report(format!("open-at({name}, {path})"), result);
        }
    }
    if preopens.dirs().is_empty() {
        lines.push_str("no preopened directories\n");
    }
    lines
}

fn env_lines() -> String {
    kit3::cli::vars()
        .iter()
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect()
}

kit3::export_handler!(Hostile);
