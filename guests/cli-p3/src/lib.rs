//! A `wasi:cli/run@0.3.0` command for `mayfly run`, like `cli`, its WASI
//! 0.2 twin, with the same commands, answers and exit statuses
//! (`common::cli`), made through the 0.3 interfaces (arguments,
//! environment, files, stdin and stdout as streams, `wasi:http/client`,
//! `exit-with-code`).
//!
//! It is a `cdylib` exporting `run@0.3.0` alone: as a binary, the
//! standard library would export `wasi:cli/run@0.2` too.

use common::cli::{self, Command};
use kit3::cli::{eprint, exit, print};
use kit3::fs::{Preopens, io_error};

struct Cli;

impl kit3::Command for Cli {
    async fn run() -> Result<(), ()> {
        match Command::parse(kit3::cli::args().into_iter().skip(1).collect()) {
            Command::Args(args) => print(cli::lines(&args)).await,
            Command::Env(name) => match kit3::cli::var(&name) {
                Some(value) => print(format!("{value}\n")).await,
                None => {
                    eprint(cli::not_set(&name)).await;
                    exit(cli::NOT_SET);
                }
            },
            Command::Cat(path) => match Preopens::get().read(&path).await {
                Ok(bytes) => print(bytes).await,
                Err(code) => {
                    eprint(cli::cannot_read(&path, io_error(&code))).await;
                    exit(cli::FILE_ERROR);
                }
            },
            Command::Write(path, text) => {
                if let Err(code) = Preopens::get().write(&path, text.as_bytes()).await {
                    eprint(cli::cannot_write(&path, io_error(&code))).await;
                    exit(cli::FILE_ERROR);
                }
            }
            Command::Stdin => {
                let input = kit3::cli::read_stdin().await.expect("read stdin");
                print(String::from_utf8_lossy(&input).to_uppercase()).await;
            }
            Command::StdinCount => {
                let input = kit3::cli::read_stdin().await.expect("read stdin");
                print(cli::stdin_count(input.len())).await;
            }
            Command::Http(url) => match kit3::http::get_all(&url).await {
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
                    eprint(cli::get_failed(&url, why)).await;
                    exit(cli::HTTP_ERROR);
                }
            },
            Command::Panic => panic!("{}", cli::PANIC),
            Command::Memory => common::attacks::hoard(),
            Command::Exit(code) => exit(code),
            Command::Loop => common::attacks::spin(),
            Command::Unknown(name) => {
                eprint(cli::unknown(&name)).await;
                exit(cli::UNKNOWN);
            }
        }
        Ok(())
    }
}

kit3::export_command!(Cli);
