//! A `wasi:cli/run` command for `mayfly run`. The first argument picks
//! what it does:
//!
//! - `args A B...`: prints its arguments, one per line.
//! - `env NAME`: prints variable NAME, or exits 3 if it is not set.
//! - `cat PATH`: copies file PATH to stdout, or exits 4 with the error.
//! - `write PATH TEXT`: writes TEXT to PATH, or exits 4 with the error.
//! - `stdin`: copies stdin to stdout, upper-cased.
//! - `stdin-count`: prints how many bytes stdin held.
//! - `http URL`: GETs URL through `wasi:http`, prints the status and body,
//!   or exits 5 with the error code.
//! - `panic`: panics with a message.
//! - `memory`: allocates until allocation fails.
//! - `exit N`: exits with status N.
//! - `loop`: spins forever.

use std::io::{Read as _, Write as _};

/// Exits with `code`. Rust's own exit maps every failure to status 1 on
/// WASI 0.2; `exit-with-code` keeps the number.
fn exit(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    wasip2::cli::exit::exit_with_code(code);
    unreachable!("exit-with-code returned")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "args" => {
            for a in &args[1..] {
                println!("{a}");
            }
        }
        "env" => match std::env::var(arg(1)) {
            Ok(value) => println!("{value}"),
            Err(err) => {
                eprintln!("{}: {err}", arg(1));
                exit(3);
            }
        },
        "cat" => match std::fs::read(arg(1)) {
            Ok(bytes) => std::io::stdout().write_all(&bytes).expect("write stdout"),
            Err(err) => {
                eprintln!("cannot read {}: {err}", arg(1));
                exit(4);
            }
        },
        "write" => {
            if let Err(err) = std::fs::write(arg(1), arg(2)) {
                eprintln!("cannot write {}: {err}", arg(1));
                exit(4);
            }
        }
        "stdin" => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .expect("read stdin");
            print!("{}", input.to_uppercase());
        }
        "stdin-count" => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .expect("read stdin");
            println!("{} bytes on stdin", input.len());
        }
        "http" => match http_get(&arg(1)) {
            Ok((status, body)) => {
                println!("{status}");
                std::io::stdout().write_all(&body).expect("write stdout");
            }
            Err(err) => {
                eprintln!("GET {}: {err}", arg(1));
                exit(5);
            }
        },
        "panic" => panic!("cli: panicking on purpose"),
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut chunk = vec![0u8; 1 << 20];
                for page in chunk.chunks_mut(4096) {
                    page[0] = 1;
                }
                hoard.push(std::hint::black_box(chunk));
            }
        }
        "exit" => exit(arg(1).parse::<u8>().unwrap_or(1)),
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        other => {
            eprintln!("unknown command `{other}`");
            exit(2);
        }
    }
}

/// A GET to `url` through `wasi:http/outgoing-handler`: the status and the
/// body, or what went wrong.
fn http_get(url: &str) -> Result<(u16, Vec<u8>), String> {
    kit::http_get(url).map_err(|err| match err {
        kit::GetError::Url(why) => why.to_string(),
        kit::GetError::Refused(code) => format!("{code:?}"),
        kit::GetError::Broken(why) => why,
    })
}
