//! A Spin manifest (`spin_manifest_version = 2`) exactly as written: serde
//! types with unknown fields refused. Fields Spin has and Mayfly does not
//! serve are read, so that `resolve` can refuse each by name with the
//! reason, rather than as an unknown field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `spin.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpinManifest {
    /// Must be 2.
    pub spin_manifest_version: u32,
    /// `[application]`.
    pub application: Application,
    /// `[variables]`: the app's variables, by name.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// `[[trigger.TYPE]]`.
    #[serde(default)]
    pub trigger: Triggers,
    /// `[component.ID]`.
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

/// `[application]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The app's name.
    pub name: String,
    /// Informational.
    #[serde(default)]
    pub version: Option<String>,
    /// Informational.
    #[serde(default)]
    pub description: Option<String>,
    /// Informational.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Environments the app targets (checked by `spin build`; informational).
    #[serde(default)]
    pub targets: Option<toml::Value>,
    /// `[application.trigger.TYPE]`: per-trigger settings.
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
    /// `[application.tool.NAME]`: for other tools; ignored, as Spin does.
    #[serde(default)]
    pub tool: Option<toml::Value>,
}

/// An entry of `[variables]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Informational.
    pub description: Option<String>,
    /// Whether a value must be given (then there is no default).
    #[serde(default)]
    pub required: bool,
    /// The value when none is given.
    pub default: Option<String>,
    /// Whether the value is a secret: never shown.
    #[serde(default)]
    pub secret: bool,
}

/// `[[trigger.http]]` entries, and any other type's (refused whole).
#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    /// The HTTP triggers.
    #[serde(default)]
    pub http: Vec<Trigger>,
    /// Triggers of other types, by type.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// A `[[trigger.http]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Its id (informational).
    pub id: Option<String>,
    /// `"/path"`, `"/prefix/..."`, or `{ private = true }`.
    pub route: Option<Route>,
    /// The component: its id, or a whole component inline.
    pub component: Option<ComponentRef>,
    /// `{ type = "http" }` (or `"spin"`, `"wasip3-unstable"`).
    pub executor: Option<Executor>,
    /// A fixed answer instead of a component.
    pub static_response: Option<toml::Value>,
    /// Several components by role (middleware).
    pub components: Option<toml::Value>,
    /// Dependencies per trigger.
    pub dependencies: Option<toml::Value>,
}

/// A trigger's `route`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Route {
    /// A path pattern.
    Path(String),
    /// `{ private = true }`: reachable only by other components.
    Private {
        /// Must be true.
        private: bool,
    },
}

/// A trigger's `component`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ComponentRef {
    /// The id of a `[component.ID]`.
    Id(String),
    /// A component written in place.
    Inline(Box<Component>),
}

/// A trigger's `executor`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Executor {
    /// `http`, `spin`, `wasip3-unstable` or `wagi`.
    #[serde(rename = "type")]
    pub kind: String,
    /// WAGI's argument template.
    pub argv: Option<String>,
    /// WAGI's entry point.
    pub entrypoint: Option<String>,
}

/// A `[component.ID]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// A path, or a registry or URL source.
    pub source: Source,
    /// Informational.
    pub description: Option<String>,
    /// Files the component may read.
    #[serde(default)]
    pub files: Vec<FileMount>,
    /// Globs of files left out of `files`.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// Its environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Where its outbound requests may go.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// The deprecated form of `allowed_outbound_hosts`.
    pub allowed_http_hosts: Option<toml::Value>,
    /// Labels of the key-value stores it may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Labels of the SQLite databases it may open.
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// Models it may run inference on.
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Its variables: templates over the app's.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// How it is built.
    pub build: Option<Build>,
    /// Components composed into it.
    pub dependencies: Option<toml::Value>,
    /// Whether dependencies share its configuration.
    pub dependencies_inherit_configuration: Option<toml::Value>,
    /// Environments it targets.
    pub targets: Option<toml::Value>,
    /// Per-profile overrides.
    pub profile: Option<toml::Value>,
    /// For other tools; ignored, as Spin does.
    pub tool: Option<toml::Value>,
}

/// A component's `source`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Source {
    /// A file, relative to the manifest.
    Path(PathBuf),
    /// A download: `{ url, digest }`.
    Url {
        /// Where it is.
        url: String,
        /// `sha256:HEX`.
        digest: String,
    },
    /// A registry package: `{ registry, package, version }`.
    Registry {
        /// The registry (optional in Spin).
        registry: Option<String>,
        /// `namespace:name`.
        package: String,
        /// Its version.
        version: String,
    },
}

/// An entry of `files`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    /// A path or glob, mounted at the same place under `/`.
    Pattern(String),
    /// A file or directory, mounted at `destination`.
    Placed {
        /// On the host, relative to the manifest.
        source: PathBuf,
        /// In the guest: an absolute path.
        destination: String,
    },
}

/// A component's `build`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// One command, or several run in order.
    pub command: Commands,
    /// Where they run, relative to the manifest.
    pub workdir: Option<PathBuf>,
    /// Globs of the sources, relative to `workdir`.
    #[serde(default)]
    pub watch: Vec<String>,
}

/// `command = "..."` or `command = ["...", "..."]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Commands {
    /// One command.
    One(String),
    /// Commands run one after the other, stopping at the first failure.
    Many(Vec<String>),
}
