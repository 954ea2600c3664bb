//! A hostile `mayfly:plugin/filter` plugin. The input picks the attack:
//!
//! - `loop`: spins forever.
//! - `memory`: allocates until allocation fails.
//! - `trap`: panics with a message.
//! - `read:PATH`: reads a file it was (probably) not granted.
//! - `connect:ADDR`: opens a TCP connection.
//! - `udp:ADDR`: binds a UDP socket.
//! - `lookup:HOST`: resolves a host name.
//! - `hold:PATH`: opens file PATH over and over, keeping every handle, until
//!   an open fails.
//! - `say:TEXT`: writes TEXT on stderr, then returns it.
//! - `try-alloc`: tries (and fails) to reserve 1 GiB, then returns `ok`.
//! - `flood`: calls the host's `log` a million times with 1 KiB messages.
//! - `leak:N`: allocates N MiB, touches it and never frees it (it stays
//!   for as long as the instance does).
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
        if let Some(addr) = text.strip_prefix("udp:") {
            return std::net::UdpSocket::bind(addr)
                .map(|_| b"bound".to_vec())
                .map_err(|err| format!("cannot bind {addr}: {err}"));
        }
        if let Some(host) = text.strip_prefix("lookup:") {
            return std::net::ToSocketAddrs::to_socket_addrs(&(host, 80))
                .map(|addrs| format!("{} addresses", addrs.count()).into_bytes())
                .map_err(|err| format!("cannot resolve {host}: {err}"));
        }
        if let Some(path) = text.strip_prefix("hold:") {
            let mut held = Vec::new();
            loop {
                match std::fs::File::open(path) {
                    Ok(file) => held.push(file),
                    Err(err) => {
                        return Err(format!("open {} failed: {err}", held.len() + 1));
                    }
                }
            }
        }
        if let Some(mib) = text.strip_prefix("leak:") {
            let mib: usize = mib.parse().map_err(|_| format!("not a size: {mib}"))?;
            let leaked = vec![1u8; mib << 20].leak();
            return Ok(
                format!("leaked {} MiB", std::hint::black_box(leaked).len() >> 20).into_bytes(),
            );
        }
        if let Some(said) = text.strip_prefix("say:") {
            eprintln!("{said}");
            return Ok(said.as_bytes().to_vec());
        }
        if text == "try-alloc" {
            let mut big: Vec<u8> = Vec::new();
            return match big.try_reserve(1 << 30) {
                Ok(()) => Err("reserved 1 GiB".into()),
                Err(_) => Ok(b"ok".to_vec()),
            };
        }
        if text == "flood" {
            let message = "x".repeat(1024);
            for _ in 0..1_000_000 {
                log(&message);
            }
            return Ok(b"flooded".to_vec());
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
