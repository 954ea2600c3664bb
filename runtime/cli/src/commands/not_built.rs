//! A subcommand this build was made without (its cargo feature was off).
//! It is still recognised, so that asking for it says how to get it rather
//! than that there is no such command.

use anyhow::Result;
use clap::Args;

/// Not built into this mayfly
#[derive(Args)]
pub struct NotBuilt {
    /// Whatever was given: not looked at
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<std::ffi::OsString>,
}

impl NotBuilt {
    /// Fails, naming `command` and the cargo `feature` that builds it in.
    pub fn execute(self, command: &str, feature: &str) -> Result<()> {
        anyhow::bail!(
            "`mayfly {command}` is not built into this mayfly: it was built without the \
             `{feature}` cargo feature (on by default; `cargo build --release -p mayfly \
             --features {feature}`)"
        )
    }
}
