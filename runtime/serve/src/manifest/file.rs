//! The manifest exactly as written: plain serde types, unknown fields
//! refused. `resolve` turns them into an
//! [`AppSpec`](super::AppSpec).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mayfly_sandbox::FilesMode;
use serde::Deserialize;

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
    /// Most open files and outbound connections an instance may hold at
    /// once.
    pub descriptors: Option<u32>,
    /// Most header data an instance may build on the host, as `1MiB`.
    pub host_memory: Option<String>,
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
    /// A value that is not a string is refused by its kind alone, never
    /// shown: it may be a secret.
    #[serde(default, deserialize_with = "unshown_strings")]
    pub env: BTreeMap<String, String>,
    /// Host directories the component may open.
    #[serde(default)]
    pub files: Vec<FilesEntry>,
    /// `scheme://host:port` patterns the component may send HTTP requests to.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Outbound requests may reach loopback, private and link-local
    /// addresses through any allowed host (by default, only through a
    /// pattern naming the address: an IP literal or `localhost`).
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Labels of the key-value stores the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Configuration values (`wasi:config`), by key.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    /// How the component is built from source (`mayfly build`, and
    /// `mayfly serve --watch` when a source changes).
    pub build: Option<BuildEntry>,
}

/// A `[component.NAME.build]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildEntry {
    /// A shell command that writes the component's `source`.
    pub command: String,
    /// Where it runs, relative to the manifest (by default, the manifest's
    /// directory).
    pub workdir: Option<PathBuf>,
    /// Globs of the files it reads, relative to `workdir`: under `--watch`,
    /// a change to one of them builds the component again.
    #[serde(default)]
    pub watch: Vec<String>,
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
    pub mode: ModeEntry,
}

/// `mode` of a files grant, as written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeEntry {
    /// `read-only`: read files and list directories.
    #[default]
    ReadOnly,
    /// `read-write`: also create, write, rename and delete.
    ReadWrite,
}

impl From<ModeEntry> for FilesMode {
    fn from(mode: ModeEntry) -> Self {
        match mode {
            ModeEntry::ReadOnly => FilesMode::ReadOnly,
            ModeEntry::ReadWrite => FilesMode::ReadWrite,
        }
    }
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

/// A table of strings whose errors never quote a value (serde's own
/// messages do, as ``invalid type: integer `1234` ``).
fn unshown_strings<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let table = BTreeMap::<String, UnshownString>::deserialize(deserializer)?;
    Ok(table
        .into_iter()
        .map(|(name, UnshownString(value))| (name, value))
        .collect())
}

/// A string; anything else is refused by its kind, as `expected a string,
/// found an integer`.
struct UnshownString(String);

impl<'de> Deserialize<'de> for UnshownString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_string(UnshownStringVisitor)
            .map(Self)
    }
}

struct UnshownStringVisitor;

impl UnshownStringVisitor {
    fn found<E: serde::de::Error>(kind: &str) -> E {
        E::custom(format_args!("expected a string, found {kind}"))
    }
}

impl<'de> serde::de::Visitor<'de> for UnshownStringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<String, E> {
        Ok(value)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
        Err(Self::found("a boolean"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
        Err(Self::found("an integer"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
        Err(Self::found("an integer"))
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<String, E> {
        Err(Self::found("an integer"))
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<String, E> {
        Err(Self::found("an integer"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
        Err(Self::found("a float"))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<String, E> {
        Err(Self::found("bytes"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::found("an array"))
    }

    // toml hands a date-time over as a table too.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::found("a table"))
    }
}
