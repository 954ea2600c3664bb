//! What can be wrong with a manifest: always the file, and where there is
//! one, the field.

use std::path::PathBuf;

use thiserror::Error;

/// A problem with a manifest, naming the file and the field.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The manifest could not be read.
    #[error("cannot read manifest {path}: {reason}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The manifest is not valid TOML, or has unknown or mistyped fields.
    #[error("invalid manifest {path}: {message}")]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// A field has a value that is not allowed.
    #[error("invalid manifest {path}: field `{field}`: {message}")]
    Field {
        /// The manifest.
        path: PathBuf,
        /// The field, as `component.NAME.source` or `route[2].path`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}
