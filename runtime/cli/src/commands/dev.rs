//! `mayfly dev`: build, serve and rebuild on every save.

use anyhow::Result;
use clap::Args;

use super::serve::Serve;

/// Build the app, serve it, and build it again whenever a source changes:
/// `mayfly serve --build --watch --log-requests app.toml`
///
/// Every request gets a line with its method, path, status and time; a
/// guest that traps gets its error with its wasm backtrace; a build that
/// fails prints the compiler's output and leaves the running version
/// serving. Takes every `mayfly serve` flag; APP defaults to `app.toml`.
#[derive(Args)]
pub struct Dev {
    #[command(flatten)]
    serve: Serve,
}

impl Dev {
    pub fn execute(self) -> Result<()> {
        self.serve.for_development().execute()
    }
}
