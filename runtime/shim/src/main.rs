//! `containerd-shim-mayfly-v1`: installed on containerd's `PATH`, it runs
//! Mayfly app images for the runtime `io.containerd.mayfly.v1`.

use containerd_shim_mayfly::MayflyShim;
use containerd_shim_wasm::shim::{Cli as _, Config};

fn main() {
    // SAFETY: first thing in `main`: no other thread has started.
    unsafe { mayfly_serve::launch::errors_without_backtraces() };
    MayflyShim::run(Config::default());
}
