//! What can go wrong in a build, always naming the component.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

use thiserror::Error;

/// A build that did not produce its component.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The build command (or a setup command) could not be started.
    #[error(
        "component `{component}`: cannot run `{command}` in {}: {reason}{}",
        workdir.display(), Hint(hint)
    )]
    Start {
        /// The component.
        component: String,
        /// The command.
        command: String,
        /// Where it was to run.
        workdir: PathBuf,
        /// Why it could not.
        reason: std::io::Error,
        /// What would fix it, if known.
        hint: Option<String>,
    },
    /// The command ran and failed.
    #[error("component `{component}`: {what} `{command}` {}{}", Status(*status), Hint(hint))]
    Failed {
        /// The component.
        component: String,
        /// `build command`, or the setup step that failed.
        what: &'static str,
        /// The command.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What would fix it, if the output says (a missing tool, a missing
        /// Rust target).
        hint: Option<String>,
    },
    /// The command succeeded but the component's file is not there.
    #[error(
        "component `{component}`: build command `{command}` succeeded but did not write {}",
        output.display()
    )]
    NoOutput {
        /// The component.
        component: String,
        /// The command.
        command: String,
        /// The file the manifest names as its `source`.
        output: PathBuf,
    },
}

/// `failed with exit code 2`, or `was killed by signal 9`.
struct Status(ExitStatus);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::unix::process::ExitStatusExt as _;
        match (self.0.code(), self.0.signal()) {
            (Some(code), _) => write!(f, "failed with exit code {code}"),
            (None, Some(signal)) => write!(f, "was killed by signal {signal}"),
            (None, None) => write!(f, "failed ({})", self.0),
        }
    }
}

/// A hint on a line of its own, or nothing.
struct Hint<'a>(&'a Option<String>);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, "\n  hint: {hint}"),
            None => Ok(()),
        }
    }
}
