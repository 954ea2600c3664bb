//! The `mayfly` command line. Each subcommand lives in its own file under
//! `commands/`; errors are printed once, here, with their whole chain.
//!
//! Two cargo features, both on by default, carry guests inside the binary:
//! `demo` (the built-in demo app, `demo.rs`) and `compare` (`mayfly
//! compare` and its workload). Without them the binary builds no guest.

mod commands;
#[cfg(feature = "demo")]
mod demo;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // SAFETY: first thing in `main`: no other thread has started.
    unsafe { mayfly_serve::launch::errors_without_backtraces() };
    let cli = commands::Cli::parse();
    // Connections and guests' files need descriptors, and guests' share is
    // sized from this limit: take all the system allows, before anything
    // is counted. (A failure leaves the soft limit, which is still
    // enforced.)
    let _ = mayfly_host_api::budget::raise_fd_limit();
    match cli.execute() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
