//! What `containerd-shim-wasm` calls: the shim's name and the sandbox that
//! runs inside each container.
//!
//! An app image (from `mayfly oci build`) holds the app in its root
//! filesystem, under `/app`, and names the manifest as the container's
//! argument. The root filesystem, not wasm layers, because an app is more
//! than one component: a manifest, its components and the directories it
//! grants, which a rootfs carries as they are, and which every containerd
//! (1.6 included) unpacks; wasm-layer images must be made for the `wasm`
//! platform, one module each.
//!
//! As with every runwasi shim, a container whose argument is a Linux
//! executable runs as runc would run it: a pod's sandbox (`pause`)
//! container goes through the same runtime class.

use std::path::Path;

use anyhow::{Context as _, bail};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use containerd_shim_wasm::shim::{Shim, Version, version};

use crate::task;

/// The shim: runtime `io.containerd.mayfly.v1`, binary
/// `containerd-shim-mayfly-v1`.
pub struct MayflyShim;

impl Shim for MayflyShim {
    type Sandbox = MayflySandbox;

    fn name() -> &'static str {
        "mayfly"
    }

    fn version() -> Version {
        version!()
    }

    /// None: apps come in the root filesystem (see the module's docs).
    fn supported_layers_types() -> &'static [&'static str] {
        &[]
    }
}

/// Runs one task: serves the app named by the container's argument.
#[derive(Default)]
pub struct MayflySandbox;

impl Sandbox for MayflySandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        Ok(task::run(ctx.args().to_vec(), ctx.envs().to_vec()))
    }

    /// Ours if the argument is a manifest or a component in the root
    /// filesystem.
    async fn can_handle(&self, ctx: &impl RuntimeContext) -> anyhow::Result<()> {
        let app = ctx
            .args()
            .first()
            .context("the container has no arguments: its first must be the app")?;
        let path = Path::new(app);
        let kind_ok = path
            .extension()
            .is_some_and(|ext| ext == "toml" || ext == "wasm");
        if !kind_ok {
            bail!("`{app}` is neither an app manifest (.toml) nor a component (.wasm)");
        }
        if !path.is_file() {
            bail!("`{app}` is not a file in the image");
        }
        Ok(())
    }
}
