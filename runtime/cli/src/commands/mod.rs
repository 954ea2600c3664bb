//! Subcommands and the flags they share. `compare` is a cargo feature
//! (on by default); a build without it still knows the name, and says how
//! to get the command (`not_built`).

mod build;
mod check;
#[cfg(feature = "compare")]
mod compare;
mod compile;
mod dev;
mod new;
#[cfg(not(feature = "compare"))]
mod not_built;
mod oci;
mod run;
mod serve;
mod shared;

use std::process::ExitCode;

use anyhow::Result;
use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};

use mayfly_serve::logging::{self, LogFormat};

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
    #[arg(long, global = true, value_name = "FORMAT", default_value = "human",
          value_parser = clap::builder::PossibleValuesParser::new(["human", "json"])
              .try_map(|format| format.parse::<LogFormat>()))]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    New(new::New),
    Build(build::Build),
    Dev(dev::Dev),
    Serve(serve::Serve),
    Run(run::Run),
    Check(check::Check),
    #[cfg(feature = "compare")]
    Compare(compare::Compare),
    #[cfg(not(feature = "compare"))]
    #[command(hide = true)]
    Compare(not_built::NotBuilt),
    Compile(compile::Compile),
    Oci(oci::Oci),
}

impl Cli {
    /// Runs the command; the exit status is the command's (for `run`, the
    /// guest's) unless it fails.
    pub fn execute(self) -> Result<ExitCode> {
        logging::init(self.log_format);
        let done = |()| ExitCode::SUCCESS;
        match self.command {
            Command::New(new) => new.execute().map(done),
            Command::Build(build) => build.execute().map(done),
            Command::Dev(dev) => dev.execute().map(done),
            Command::Serve(serve) => serve.execute().map(done),
            Command::Run(run) => run.execute(),
            Command::Check(check) => check.execute().map(done),
            #[cfg(feature = "compare")]
            Command::Compare(compare) => compare.execute().map(done),
            #[cfg(not(feature = "compare"))]
            Command::Compare(absent) => absent.execute("compare", "compare").map(done),
            Command::Compile(compile) => compile.execute().map(done),
            Command::Oci(oci) => oci.execute().map(done),
        }
    }
}
