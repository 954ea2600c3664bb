//! The app manifest: a TOML file naming components and the routes they serve.
//!
//! ```toml
//! [component.hello]
//! source = "hello.wasm"          # relative to this file
//!
//! [component.api]
//! source = "target/api.wasm"
//!
//! [[route]]
//! path = "/"                     # exact path
//! component = "hello"
//!
//! [[route]]
//! path = "/api/..."              # `/api` and everything below it
//! component = "api"
//!
//! [limits]                       # for every component...
//! timeout = "10s"
//!
//! [component.api.limits]         # ...unless it sets its own
//! timeout = "2s"
//! memory = "64MiB"
//! ```
//!
//! Loading happens in two stages: [`ManifestFile`] is the file as written
//! (unknown fields are errors), and [`AppSpec`] is the validated result
//! (names checked, paths resolved, routes unambiguous). Limits that depend
//! on the server (`instances`, `memory`) are checked when the app loads,
//! against the server's real settings.
//!
//! The files here, in the order a manifest meets them: [`file`](mod@file) (the
//! serde types), `resolve` (checks and resolution), [`error`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mayfly_sandbox::{Grants, RequestLimits};

use crate::router::Pattern;

pub mod error;
pub mod file;
mod resolve;

pub use self::error::ManifestError;
pub use self::file::ManifestFile;

/// Where a component's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on disk.
    File(PathBuf),
    /// Bytes built into the binary (the demo app), with a label for messages.
    Embedded {
        /// Shown where a file path would be.
        label: &'static str,
        /// The component.
        bytes: &'static [u8],
    },
    /// Bytes deployed through the admin API.
    Deployed {
        /// Shown where a file path would be.
        label: String,
        /// The component.
        bytes: Arc<[u8]>,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded { label, .. } => write!(f, "{label} (built in)"),
            Source::Deployed { label, .. } => write!(f, "{label} (deployed)"),
        }
    }
}

/// A component as the app declares it.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    /// Its name in the manifest.
    pub name: String,
    /// Its bytes.
    pub source: Source,
    /// The manifest field it came from, for error messages.
    pub field: String,
    /// The bounds each of its requests runs under.
    pub limits: RequestLimits,
    /// Where the limits that depend on the server were set, if they were:
    /// checked against the server's settings when the app loads.
    pub limit_fields: LimitFields,
    /// What each of its instances may reach.
    pub grants: Grants,
}

/// Where a component's server-bound limits were set (`limits.instances`,
/// `component.api.limits.memory`...); `None` where the default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitFields {
    /// The field that set `instances`.
    pub instances: Option<String>,
    /// The field that set `memory`.
    pub memory: Option<String>,
}

/// A validated app: components and an unambiguous route table.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// The app's name.
    pub name: String,
    /// The components, in name order.
    pub components: Vec<ComponentSpec>,
    /// Route patterns and the index of the component each one serves.
    pub routes: Vec<(Pattern, usize)>,
}

impl AppSpec {
    /// Reads and validates the manifest at `path`.
    pub fn from_manifest(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ManifestError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let file: ManifestFile = toml::from_str(&text).map_err(|err| ManifestError::Parse {
            path: path.to_path_buf(),
            message: err.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let default_name = path
            .file_stem()
            .map(|s| resolve::app_name_from_stem(&s.to_string_lossy()))
            .unwrap_or_else(|| "app".into());
        resolve::resolve(file, base, default_name).map_err(|(field, message)| {
            ManifestError::Field {
                path: path.to_path_buf(),
                field,
                message,
            }
        })
    }

    /// An app of one component, serving every path.
    pub fn single(name: String, source: Source) -> Self {
        Self {
            name: name.clone(),
            components: vec![ComponentSpec {
                field: "(command line)".into(),
                name,
                source,
                limits: RequestLimits::default(),
                limit_fields: LimitFields::default(),
                grants: Grants::default(),
            }],
            routes: vec![(Pattern::Prefix(String::new()), 0)],
        }
    }

    /// Whether any component has a fuel limit: the engine must then meter
    /// fuel.
    pub fn needs_fuel(&self) -> bool {
        self.components.iter().any(|c| c.limits.fuel.is_some())
    }
}
