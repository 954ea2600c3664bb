//! `mayfly oci`: an app as an OCI image, for containerd.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use mayfly_oci::Reference;

/// Package an app as an OCI image for containerd
#[derive(Args)]
pub struct Oci {
    #[command(subcommand)]
    command: OciCommand,
}

#[derive(Subcommand)]
enum OciCommand {
    Build(Build),
}

impl Oci {
    pub fn execute(self) -> Result<()> {
        match self.command {
            OciCommand::Build(build) => build.execute(),
        }
    }
}

/// Build an app into an OCI image layout tarball
///
/// The image holds the app under `/app`: the manifest, rewritten so that
/// every path in it is relative to `/app`, its components, the directories
/// it grants and its secrets file, in one layer that a Mayfly containerd
/// shim runs. The same app always gives the same image, byte for byte.
///
/// The app is checked first, as `mayfly serve` would, and nothing is
/// written if it has a problem. Config values read from the environment,
/// `{ env = "NAME" }`, stay references: a task reads them from its
/// container's environment when it starts. Secrets files and runtime
/// configs go into the image as they are: anyone who can pull it can read
/// them.
///
/// Import the tarball with `ctr image import FILE` (for Kubernetes, `ctr -n
/// k8s.io image import FILE`).
#[derive(Args)]
struct Build {
    /// The app's manifest
    #[arg(value_name = "APP_TOML")]
    manifest: PathBuf,

    /// The tarball to write (replaced if it exists)
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// The image's name, as `hello:1`, `me/hello:1` or
    /// `registry.example.com:5000/team/hello:1` (no tag means `latest`)
    #[arg(long, value_name = "NAME[:TAG]", value_parser = Reference::parse)]
    name: Reference,

    /// A runtime config to include (`/app/runtime.toml`), as `mayfly serve
    /// --runtime-config` takes
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
}

impl Build {
    fn execute(self) -> Result<()> {
        let image = mayfly_oci::build(&self.manifest, &self.name, self.runtime_config.as_deref())?;
        image.write_to(&self.output)?;
        let output = self.output.display();
        println!(
            "Built {} ({}) into {output}",
            image.reference(),
            image.digest()
        );
        println!("Import it with: ctr image import {output}");
        Ok(())
    }
}
