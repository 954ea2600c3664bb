//! Where an app's state lives: the key-value backend, chosen by the runtime
//! config (not by the app manifest, which stays portable between hosts).
//!
//! ```toml
//! # runtime.toml
//! [key_value]
//! backend = "redis"                  # or "embedded", the default
//! url = "redis://127.0.0.1:6379/0"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use mayfly_host_api::kv::Backend;
use serde::Deserialize;

use crate::manifest::AppSpec;

/// The runtime config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The key-value backend.
    #[serde(default)]
    pub key_value: KeyValueConfig,
}

/// `[key_value]`: which backend holds the stores.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValueConfig {
    /// `embedded` (a file per app in the data directory) or `redis`.
    pub backend: Option<String>,
    /// The Redis URL, for `backend = "redis"`.
    pub url: Option<String>,
}

impl std::fmt::Debug for KeyValueConfig {
    /// The URL shows its scheme and host alone: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueConfig")
            .field("backend", &self.backend)
            .field(
                "url",
                &self.url.as_deref().map(mayfly_host_api::kv::shown_url),
            )
            .finish()
    }
}

impl RuntimeConfig {
    /// Reads and checks the runtime config at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        // Without the line toml would quote: it may hold a Redis password.
        let config: Self = toml::from_str(&text).map_err(|err| {
            anyhow::anyhow!(
                "invalid runtime config {}",
                crate::manifest::toml_error(path, &text, &err)
            )
        })?;
        match (config.key_value.backend.as_deref(), &config.key_value.url) {
            (None | Some("embedded"), None) | (Some("redis"), Some(_)) => Ok(config),
            (None | Some("embedded"), Some(_)) => bail!(
                "invalid runtime config {}: field `key_value.url`: only the `redis` backend takes a URL",
                path.display()
            ),
            (Some("redis"), None) => bail!(
                "invalid runtime config {}: field `key_value.url`: the `redis` backend needs a URL, \
                 as `redis://127.0.0.1:6379`",
                path.display()
            ),
            (Some(other), _) => bail!(
                "invalid runtime config {}: field `key_value.backend`: unknown backend `{other}`, \
                 expected `embedded` or `redis`",
                path.display()
            ),
        }
    }
}

/// The default data directory: `$MAYFLY_DATA_DIR`, else
/// `$XDG_DATA_HOME/mayfly`, else `~/.local/share/mayfly`.
pub fn default_data_dir() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("MAYFLY_DATA_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = non_empty("XDG_DATA_HOME") {
        return Some(PathBuf::from(dir).join("mayfly"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share/mayfly"))
}

/// The backend for `spec`'s stores, or `None` if no component has any.
/// Must run inside the tokio runtime that outlives the server: the Redis
/// connection's driver runs there.
pub async fn open_backend(
    spec: &AppSpec,
    config: &RuntimeConfig,
    data_dir: &Path,
) -> anyhow::Result<Option<Arc<dyn Backend>>> {
    if spec.components.iter().all(|c| c.grants.stores.is_empty()) {
        return Ok(None);
    }
    let backend: Arc<dyn Backend> = match &config.key_value.url {
        Some(url) => open_redis(url, &spec.name).await?,
        None => open_embedded(data_dir, &spec.name)?,
    };
    Ok(Some(backend))
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str, app: &str) -> anyhow::Result<Arc<dyn Backend>> {
    let backend = mayfly_host_api::kv::RedisBackend::connect(url, app)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_url: &str, _app: &str) -> anyhow::Result<Arc<dyn Backend>> {
    bail!("this build of Mayfly has no Redis backend (the `redis` feature of mayfly-serve)")
}

#[cfg(feature = "redb")]
fn open_embedded(data_dir: &Path, app: &str) -> anyhow::Result<Arc<dyn Backend>> {
    // The app's state: this user's alone.
    mayfly_sandbox::private_dir::prepare(data_dir, mayfly_sandbox::private_dir::DATA)?;
    let path = data_dir.join(format!("{}.redb", file_name(app)));
    let backend = mayfly_host_api::kv::EmbeddedBackend::open(&path)
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "redb"))]
fn open_embedded(_data_dir: &Path, _app: &str) -> anyhow::Result<Arc<dyn Backend>> {
    bail!(
        "this build of Mayfly has no embedded key-value backend (the `redb` feature of \
         mayfly-serve); use a runtime config with `[key_value] backend = \"redis\"`"
    )
}

/// `name` made safe as a file name: anything but letters, digits, `-` and
/// `_` becomes `_`.
#[cfg(feature = "redb")]
fn file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() { "app".into() } else { safe }
}
