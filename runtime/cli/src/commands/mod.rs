//! Subcommands and the flags they share.

mod check;
mod compare;
mod compile;
mod run;
mod serve;
mod shared;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// Mayfly runs WebAssembly components as short-lived, isolated request
/// handlers: every HTTP request gets a fresh component instance that can
/// reach only what the app manifest grants it, and the instance is thrown
/// away when the response is done.
#[derive(Parser)]
#[command(name = "mayfly", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// How log lines are written on stderr
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    Serve(serve::Serve),
    Run(run::Run),
    Check(check::Check),
    Compare(compare::Compare),
    Compile(compile::Compile),
}

impl Cli {
    /// Runs the command; the exit status is the command's (for `run`, the
    /// guest's) unless it fails.
    pub fn execute(self) -> Result<ExitCode> {
        crate::logging::init(self.log_format);
        let done = |()| ExitCode::SUCCESS;
        match self.command {
            Command::Serve(serve) => serve.execute().map(done),
            Command::Run(run) => run.execute(),
            Command::Check(check) => check.execute().map(done),
            Command::Compare(compare) => compare.execute().map(done),
            Command::Compile(compile) => compile.execute().map(done),
        }
    }
}
