//! # mayfly-build
//!
//! Builds an app's components from source, as each component's
//! `[component.NAME.build]` table in the manifest says: a shell command, the
//! directory it runs in, and the globs of the sources it reads.
//!
//! - [`run`]: one component's build, its output streamed line by line
//!   with the component's name in front, and how long it took; and every
//!   component of an app, one after the other, with progress.
//! - [`tools`]: the tools a component's directory pins, set up there on
//!   first use (a `requirements.txt`: a Python virtual environment in
//!   `.venv`; a `package.json`: `node_modules`), never globally; and the
//!   command that installs a tool a build could not find.
//! - [`sources`]: the files a component's `watch` globs match, and a stamp
//!   of them that changes when one is edited, added or removed.
//! - [`error`]: what went wrong, naming the component, the command and
//!   its exit code.

#![deny(missing_docs)]

pub mod error;
pub mod run;
pub mod sources;
mod stream;
pub mod tools;

use std::path::PathBuf;

pub use self::error::BuildError;
pub use self::run::{build, build_all};
pub use self::sources::Sources;

/// How one component is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    /// The component's name, in front of every line of its build's output.
    pub component: String,
    /// A shell command (`sh -c`), as `cargo build --release`.
    pub command: String,
    /// Where the command runs (absolute, or relative to the current
    /// directory).
    pub workdir: PathBuf,
    /// Globs, relative to `workdir`, of the files the build reads: a change
    /// to one of them is a reason to build again (`*.py` matches in
    /// `workdir` alone, `**/*.py` at any depth).
    pub watch: Vec<String>,
    /// The file the build writes: the component's `source`. Never a
    /// source itself, even if a glob matches it.
    pub output: PathBuf,
}
