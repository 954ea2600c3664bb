//! A `wasi:cli/run@0.3.0` command for `mayfly run`, like `cli`, its WASI
//! 0.2 twin, with the same commands and answers, made through the 0.3
//! interfaces (arguments, environment, files, stdin and stdout as streams,
//! `wasi:http/client`, `exit-with-code`). The first argument picks what it
//! does:
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
//!
//! Anything else: `unknown command`, exit status 2.
//!
//! It is a `cdylib` exporting `run@0.3.0` alone: as a binary, the
//! standard library would export `wasi:cli/run@0.2` too.

use kit3::cli::{eprint, exit, print};
use kit3::fs::{Preopens, io_error};

struct Cli;

impl kit3::Command for Cli {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = kit3::cli::args().into_iter().skip(1).collect();
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        match arg(0).as_str() {
            "args" => {
                let lines: String = args[1..].iter().map(|a| format!("{a}\n")).collect();
                print(lines).await;
            }
            "env" => match kit3::cli::var(&arg(1)) {
                Some(value) => print(format!("{value}\n")).await,
                None => {
                    eprint(format!("{}: environment variable not found\n", arg(1))).await;
                    exit(3);
                }
            },
            "cat" => match Preopens::get().read(&arg(1)).await {
                Ok(bytes) => print(bytes).await,
                Err(code) => {
                    eprint(format!("cannot read {}: {}\n", arg(1), io_error(&code))).await;
                    exit(4);
                }
            },
            "write" => {
                if let Err(code) = Preopens::get().write(&arg(1), arg(2).as_bytes()).await {
                    eprint(format!("cannot write {}: {}\n", arg(1), io_error(&code))).await;
                    exit(4);
                }
            }
            "stdin" => {
                let input = kit3::cli::read_stdin().await.expect("read stdin");
                print(String::from_utf8_lossy(&input).to_uppercase()).await;
            }
            "stdin-count" => {
                let input = kit3::cli::read_stdin().await.expect("read stdin");
                print(format!("{} bytes on stdin\n", input.len())).await;
            }
            "http" => match kit3::http::get_all(&arg(1)).await {
                Ok((status, body)) => {
                    print(format!("{status}\n")).await;
                    print(body).await;
                }
                Err(err) => {
                    let why = match err {
                        kit3::http::GetError::Url(why) => why.to_string(),
                        kit3::http::GetError::Refused(code) => format!("{code:?}"),
                        kit3::http::GetError::Body(code) => format!("body cut off: {code:?}"),
                    };
                    eprint(format!("GET {}: {why}\n", arg(1))).await;
                    exit(5);
                }
            },
            "panic" => panic!("cli: panicking on purpose"),
            "memory" => kit3::attacks::hoard(),
            "exit" => exit(arg(1).parse::<u8>().unwrap_or(1)),
            "loop" => kit3::attacks::spin(),
            other => {
                eprint(format!("unknown command `{other}`\n")).await;
                exit(2);
            }
        }
        Ok(())
    }
}

kit3::export_command!(Cli);
