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
//! (names checked, paths resolved, routes unambiguous).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use mayfly_host_api::outbound::HostPattern;

use crate::engine::EngineSettings;
use crate::limits::{MAX_TABLE_ELEMENTS, RequestLimits};
use crate::router::Pattern;
use crate::units::{parse_duration, parse_size};

/// The manifest exactly as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// A name for the app, shown in logs and part of its state's keys and
    /// file name: 1 to 63 lowercase letters, digits, `-` and `_`. Defaults
    /// to the file's stem, made to fit
    /// (lowercased, other characters as `_`).
    pub name: Option<String>,
    /// Components by name.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentEntry>,
    /// Routes, in any order: the most specific one matches.
    #[serde(default)]
    pub route: Vec<RouteEntry>,
    /// Limits for every component that does not set its own.
    pub limits: Option<LimitsEntry>,
    /// A TOML file of secrets (`name = "value"`), relative to the manifest,
    /// that config values may name with `{ secret = "name" }`.
    pub secrets: Option<PathBuf>,
}

/// A `[limits]` or `[component.NAME.limits]` table. Each field that is left
/// out keeps the value from the level above (app, then built-in default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    /// Wall-clock budget of a request, as `500ms`, `30s` or `2m`.
    pub timeout: Option<String>,
    /// Largest linear memory of an instance, as `64MiB`.
    pub memory: Option<String>,
    /// Largest table of an instance, in elements.
    pub table_elements: Option<u32>,
    /// Most host resources an instance may hold at once.
    pub resources: Option<u32>,
    /// Most instances of one component running at once.
    pub instances: Option<u32>,
    /// Most requests waiting for an instance.
    pub queue: Option<u32>,
    /// Largest request body, as `10MiB`.
    pub request_body: Option<String>,
    /// Largest request head (request line and headers), as `16KiB`.
    pub request_headers: Option<String>,
    /// Most headers in a response.
    pub response_headers: Option<u32>,
    /// Fuel per request (roughly, WebAssembly instructions executed).
    pub fuel: Option<u64>,
}

/// One `[component.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentEntry {
    /// Path of the `.wasm` component, relative to the manifest.
    pub source: PathBuf,
    /// This component's limits.
    pub limits: Option<LimitsEntry>,
    /// Environment variables the component sees (nothing is inherited).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Host directories the component may open.
    #[serde(default)]
    pub files: Vec<FilesEntry>,
    /// `scheme://host:port` patterns the component may send HTTP requests to.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Labels of the key-value stores the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Configuration values (`wasi:config`), by key.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
}

/// Where a configuration value comes from. Nothing is read implicitly: a
/// value from the host's environment or from the secrets file is named.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawConfigValue")]
pub enum ConfigValue {
    /// Written in the manifest.
    Literal(String),
    /// The host's environment variable `env`, read at load time.
    Env {
        /// The variable's name.
        env: String,
    },
    /// Entry `secret` of the app's secrets file, read at load time.
    Secret {
        /// The entry's name.
        secret: String,
    },
}

/// A config value as written, before its form is checked.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawConfigValue {
    Literal(String),
    Table(BTreeMap<String, String>),
}

impl TryFrom<RawConfigValue> for ConfigValue {
    type Error = String;

    fn try_from(raw: RawConfigValue) -> Result<Self, String> {
        let table = match raw {
            RawConfigValue::Literal(value) => return Ok(ConfigValue::Literal(value)),
            RawConfigValue::Table(table) => table,
        };
        let mut entries = table.into_iter();
        match (entries.next(), entries.next()) {
            (Some((kind, name)), None) if kind == "env" => Ok(ConfigValue::Env { env: name }),
            (Some((kind, name)), None) if kind == "secret" => {
                Ok(ConfigValue::Secret { secret: name })
            }
            _ => Err(
                "a config value is a string, `{ env = \"NAME\" }` (a host environment \
                 variable) or `{ secret = \"NAME\" }` (an entry of the secrets file)"
                    .into(),
            ),
        }
    }
}

/// One `[[component.NAME.files]]` grant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesEntry {
    /// The host directory, relative to the manifest.
    pub host: PathBuf,
    /// Where the guest sees it: an absolute path such as `/data`.
    pub guest: String,
    /// `read-only` (the default) or `read-write`.
    #[serde(default)]
    pub mode: FilesMode,
}

/// What a guest may do in a granted directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilesMode {
    /// Read files and list directories.
    #[default]
    ReadOnly,
    /// Also create, write, rename and delete.
    ReadWrite,
}

/// One `[[route]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// `/exact/path` or `/prefix/...`.
    pub path: String,
    /// The name of the component that serves it.
    pub component: String,
}

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
    /// What each of its instances may reach.
    pub grants: Grants,
}

/// The capabilities granted to a component; everything else is denied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Environment variables, exactly these.
    pub env: Vec<(String, String)>,
    /// Preopened directories.
    pub files: Vec<FileGrant>,
    /// Where outbound HTTP requests may go.
    pub outbound: Arc<[HostPattern]>,
    /// Labels of the key-value stores it may open.
    pub stores: Vec<String>,
    /// Its configuration values, resolved at load time.
    pub config: Vec<(String, String)>,
}

/// A host directory a component may open.
///
/// The directory is opened when the grant is made, and every instance gets
/// that same directory: if its path is later renamed, or replaced with a
/// symlink to somewhere else, instances still see what was granted.
#[derive(Debug, Clone)]
pub struct FileGrant {
    /// The directory on the host, as it was named.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Read-only or read-write.
    pub mode: FilesMode,
    /// Which directory that is (device and inode): two grants of the same
    /// path are the same only if it still names the same directory.
    identity: (u64, u64),
    /// The directory, held open for as long as the grant lives.
    _handle: Arc<std::fs::File>,
    /// What each instance opens: the held handle's `/proc/self/fd` entry
    /// (the same directory, whatever its path names now), or, where there
    /// is no such entry, the path.
    open_path: PathBuf,
}

impl FileGrant {
    /// Grants the directory `host` at `guest`, opening it now. The caller
    /// has checked `guest`.
    pub fn new(host: PathBuf, guest: String, mode: FilesMode) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::fs::MetadataExt as _;
        let handle = std::fs::File::open(&host)?;
        let held = handle.metadata()?;
        if !held.is_dir() {
            return Err(std::io::Error::other("not a directory"));
        }
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
        let same = std::fs::metadata(&by_fd)
            .is_ok_and(|meta| meta.dev() == held.dev() && meta.ino() == held.ino());
        let open_path = if same { by_fd } else { host.clone() };
        Ok(Self {
            host,
            guest,
            mode,
            identity: (held.dev(), held.ino()),
            _handle: Arc::new(handle),
            open_path,
        })
    }

    /// The path an instance's preopen is opened from (see [`FileGrant`]).
    pub fn open_path(&self) -> &Path {
        &self.open_path
    }
}

impl PartialEq for FileGrant {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host
            && self.guest == other.guest
            && self.mode == other.mode
            && self.identity == other.identity
    }
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
            .map(|s| app_name_from_stem(&s.to_string_lossy()))
            .unwrap_or_else(|| "app".into());
        Self::resolve(file, base, default_name).map_err(|(field, message)| ManifestError::Field {
            path: path.to_path_buf(),
            field,
            message,
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
                grants: Grants::default(),
            }],
            routes: vec![(Pattern::Prefix(String::new()), 0)],
        }
    }

    /// Validates a parsed manifest; errors are `(field, message)`.
    fn resolve(
        file: ManifestFile,
        base: &Path,
        default_name: String,
    ) -> Result<Self, (String, String)> {
        if file.component.is_empty() {
            return Err((
                "component".into(),
                "the app declares no components; add a `[component.NAME]` table with a `source`"
                    .into(),
            ));
        }
        let app_limits = match &file.limits {
            Some(entry) => entry.apply(RequestLimits::default(), "limits")?,
            None => RequestLimits::default(),
        };
        let secrets = match &file.secrets {
            Some(path) => Some(read_secrets(&base.join(path))?),
            None => None,
        };
        let mut components = Vec::with_capacity(file.component.len());
        for (name, entry) in file.component {
            let field = format!("component.{name}");
            check_component_name(&name).map_err(|message| (field.clone(), message))?;
            let limits = match &entry.limits {
                Some(limits) => limits.apply(app_limits, &format!("{field}.limits"))?,
                None => app_limits,
            };
            let mut grants = resolve_grants(&entry, base, &field)?;
            grants.stores = resolve_stores(&entry, &field)?;
            grants.config = resolve_config(&entry, secrets.as_ref(), &field)?;
            components.push(ComponentSpec {
                source: Source::File(base.join(&entry.source)),
                field: format!("{field}.source"),
                name,
                limits,
                grants,
            });
        }

        let mut routes = Vec::with_capacity(file.route.len());
        let mut seen: HashMap<Pattern, usize> = HashMap::new();
        for (i, route) in file.route.iter().enumerate() {
            let pattern =
                Pattern::parse(&route.path).map_err(|m| (format!("route[{i}].path"), m))?;
            let Some(target) = components.iter().position(|c| c.name == route.component) else {
                let known: Vec<&str> = components.iter().map(|c| c.name.as_str()).collect();
                return Err((
                    format!("route[{i}].component"),
                    format!(
                        "no component named `{}` (declared: {})",
                        route.component,
                        known.join(", ")
                    ),
                ));
            };
            if let Some(first) = seen.insert(pattern.clone(), i) {
                return Err((
                    format!("route[{i}].path"),
                    format!("route `{pattern}` is ambiguous: route[{first}] has the same pattern"),
                ));
            }
            routes.push((pattern, target));
        }
        if routes.is_empty() {
            return Err((
                "route".into(),
                "the app has no routes; add a `[[route]]` with a `path` and a `component`".into(),
            ));
        }
        let name = match file.name {
            Some(name) => {
                check_app_name(&name).map_err(|message| ("name".to_string(), message))?;
                name
            }
            None => default_name,
        };
        Ok(Self {
            name,
            components,
            routes,
        })
    }
}

/// Checks a component's grants: variable names are well-formed, granted
/// directories exist, and guest paths are absolute and distinct.
fn resolve_grants(
    entry: &ComponentEntry,
    base: &Path,
    field: &str,
) -> Result<Grants, (String, String)> {
    let mut env = Vec::with_capacity(entry.env.len());
    for (key, value) in &entry.env {
        let at = || format!("{field}.env.{key}");
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err((
                at(),
                "a variable name must be non-empty, without `=` or NUL".into(),
            ));
        }
        if value.contains('\0') {
            return Err((at(), "a value must not contain NUL".into()));
        }
        env.push((key.clone(), value.clone()));
    }
    let mut files: Vec<FileGrant> = Vec::with_capacity(entry.files.len());
    for (i, grant) in entry.files.iter().enumerate() {
        let at = |name: &str| format!("{field}.files[{i}].{name}");
        let host = base.join(&grant.host);
        match std::fs::metadata(&host) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err((at("host"), format!("{} is not a directory", host.display()))),
            Err(err) => return Err((at("host"), format!("{}: {err}", host.display()))),
        }
        if !grant.guest.starts_with('/') || grant.guest.split('/').any(|s| s == "..") {
            return Err((
                at("guest"),
                format!("`{}` must be an absolute path without `..`", grant.guest),
            ));
        }
        if files.iter().any(|f| f.guest == grant.guest) {
            return Err((at("guest"), format!("`{}` is granted twice", grant.guest)));
        }
        let granted = FileGrant::new(host.clone(), grant.guest.clone(), grant.mode)
            .map_err(|err| (at("host"), format!("{}: {err}", host.display())))?;
        files.push(granted);
    }
    let mut outbound = Vec::with_capacity(entry.allowed_outbound_hosts.len());
    for (i, pattern) in entry.allowed_outbound_hosts.iter().enumerate() {
        outbound.push(
            HostPattern::parse(pattern)
                .map_err(|m| (format!("{field}.allowed_outbound_hosts[{i}]"), m))?,
        );
    }
    Ok(Grants {
        env,
        files,
        outbound: outbound.into(),
        stores: Vec::new(),
        config: Vec::new(),
    })
}

/// Store labels become table names and key prefixes: a restricted alphabet.
fn resolve_stores(entry: &ComponentEntry, field: &str) -> Result<Vec<String>, (String, String)> {
    let mut stores: Vec<String> = Vec::with_capacity(entry.key_value_stores.len());
    for (i, label) in entry.key_value_stores.iter().enumerate() {
        let at = || format!("{field}.key_value_stores[{i}]");
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err((
                at(),
                format!(
                    "`{label}` is not a valid store label: use 1 to 63 lowercase letters, digits, `-` and `_`"
                ),
            ));
        }
        if stores.contains(label) {
            return Err((at(), format!("store `{label}` is granted twice")));
        }
        stores.push(label.clone());
    }
    Ok(stores)
}

/// The secrets file: a flat TOML table of strings.
fn read_secrets(path: &Path) -> Result<BTreeMap<String, String>, (String, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ("secrets".to_string(), format!("{}: {err}", path.display())))?;
    toml::from_str(&text).map_err(|err| {
        (
            "secrets".to_string(),
            format!(
                "{} is not a table of strings: {}",
                path.display(),
                err.to_string().trim_end()
            ),
        )
    })
}

/// Config values, with `env` and `secret` references read now.
fn resolve_config(
    entry: &ComponentEntry,
    secrets: Option<&BTreeMap<String, String>>,
    field: &str,
) -> Result<Vec<(String, String)>, (String, String)> {
    let mut config = Vec::with_capacity(entry.config.len());
    for (key, value) in &entry.config {
        let at = || format!("{field}.config.{key}");
        let value = match value {
            ConfigValue::Literal(value) => value.clone(),
            ConfigValue::Env { env } => std::env::var(env).map_err(|_| {
                (
                    at(),
                    format!("environment variable `{env}` is not set (or not UTF-8)"),
                )
            })?,
            ConfigValue::Secret { secret } => {
                let Some(secrets) = secrets else {
                    return Err((
                        at(),
                        format!("names secret `{secret}`, but the app has no `secrets` file"),
                    ));
                };
                secrets.get(secret).cloned().ok_or_else(|| {
                    (
                        at(),
                        format!("secret `{secret}` is not in the secrets file"),
                    )
                })?
            }
        };
        config.push((key.clone(), value));
    }
    Ok(config)
}

/// The largest timeout a manifest may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The smallest memory limit: one WebAssembly page.
const MIN_MEMORY: u64 = 64 << 10;

impl LimitsEntry {
    /// `base` with the fields this entry sets; errors name `field.<name>`.
    fn apply(&self, base: RequestLimits, field: &str) -> Result<RequestLimits, (String, String)> {
        let mut limits = base;
        if let Some(text) = &self.timeout {
            let at = || format!("{field}.timeout");
            let timeout = parse_duration(text).map_err(|m| (at(), m))?;
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return Err((at(), format!("`{text}` is out of range: use 1ms to 60m")));
            }
            limits.timeout = timeout;
        }
        if let Some(text) = &self.memory {
            let at = || format!("{field}.memory");
            let max = u64::try_from(EngineSettings::default().max_memory_bytes).unwrap_or(u64::MAX);
            let memory = parse_size(text).map_err(|m| (at(), m))?;
            if !(MIN_MEMORY..=max).contains(&memory) {
                return Err((
                    at(),
                    format!("`{text}` is out of range: use 64KiB to {}GiB", max >> 30),
                ));
            }
            limits.max_memory_bytes =
                usize::try_from(memory).map_err(|_| (at(), "too large".into()))?;
        }
        let count = |value: Option<u32>, name: &str, min: u32, max: u32| match value {
            Some(value) if !(min..=max).contains(&value) => Err((
                format!("{field}.{name}"),
                format!("{value} is out of range: use {min} to {max}"),
            )),
            other => Ok(other),
        };
        // Within the pooling allocator's table slots.
        let most_elements = u32::try_from(MAX_TABLE_ELEMENTS).unwrap_or(u32::MAX);
        if let Some(n) = count(self.table_elements, "table_elements", 1, most_elements)? {
            limits.max_table_elements = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = count(self.resources, "resources", 16, 1_000_000)? {
            limits.max_resources = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let max_instances = EngineSettings::default().max_instances;
        if let Some(n) = count(self.instances, "instances", 1, max_instances)? {
            limits.instances = n;
        }
        if let Some(n) = count(self.queue, "queue", 0, 1_000_000)? {
            limits.queue = n;
        }
        if let Some(n) = count(self.response_headers, "response_headers", 1, 10_000)? {
            limits.max_response_headers = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(text) = &self.request_body {
            limits.max_request_body =
                parse_size(text).map_err(|m| (format!("{field}.request_body"), m))?;
        }
        if let Some(text) = &self.request_headers {
            let at = || format!("{field}.request_headers");
            let bytes = parse_size(text).map_err(|m| (at(), m))?;
            // Within what the server reads at most (`--max-header-bytes`
            // goes up to 16 MiB); the floor leaves room for a request line.
            if !(1 << 10..=16 << 20).contains(&bytes) {
                return Err((at(), format!("`{text}` is out of range: use 1KiB to 16MiB")));
            }
            limits.max_request_head =
                Some(usize::try_from(bytes).map_err(|_| (at(), "too large".into()))?);
        }
        if let Some(fuel) = self.fuel {
            if fuel == 0 {
                return Err((
                    format!("{field}.fuel"),
                    "0 is out of range: a request needs some fuel to run".into(),
                ));
            }
            limits.fuel = Some(fuel);
        }
        Ok(limits)
    }
}

/// The app's name is part of its Redis key prefix (`mayfly:<app>:`), of
/// SCAN patterns and of its database file name: a restricted alphabet.
fn check_app_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid app name: use 1 to 63 lowercase letters, digits, `-` and `_`"
        ))
    }
}

/// The app name a manifest without `name` gets from its file's stem:
/// lowercased, with anything but letters, digits, `-` and `_` turned into
/// `_`, cut to 63 bytes (`app` if nothing is left). Two stems can map to
/// one name (`My App` and `my_app`); set `name` to tell them apart.
fn app_name_from_stem(stem: &str) -> String {
    let name: String = stem
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    if name.is_empty() { "app".into() } else { name }
}

/// Component names become host names for service chaining, so they follow
/// DNS label rules.
fn check_component_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid component name: use 1 to 63 lowercase letters, digits \
             and `-`, not starting or ending with `-`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{app_name_from_stem, check_app_name};

    #[test]
    fn file_stems_become_valid_app_names() {
        for (stem, name) in [
            ("shop", "shop"),
            ("My Shop.v2", "my_shop_v2"),
            ("a*b[c]", "a_b_c_"),
            ("", "app"),
        ] {
            assert_eq!(app_name_from_stem(stem), name);
            assert_eq!(check_app_name(name), Ok(()));
        }
        assert_eq!(app_name_from_stem(&"x".repeat(100)).len(), 63);
        assert!(check_app_name("shop:*").is_err());
        assert!(check_app_name(&"x".repeat(64)).is_err());
    }
}
