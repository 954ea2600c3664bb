//! A `mayfly:plugin/async-filter` plugin: fills a template with the host's
//! documents. Each `{key}` in the input is replaced with the document the
//! host's `fetch` returns for `key`; every distinct key is fetched at once,
//! and the plugin waits for all of them together. A missing document, an
//! unclosed `{` or an empty input is the plugin's own refusal. It tells the
//! host's `log` what it fetches.
//!
//! A few inputs misbehave instead, to test the host:
//!
//! - `spin`: spins forever without calling the host.
//! - `memory`: allocates until allocation fails.
//! - `panic`: panics with a message.
//! - `spawn`: returns `spawned`, leaving a task of its own running after
//!   the call (it yields to the host in a loop, forever).
//! - `count`: returns how many times it has been called in this instance,
//!   to tell a fresh instance from a reused one.
//! - `read:PATH`: reads a file through `wasi:filesystem@0.3.0`.
//! - `tcp`, `udp`: creates a socket through `wasi:sockets@0.3.0`.
//! - `lookup:HOST`: resolves a host name through `wasi:sockets@0.3.0`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use kit3::wasi::sockets::ip_name_lookup::resolve_addresses;
use kit3::wasi::sockets::types::{IpAddressFamily, TcpSocket, UdpSocket};

wit_bindgen::generate!({ path: "../../wit/plugin", world: "async-filter" });

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Template;

impl Guest for Template {
    async fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if input.is_empty() {
            log("refused: empty input");
            return Err("nothing to transform: the input is empty".into());
        }
        let text = String::from_utf8(input).map_err(|_| "the input is not UTF-8".to_string())?;
        match text.as_str() {
            "spin" => kit3::attacks::spin(),
            "memory" => kit3::attacks::hoard(),
            "panic" => panic!("async plugin: panicking on purpose"),
            "count" => return Ok(calls.to_string().into_bytes()),
            "spawn" => {
                kit3::spawn(async {
                    loop {
                        kit3::yield_async().await;
                    }
                });
                return Ok(b"spawned".to_vec());
            }
            "tcp" => {
                return TcpSocket::create(IpAddressFamily::Ipv4)
                    .map(|_| b"created a TCP socket".to_vec())
                    .map_err(|err| format!("cannot create a TCP socket: {err:?}"));
            }
            "udp" => {
                return UdpSocket::create(IpAddressFamily::Ipv4)
                    .map(|_| b"created a UDP socket".to_vec())
                    .map_err(|err| format!("cannot create a UDP socket: {err:?}"));
            }
            _ => {}
        }
        if let Some(path) = text.strip_prefix("read:") {
            return kit3::fs::Preopens::get()
                .read(path)
                .await
                .map_err(|err| format!("cannot read {path}: {err:?}"));
        }
        if let Some(host) = text.strip_prefix("lookup:") {
            return resolve_addresses(host.to_string())
                .await
                .map(|addresses| format!("{} addresses", addresses.len()).into_bytes())
                .map_err(|err| format!("cannot resolve {host}: {err:?}"));
        }
        fill(&text).await
    }
}

/// A piece of a template: text kept as it is, or a placeholder's key.
enum Piece<'a> {
    Text(&'a str),
    Key(&'a str),
}

/// `template` in pieces.
fn parse(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pieces.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder: `{{{after}`"))?;
        let key = &after[..close];
        if key.is_empty() || key.contains('{') {
            return Err(format!("not a placeholder: `{{{key}}}`"));
        }
        pieces.push(Piece::Key(key));
        rest = &after[close + 1..];
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

/// The template with every placeholder filled.
async fn fill(template: &str) -> Result<Vec<u8>, String> {
    let pieces = parse(template)?;
    let mut keys: Vec<&str> = Vec::new();
    for piece in &pieces {
        if let Piece::Key(key) = piece
            && !keys.contains(key)
        {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        log("no placeholders");
    } else {
        let noun = if keys.len() == 1 {
            "document"
        } else {
            "documents"
        };
        log(&format!(
            "fetching {} {noun}: {}",
            keys.len(),
            keys.join(", ")
        ));
    }
    // All at once: each `fetch` is a subtask of this call, and the host
    // answers them in whatever order it likes.
    let fetched = futures::future::join_all(keys.iter().map(|key| fetch(key.to_string()))).await;
    let documents: HashMap<&str, Option<Vec<u8>>> = keys.into_iter().zip(fetched).collect();
    let mut output = Vec::new();
    for piece in &pieces {
        match piece {
            Piece::Text(text) => output.extend_from_slice(text.as_bytes()),
            Piece::Key(key) => match &documents[key] {
                Some(document) => output.extend_from_slice(document),
                None => return Err(format!("no document `{key}`")),
            },
        }
    }
    Ok(output)
}

export!(Template);
