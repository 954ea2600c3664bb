//! A validated app: its components (each with its source, limits and
//! grants) and its routes.

use std::path::PathBuf;
use std::sync::Arc;

use mayfly_build::BuildStep;
use mayfly_sandbox::{EngineSettings, Grants};

use crate::limits::Limits;
use crate::router::Pattern;

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
    pub limits: Limits,
    /// Where the limits that depend on the server were set, if they were:
    /// checked against the server's settings when the app loads.
    pub limit_fields: LimitFields,
    /// What each of its instances may reach.
    pub grants: Grants,
    /// How it is built from source, if the manifest says.
    pub build: Option<BuildStep>,
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

/// Which manifest an app came from, where that changes what a guest
/// sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AppKind {
    /// Mayfly's own `app.toml` (or one component).
    #[default]
    Mayfly,
    /// A Spin manifest: every request also carries Spin's `spin-*` headers
    /// (`spin-path-info`, `spin-full-url`...), as Spin's SDKs read them.
    Spin,
}

/// A validated app: components and an unambiguous route table.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// The app's name.
    pub name: String,
    /// Which manifest it came from.
    pub kind: AppKind,
    /// The components, in name order.
    pub components: Vec<ComponentSpec>,
    /// Route patterns and the index of the component each one serves.
    pub routes: Vec<(Pattern, usize)>,
}

impl AppSpec {
    /// An app of one component, serving every path.
    pub fn single(name: String, source: Source) -> Self {
        Self {
            name: name.clone(),
            kind: AppKind::Mayfly,
            components: vec![ComponentSpec {
                field: "(command line)".into(),
                name,
                source,
                limits: Limits::default(),
                limit_fields: LimitFields::default(),
                grants: Grants::default(),
                build: None,
            }],
            routes: vec![(Pattern::Prefix(String::new()), 0)],
        }
    }

    /// How its components are built, in name order: those with a
    /// `build` table.
    pub fn build_steps(&self) -> Vec<BuildStep> {
        self.components
            .iter()
            .filter_map(|component| component.build.clone())
            .collect()
    }

    /// Whether any component has a fuel limit: the engine must then meter
    /// fuel.
    pub fn needs_fuel(&self) -> bool {
        self.components
            .iter()
            .any(|c| c.limits.store.fuel.is_some())
    }

    /// The server's engine `settings` as this app needs them: with fuel
    /// metering if a component has a fuel limit, and WASI 0.3 if a
    /// component is a 0.3 one (or `settings` asks for it anyway).
    pub fn engine_settings(&self, settings: EngineSettings) -> EngineSettings {
        EngineSettings {
            consume_fuel: self.needs_fuel(),
            wasi_03: settings.wasi_03 || self.needs_wasi_03(),
            ..settings
        }
    }

    /// Whether a component is a WASI 0.3 one (read from its exports; a
    /// file that cannot be read says no, and fails to load later, saying
    /// why).
    pub fn needs_wasi_03(&self) -> bool {
        self.components
            .iter()
            .any(|component| match &component.source {
                Source::File(path) => std::fs::read(path)
                    .is_ok_and(|bytes| mayfly_sandbox::binary::exports_wasi_03(&bytes)),
                Source::Embedded { bytes, .. } => mayfly_sandbox::binary::exports_wasi_03(bytes),
                Source::Deployed { bytes, .. } => mayfly_sandbox::binary::exports_wasi_03(bytes),
            })
    }
}
