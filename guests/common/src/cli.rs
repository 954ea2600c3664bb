//! `cli` and `cli-p3`: a command for `mayfly run`, whose first argument
//! picks what it does:
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

use std::fmt::Display;

/// What the command was asked to do.
pub enum Command {
    Args(Vec<String>),
    Env(String),
    Cat(String),
    Write(String, String),
    Stdin,
    StdinCount,
    Http(String),
    Panic,
    Memory,
    Exit(u8),
    Loop,
    Unknown(String),
}

impl Command {
    /// The command `args` (the program's name left out) ask for.
    pub fn parse(args: Vec<String>) -> Command {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        match arg(0).as_str() {
            "args" => Command::Args(args[1..].to_vec()),
            "env" => Command::Env(arg(1)),
            "cat" => Command::Cat(arg(1)),
            "write" => Command::Write(arg(1), arg(2)),
            "stdin" => Command::Stdin,
            "stdin-count" => Command::StdinCount,
            "http" => Command::Http(arg(1)),
            "panic" => Command::Panic,
            "memory" => Command::Memory,
            "exit" => Command::Exit(arg(1).parse::<u8>().unwrap_or(1)),
            "loop" => Command::Loop,
            other => Command::Unknown(other.to_string()),
        }
    }
}

/// The exit status of `env` for a variable that is not set.
pub const NOT_SET: u8 = 3;
/// The exit status of `cat` and `write` when the file system refuses.
pub const FILE_ERROR: u8 = 4;
/// The exit status of `http` when the request fails.
pub const HTTP_ERROR: u8 = 5;
/// The exit status of an unknown command.
pub const UNKNOWN: u8 = 2;

/// What `panic` panics with.
pub const PANIC: &str = "cli: panicking on purpose";

/// `args`' output.
pub fn lines(args: &[String]) -> String {
    args.iter().map(|a| format!("{a}\n")).collect()
}

/// `stdin-count`'s output.
pub fn stdin_count(bytes: usize) -> String {
    format!("{bytes} bytes on stdin\n")
}

/// What `env` says on stderr for a variable that is not set.
pub fn not_set(name: &str) -> String {
    format!("{name}: environment variable not found\n")
}

/// What `cat` says on stderr when it cannot read `path`.
pub fn cannot_read(path: &str, err: impl Display) -> String {
    format!("cannot read {path}: {err}\n")
}

/// What `write` says on stderr when it cannot write `path`.
pub fn cannot_write(path: &str, err: impl Display) -> String {
    format!("cannot write {path}: {err}\n")
}

/// What `http` says on stderr when its GET of `url` failed.
pub fn get_failed(url: &str, why: impl Display) -> String {
    format!("GET {url}: {why}\n")
}

/// What an unknown command says on stderr.
pub fn unknown(name: &str) -> String {
    format!("unknown command `{name}`\n")
}
