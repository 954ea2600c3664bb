//! # mayfly-oci
//!
//! A Mayfly app as an OCI image, for a containerd shim to run from the
//! image's root file system: the app's manifest, its components and the
//! directories it grants, in one gzipped layer under `/app`, written as an
//! OCI image layout tarball that `ctr image import` takes.
//!
//! The same app gives the same bytes, and so the same digest, wherever and
//! whenever it is built: nothing in the image holds a time, an owner or a
//! path of the build machine.
//!
//! ```no_run
//! use mayfly_oci::Reference;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let reference = Reference::parse("hello:1")?; // docker.io/library/hello:1
//! let image = mayfly_oci::build("app.toml".as_ref(), &reference, None)?;
//! image.write_to("hello.tar".as_ref())?;
//! println!("{} ({})", image.reference(), image.digest());
//! # Ok(())
//! # }
//! ```
//!
//! What the image holds (the contract with the shim):
//!
//! - `/app/app.toml` ([`APP_MANIFEST`]): the manifest, with every path in it
//!   relative to `/app`: `component.NAME.source` is
//!   `components/NAME.wasm`, `component.NAME.files[i].host` is
//!   `files/NAME/<i>`, `secrets` is `secrets.toml`, and `name` is written
//!   out if the manifest had none. Anything else stays as written.
//! - `/app/runtime.toml` ([`RUNTIME_CONFIG`]), if a runtime config was given.
//! - [`DATA_DIR`] and [`CACHE_DIR`], empty.
//! - A config for the build machine's platform (`linux`, its
//!   architecture) with the entrypoint `["/app/app.toml"]`, the working
//!   directory `/app`, ports 8080 and 8081, and the app's name as
//!   `org.opencontainers.image.title`.
//!
//! Secrets files and runtime configs go into the image as they are: anyone
//! who can pull the image can read them.
//!
//! The modules, in the order a build meets them: [`reference`](mod@reference) (the image's
//! name), `app` (the app's files, read and checked), `layer` (the
//! reproducible tar), `image` (the OCI documents and the layout tarball).

#![deny(missing_docs)]

mod app;
mod error;
mod image;
mod layer;
pub mod reference;

use std::path::Path;

pub use self::error::BuildError;
pub use self::image::Image;
pub use self::reference::{Reference, ReferenceError};

/// The app's manifest in the image: the image's entrypoint.
pub const APP_MANIFEST: &str = "/app/app.toml";
/// The runtime config in the image, when one was given.
pub const RUNTIME_CONFIG: &str = "/app/runtime.toml";
/// The image's working directory, where the app's files are.
pub const WORKING_DIR: &str = "/app";
/// The shim's default data directory (key-value stores), empty in the image.
pub const DATA_DIR: &str = "/var/lib/mayfly";
/// The shim's default compile cache directory, empty in the image.
pub const CACHE_DIR: &str = "/var/cache/mayfly";

/// Builds the image of the app at `manifest`, named `reference`, with the
/// runtime config at `runtime_config` if there is one.
///
/// Everything is read and checked first: the manifest as `mayfly serve`
/// would (the errors are its own, naming the file and field), then each
/// component (a readable WebAssembly component), each granted directory
/// (only directories and regular files: a symlink is refused, naming it)
/// and the runtime config. Nothing is written: see [`Image::write_to`].
pub fn build(
    manifest: &Path,
    reference: &Reference,
    runtime_config: Option<&Path>,
) -> Result<Image, BuildError> {
    let app = app::collect(manifest, runtime_config)?;
    let layer = layer::build(&app).map_err(|err| BuildError::Encode(err.to_string()))?;
    Image::assemble(reference, &app, layer)
}
