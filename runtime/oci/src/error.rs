//! What can stop a build: the app (always naming the manifest and field),
//! the runtime config, the machine, or writing the output.

use std::path::PathBuf;

use mayfly_serve::manifest::ManifestError;
use thiserror::Error;

/// Why an image could not be built or written.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The manifest is invalid, or a file it names cannot go into an image
    /// (missing, not WebAssembly, a symlink in a granted directory...):
    /// the error names the manifest and the field.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The runtime config (`--runtime-config`) is invalid.
    #[error("{0:#}")]
    RuntimeConfig(anyhow::Error),
    /// This machine's architecture has no name in the OCI image spec that
    /// Mayfly knows.
    #[error(
        "cannot build an image for this machine: its architecture `{0}` has no OCI name \
         Mayfly knows (amd64, arm64, ...)"
    )]
    Architecture(&'static str),
    /// The image's documents could not be encoded (a bug, not a problem
    /// with the app).
    #[error("cannot encode the image: {0}")]
    Encode(String),
    /// The output could not be written; nothing was left at its path.
    #[error("cannot write the image to {}: {source}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<oci_spec::OciSpecError> for BuildError {
    fn from(err: oci_spec::OciSpecError) -> Self {
        Self::Encode(err.to_string())
    }
}
