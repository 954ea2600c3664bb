//! The ways of isolating a call that `mayfly compare` measures.

use serde::Serialize;

/// The modes, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A fresh Mayfly instance per call, in process.
    Wasm,
    /// fork/exec of the native executable: no isolation (the baseline).
    Process,
    /// Fresh user, pid, mount, network, ipc and uts namespaces per call,
    /// in a read-only root file system.
    Namespaces,
    /// A real OCI runtime (runc) running a generated bundle per call.
    Oci,
}

impl Mode {
    /// Every mode, in the order they are reported.
    pub const ALL: [Mode; 4] = [Mode::Wasm, Mode::Process, Mode::Namespaces, Mode::Oci];

    /// The mode's name, as reports and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Wasm => "wasm",
            Mode::Process => "process",
            Mode::Namespaces => "namespaces",
            Mode::Oci => "oci",
        }
    }
}
