//! A `wasi:cli/run` command for `mayfly run`: the commands of
//! `common::cli` (`args`, `env`, `cat`, `write`, `stdin`, `stdin-count`,
//! `http`, `panic`, `memory`, `exit`, `loop`), with their answers and exit
//! statuses, through WASI 0.2 and Rust's standard library.

use std::io::{Read as _, Write as _};

use common::cli::{self, Command};

/// Exits with `code`. Rust's own exit maps every failure to status 1 on
/// WASI 0.2; `exit-with-code` keeps the number.
fn exit(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    wasip2::cli::exit::exit_with_code(code);
    unreachable!("exit-with-code returned")
}

fn main() {
    match Command::parse(std::env::args().skip(1).collect()) {
        Command::Args(args) => print!("{}", cli::lines(&args)),
        Command::Env(name) => match std::env::var(&name) {
            Ok(value) => println!("{value}"),
            Err(_) => {
                eprint!("{}", cli::not_set(&name));
                exit(cli::NOT_SET);
            }
        },
        Command::Cat(path) => match std::fs::read(&path) {
            Ok(bytes) => std::io::stdout().write_all(&bytes).expect("write stdout"),
            Err(err) => {
                eprint!("{}", cli::cannot_read(&path, err));
                exit(cli::FILE_ERROR);
            }
        },
        Command::Write(path, text) => {
            if let Err(err) = std::fs::write(&path, text) {
                eprint!("{}", cli::cannot_write(&path, err));
                exit(cli::FILE_ERROR);
            }
        }
        Command::Stdin => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .expect("read stdin");
            print!("{}", input.to_uppercase());
        }
        Command::StdinCount => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .expect("read stdin");
            print!("{}", cli::stdin_count(input.len()));
        }
        Command::Http(url) => match http_get(&url) {
            Ok((status, body)) => {
                println!("{status}");
                std::io::stdout().write_all(&body).expect("write stdout");
            }
            Err(err) => {
                eprint!("{}", cli::get_failed(&url, err));
                exit(cli::HTTP_ERROR);
            }
        },
        Command::Panic => panic!("{}", cli::PANIC),
        Command::Memory => common::attacks::hoard(),
        Command::Exit(code) => exit(code),
        Command::Loop => common::attacks::spin(),
        Command::Unknown(name) => {
            eprint!("{}", cli::unknown(&name));
            exit(cli::UNKNOWN);
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
