//! From the manifest as written to a validated [`AppSpec`]: names checked,
//! paths resolved, grants made through the sandbox's rules, limits within
//! range, routes unambiguous. Every error is `(field, message)`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use mayfly_build::BuildStep;
use mayfly_host_api::outbound::HostPattern;
use mayfly_sandbox::Grants;
use mayfly_sandbox::grants::{self, FileGrant, FileGrantError};
use mayfly_sandbox::limits::MAX_TABLE_ELEMENTS;
use mayfly_sandbox::units::{parse_duration, parse_size};

use super::error::ManifestError;
use super::file::{BuildEntry, ComponentEntry, ConfigValue, LimitsEntry, ManifestFile};
use super::spec::{AppKind, AppSpec, ComponentSpec, LimitFields, Source};
use super::spin::{self, file::SpinManifest};
use crate::limits::Limits;
use crate::router::Pattern;

impl AppSpec {
    /// The app at `path`: a single component (`hello.wasm`) served on
    /// every path, or else a manifest, read and validated.
    pub fn from_path(path: &Path) -> Result<Self, ManifestError> {
        Self::from_path_in(path, &process_env)
    }

    /// As [`from_path`](Self::from_path), with `{ env = "NAME" }` config
    /// values looked up in `env` rather than this process's environment
    /// (the containerd shim serves with its container's).
    pub fn from_path_in(path: &Path, env: &EnvLookup<'_>) -> Result<Self, ManifestError> {
        if path.extension().is_some_and(|ext| ext == "wasm") {
            let name = component_name_from_file(path);
            return Ok(AppSpec::single(name, Source::File(path.to_path_buf())));
        }
        Self::from_manifest_in(path, env)
    }

    /// Reads and validates the manifest at `path`.
    pub fn from_manifest(path: &Path) -> Result<Self, ManifestError> {
        Self::from_manifest_in(path, &process_env)
    }

    /// How the components of the manifest at `path` are built, in name
    /// order, with only what a build needs checked: a manifest that builds
    /// a plugin has no routes, and a build reads no secret.
    pub fn build_steps_of(path: &Path) -> Result<Vec<BuildStep>, ManifestError> {
        let (written, base) = read(path)?;
        let file = match written {
            Written::Mayfly(file) => file,
            // A Spin manifest's builds are read with the rest of it.
            Written::Spin(_) => return Ok(Self::from_manifest(path)?.build_steps()),
        };
        let mut steps = Vec::new();
        for (name, entry) in &file.component {
            let field = format!("component.{name}");
            let step = check_component_name(name)
                .map_err(|message| (field.clone(), message))
                .and_then(|()| resolve_build(name, entry, base, &field))
                .map_err(|(field, message)| ManifestError::Field {
                    path: path.to_path_buf(),
                    field,
                    message,
                })?;
            steps.extend(step);
        }
        Ok(steps)
    }

    /// As [`from_manifest`](Self::from_manifest), with `{ env = "NAME" }`
    /// config values looked up in `env`.
    pub fn from_manifest_in(path: &Path, env: &EnvLookup<'_>) -> Result<Self, ManifestError> {
        let (written, base) = read(path)?;
        let default_name = path
            .file_stem()
            .map(|s| app_name_from_stem(&s.to_string_lossy()))
            .unwrap_or_else(|| "app".into());
        let resolved = match written {
            Written::Mayfly(file) => resolve(file, base, default_name, env),
            Written::Spin(file) => spin::resolve(file, base, env),
        };
        resolved.map_err(|(field, message)| ManifestError::Field {
            path: path.to_path_buf(),
            field,
            message,
        })
    }
}

/// A manifest as written: Mayfly's own, or Spin's.
enum Written {
    Mayfly(ManifestFile),
    Spin(SpinManifest),
}

/// The manifest at `path` as written, and the directory its paths are
/// relative to. A file with a top-level `spin_manifest_version` is a Spin
/// manifest.
fn read(path: &Path) -> Result<(Written, &Path), ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|reason| ManifestError::Read {
        path: path.to_path_buf(),
        reason,
    })?;
    let parse_error = |err: toml::de::Error| ManifestError::from_toml(path, &text, &err);
    let is_spin = text
        .parse::<toml::Table>()
        .is_ok_and(|table| table.contains_key("spin_manifest_version"));
    let written = if is_spin {
        Written::Spin(toml::from_str(&text).map_err(parse_error)?)
    } else {
        Written::Mayfly(toml::from_str(&text).map_err(parse_error)?)
    };
    Ok((written, path.parent().unwrap_or(Path::new("."))))
}

/// Where `{ env = "NAME" }` config values are read: the value of `NAME`,
/// if it is set.
pub type EnvLookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// This process's environment.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A component's name from its file: `My_Service.v2.wasm` becomes
/// `my-service-v2`.
pub fn component_name_from_file(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "component".into()
    } else {
        name.chars().take(63).collect()
    }
}

/// Validates a parsed manifest; errors are `(field, message)`.
fn resolve(
    file: ManifestFile,
    base: &Path,
    default_name: String,
    env: &EnvLookup<'_>,
) -> Result<AppSpec, (String, String)> {
    if file.component.is_empty() {
        return Err((
            "component".into(),
            "the app declares no components; add a `[component.NAME]` table with a `source`".into(),
        ));
    }
    let mut app_fields = LimitFields::default();
    let app_limits = match &file.limits {
        Some(entry) => entry.apply(Limits::default(), "limits", &mut app_fields)?,
        None => Limits::default(),
    };
    let secrets = match &file.secrets {
        Some(path) => Some(read_secrets(&base.join(path))?),
        None => None,
    };
    let mut components = Vec::with_capacity(file.component.len());
    for (name, entry) in file.component {
        let field = format!("component.{name}");
        check_component_name(&name).map_err(|message| (field.clone(), message))?;
        let mut limit_fields = app_fields.clone();
        let limits = match &entry.limits {
            Some(limits) => {
                limits.apply(app_limits, &format!("{field}.limits"), &mut limit_fields)?
            }
            None => app_limits,
        };
        let mut grants = resolve_grants(&entry, base, &field)?;
        grants.stores = check_stores(&entry.key_value_stores, &field)?;
        grants.config = resolve_config(&entry, secrets.as_ref(), env, &field)?;
        let build = resolve_build(&name, &entry, base, &field)?;
        components.push(ComponentSpec {
            source: Source::File(base.join(&entry.source)),
            field: format!("{field}.source"),
            name,
            limits,
            limit_fields,
            grants,
            build,
        });
    }

    let mut routes = Vec::with_capacity(file.route.len());
    let mut seen: HashMap<Pattern, usize> = HashMap::new();
    for (i, route) in file.route.iter().enumerate() {
        let pattern = Pattern::parse(&route.path).map_err(|m| (format!("route[{i}].path"), m))?;
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
    Ok(AppSpec {
        name,
        kind: AppKind::Mayfly,
        components,
        routes,
    })
}

/// A component's build, if it has one: a command, a workdir relative to
/// the manifest, globs relative to the workdir.
fn resolve_build(
    name: &str,
    entry: &ComponentEntry,
    base: &Path,
    field: &str,
) -> Result<Option<BuildStep>, (String, String)> {
    let Some(BuildEntry {
        command,
        workdir,
        watch,
    }) = &entry.build
    else {
        return Ok(None);
    };
    if command.trim().is_empty() {
        return Err((
            format!("{field}.build.command"),
            "the build command is empty; give the shell command that writes the component's \
             `source`"
                .into(),
        ));
    }
    for (i, glob) in watch.iter().enumerate() {
        mayfly_build::sources::check(glob).map_err(|m| (format!("{field}.build.watch[{i}]"), m))?;
    }
    Ok(Some(BuildStep {
        component: name.to_owned(),
        command: command.clone(),
        workdir: match workdir {
            Some(workdir) => base.join(workdir),
            None => base.to_path_buf(),
        },
        watch: watch.clone(),
        output: base.join(&entry.source),
    }))
}

/// Makes a component's grants, each through the sandbox's one rule for its
/// kind; guest paths must also be distinct.
fn resolve_grants(
    entry: &ComponentEntry,
    base: &Path,
    field: &str,
) -> Result<Grants, (String, String)> {
    let mut env = Vec::with_capacity(entry.env.len());
    for (key, value) in &entry.env {
        env.push(grants::env_var(key, value).map_err(|m| (format!("{field}.env.{key}"), m))?);
    }
    let mut grants = Grants {
        env,
        ..Grants::default()
    };
    for (i, grant) in entry.files.iter().enumerate() {
        let at = |name: &str| format!("{field}.files[{i}].{name}");
        let granted = FileGrant::new(
            base.join(&grant.host),
            grant.guest.clone(),
            grant.mode.into(),
        )
        .map_err(|err| match err {
            FileGrantError::Host { .. } => (at("host"), err.to_string()),
            FileGrantError::Guest(message) => (at("guest"), message),
        })?;
        grants.add_dir(granted).map_err(|m| (at("guest"), m))?;
    }
    let mut outbound = Vec::with_capacity(entry.allowed_outbound_hosts.len());
    for (i, pattern) in entry.allowed_outbound_hosts.iter().enumerate() {
        outbound.push(
            HostPattern::parse(pattern)
                .map_err(|m| (format!("{field}.allowed_outbound_hosts[{i}]"), m))?,
        );
    }
    grants.outbound = outbound.into();
    grants.private_networks = entry.allow_private_networks;
    Ok(grants)
}

/// Store labels become table names and key prefixes: a restricted
/// alphabet. The one rule for every manifest's `key_value_stores`.
pub(super) fn check_stores(
    labels: &[String],
    field: &str,
) -> Result<Vec<String>, (String, String)> {
    let mut stores: Vec<String> = Vec::with_capacity(labels.len());
    for (i, label) in labels.iter().enumerate() {
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
    // The parser's message quotes the offending line or value: a secret.
    // Only where it is is shown.
    toml::from_str(&text).map_err(|err: toml::de::Error| {
        let line = err.span().map_or(0, |span| {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            before.iter().filter(|byte| **byte == b'\n').count() + 1
        });
        (
            "secrets".to_string(),
            format!(
                "{} is not a table of `name = \"value\"` strings (see line {line}; \
                 its text is not shown, as it may hold a secret)",
                path.display()
            ),
        )
    })
}

/// Config values, with `env` and `secret` references read now.
fn resolve_config(
    entry: &ComponentEntry,
    secrets: Option<&BTreeMap<String, String>>,
    env: &EnvLookup<'_>,
    field: &str,
) -> Result<Vec<(String, String)>, (String, String)> {
    let mut config = Vec::with_capacity(entry.config.len());
    for (key, value) in &entry.config {
        let at = || format!("{field}.config.{key}");
        let value = match value {
            ConfigValue::Literal(value) => value.clone(),
            ConfigValue::Env { env: name } => env(name).ok_or_else(|| {
                (
                    at(),
                    format!("environment variable `{name}` is not set (or not UTF-8)"),
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
    /// The server-bound ones it sets are noted in `set`, to be checked
    /// against the server's settings when the app loads.
    fn apply(
        &self,
        base: Limits,
        field: &str,
        set: &mut LimitFields,
    ) -> Result<Limits, (String, String)> {
        let Limits {
            store: mut limits,
            mut http,
        } = base;
        if let Some(text) = &self.timeout {
            let at = || format!("{field}.timeout");
            let timeout = parse_duration(text).map_err(|m| (at(), m))?;
            if timeout < Duration::from_millis(1) || timeout > MAX_TIMEOUT {
                return Err((at(), format!("`{text}` is out of range: use 1ms to 60m")));
            }
            limits.timeout = timeout;
        }
        if let Some(text) = &self.memory {
            let at = || format!("{field}.memory");
            let memory = parse_size(text).map_err(|m| (at(), m))?;
            // The most is the server's to say (checked when the app loads).
            if memory < MIN_MEMORY {
                return Err((
                    at(),
                    format!("`{text}` is out of range: use at least 64KiB"),
                ));
            }
            limits.max_memory_bytes =
                usize::try_from(memory).map_err(|_| (at(), format!("`{text}` is too large")))?;
            set.memory = Some(at());
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
        if let Some(n) = count(self.descriptors, "descriptors", 1, 100_000)? {
            limits.max_descriptors = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(text) = &self.host_memory {
            let at = || format!("{field}.host_memory");
            let bytes = parse_size(text).map_err(|m| (at(), m))?;
            if !(64 << 10..=1 << 30).contains(&bytes) {
                return Err((at(), format!("`{text}` is out of range: use 64KiB to 1GiB")));
            }
            limits.max_host_memory =
                usize::try_from(bytes).map_err(|_| (at(), "too large".into()))?;
        }
        // Checked against the server's `--max-instances` when the app loads
        // (`HttpLimits::instances_within`).
        if let Some(n) = self.instances {
            http.instances = n;
            set.instances = Some(format!("{field}.instances"));
        }
        if let Some(n) = count(self.queue, "queue", 0, 1_000_000)? {
            http.queue = n;
        }
        if let Some(n) = count(self.response_headers, "response_headers", 1, 10_000)? {
            http.max_response_headers = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(text) = &self.request_body {
            http.max_request_body =
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
            http.max_request_head =
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
        Ok(Limits {
            store: limits,
            http,
        })
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
pub(super) fn app_name_from_stem(stem: &str) -> String {
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
pub(super) fn check_component_name(name: &str) -> Result<(), String> {
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
