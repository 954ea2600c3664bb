//! The `mayfly` command line. Each subcommand lives in its own file under
//! `commands/`; errors are printed once, here, with their whole chain.

mod commands;
mod demo;
mod logging;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match cli.execute() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
