//! A runner for each mode asked for, or a note saying why it is skipped
//! here (no user namespaces, no OCI runtime, not root).

use std::path::Path;
use std::sync::Arc;

use crate::mode::Mode;
use crate::runners::{
    NamespacesRunner, OciRunner, ProcessRunner, Runner, WasmRunner, require_namespaces,
};

/// The runners made, in the order of the modes.
pub(super) struct Runners {
    /// Each mode that runs here, with its runner.
    pub(super) all: Vec<(Mode, Arc<dyn Runner>)>,
    /// The OCI mode's runner again, if it runs: it counts the calls it had
    /// to start again.
    pub(super) oci: Option<Arc<OciRunner>>,
}

/// Makes a runner for each of `modes`: the Wasm one from the component at
/// `wasm`, the native ones from the executable at `native`, each isolate
/// with `memory_mib` MiB of memory. Notes what each skipped mode lacks and
/// how each native mode limits memory.
pub(super) fn make(
    modes: &[Mode],
    oci_runtime: Option<&Path>,
    wasm: &Path,
    native: &Path,
    memory_mib: u64,
    notes: &mut Vec<String>,
) -> anyhow::Result<Runners> {
    let memory = memory_mib << 20;
    let mut runners = Runners {
        all: Vec::new(),
        oci: None,
    };
    for mode in modes {
        let runner: Arc<dyn Runner> = match mode {
            Mode::Wasm => Arc::new(WasmRunner::new(wasm, usize::try_from(memory)?)?),
            Mode::Process => Arc::new(ProcessRunner::new(native)),
            Mode::Namespaces => {
                if let Err(err) = require_namespaces() {
                    notes.push(format!("namespaces: skipped: {err}"));
                    continue;
                }
                let runner = NamespacesRunner::new(native, memory)?;
                notes.push(format!(
                    "namespaces: memory limited by {}",
                    runner.memory_limit()
                ));
                Arc::new(runner)
            }
            Mode::Oci => {
                let Some(runtime) = oci_runtime
                    .map(Path::to_path_buf)
                    .or_else(OciRunner::find_runtime)
                else {
                    notes.push(
                        "oci: skipped: no OCI runtime found; install one with \
                         `apt-get install runc` or pass --oci-runtime PATH"
                            .into(),
                    );
                    continue;
                };
                if !nix::unistd::geteuid().is_root() {
                    notes.push("oci: skipped: runc needs root here".into());
                    continue;
                }
                let runner = Arc::new(OciRunner::new(&runtime, native, memory)?);
                notes.push(format!(
                    "oci: memory limited by the runtime's cgroup ({memory_mib} MiB in the bundle)"
                ));
                runners.oci = Some(runner.clone());
                runner
            }
        };
        runners.all.push((*mode, runner));
    }
    Ok(runners)
}
