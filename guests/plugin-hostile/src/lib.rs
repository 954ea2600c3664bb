//! A hostile `mayfly:plugin/filter` plugin. The input picks the attack:
//!
//! - `loop`: spins forever.
//! - `memory`: allocates until allocation fails.
//! - `trap`: panics with a message.
//! - `read:PATH`: reads a file it was (probably) not granted.
//! - `connect:ADDR`: opens a TCP connection.
//! - `count`: returns how many times it has been called in this instance,
//!   to tell a fresh instance from a reused one.
//! - anything else: returned unchanged.

use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({ path: "../../wit/plugin", world: "filter" });

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Hostile;

impl Guest for Hostile {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let text = String::from_utf8_lossy(&input).into_owned();
        match text.as_str() {
            "loop" => kit::attacks::spin(),
            "memory" => kit::attacks::hoard(),
            "trap" => panic!("hostile plugin: panicking on purpose"),
            "count" => return Ok(calls.to_string().into_bytes()),
            _ => {}
        }
        if let Some(path) = text.strip_prefix("read:") {
            return std::fs::read(path).map_err(|err| format!("cannot read {path}: {err}"));
        }
        if let Some(addr) = text.strip_prefix("connect:") {
            return std::net::TcpStream::connect(addr)
                .map(|_| b"connected".to_vec())
                .map_err(|err| format!("cannot connect to {addr}: {err}"));
        }
        Ok(input)
    }
}

export!(Hostile);
