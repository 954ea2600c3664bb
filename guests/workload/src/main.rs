//! The workload `mayfly compare` runs in every mode. One source, built two
//! ways: as a `wasm32-wasip2` command component and as a static native
//! Linux executable (the work itself is in `lib.rs`, which the HTTP front,
//! `workload-http`, shares). The first argument picks the work:
//!
//! - `trivial`: prints `ok` (start-up dominated).
//! - `json N`: builds a JSON document of N records, serialises it, parses
//!   it back and transforms it (totals and upper-cased names); prints a
//!   one-line summary.
//! - `probe SECRET PORT`: the isolation probe; tries what an isolated
//!   function should not be able to do and prints `check=outcome` lines.
//! - `spin`: loops forever (for the deadline check).

use std::io::Write as _;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "trivial" => println!("{}", workload::trivial()),
        "json" => println!("{}", workload::json(arg(1).parse().unwrap_or(100))),
        "probe" => probe(&arg(1), &arg(2)),
        "spin" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        other => {
            eprintln!("unknown workload `{other}`");
            std::process::exit(2);
        }
    }
}

fn probe(secret: &str, port: &str) {
    let mut out = std::io::stdout().lock();
    let mut report = |check: &str, reached: bool, detail: String| {
        let outcome = if reached { "reached" } else { "denied" };
        let _ = writeln!(out, "{check}={outcome} {detail}");
    };
    match std::fs::read_to_string(secret) {
        Ok(text) => report(
            "read-host-file",
            true,
            text.trim().chars().take(40).collect(),
        ),
        Err(err) => report("read-host-file", false, err.to_string()),
    }
    match std::fs::read_dir("/proc") {
        Ok(entries) => {
            let pids = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count();
            report(
                "see-host-processes",
                pids > 1,
                format!("{pids} processes visible"),
            )
        }
        Err(err) => report("see-host-processes", false, err.to_string()),
    }
    match std::net::TcpStream::connect(format!("127.0.0.1:{port}")) {
        Ok(_) => report(
            "connect-loopback",
            true,
            format!("connected to 127.0.0.1:{port}"),
        ),
        Err(err) => report("connect-loopback", false, err.to_string()),
    }
    let outside = "/tmp/mayfly-probe-was-here";
    match std::fs::write(outside, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(outside);
            report("write-outside", true, format!("wrote {outside}"))
        }
        Err(err) => report("write-outside", false, err.to_string()),
    }
    match std::env::var("HOME").or_else(|_| std::env::var("PATH")) {
        Ok(value) => report("read-host-env", true, value.chars().take(40).collect()),
        Err(err) => report("read-host-env", false, err.to_string()),
    }
    // Last: may not return if a limit kills the process.
    let _ = out;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    while total < 1 << 30 {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(16 << 20).is_err() {
            break;
        }
        chunk.resize(16 << 20, 1u8);
        total += chunk.len();
        hoard.push(std::hint::black_box(chunk));
    }
    println!(
        "exceed-memory={} allocated {} MiB",
        if total >= 1 << 30 {
            "reached"
        } else {
            "denied"
        },
        total >> 20
    );
}
