//! A plain fork/exec per call: the baseline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::child::run_child;
use super::cleanup::making;
use super::runner::{Call, Runner};

/// A plain fork/exec of the native executable: the baseline, with no
/// isolation at all (and no parent-death signal, which would make std fork
/// where it now spawns: the child is killed when the command is stopped,
/// not when it is killed with SIGKILL).
pub struct ProcessRunner {
    binary: PathBuf,
}

impl ProcessRunner {
    /// Runs `binary`.
    pub fn new(binary: &Path) -> Self {
        Self {
            binary: binary.to_path_buf(),
        }
    }
}

impl Runner for ProcessRunner {
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call> {
        let mut command = Command::new(&self.binary);
        command.args(args);
        run_child(command, deadline, making()?)
    }
}
