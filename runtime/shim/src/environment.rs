//! A task's settings: the app's path (the container's first argument) and
//! `MAYFLY_*` variables from the container's environment, into a
//! [`Launch`].
//!
//! | variable | default | what |
//! | --- | --- | --- |
//! | `MAYFLY_LISTEN` | `0.0.0.0:8080` | the app's address |
//! | `MAYFLY_HEALTH_LISTEN` | `0.0.0.0:8081` | `/healthz` and `/readyz`; `off` for none |
//! | `MAYFLY_KEY_VALUE_URL` | none | a `redis://` URL: the stores live there, shared by replicas |
//! | `MAYFLY_RUNTIME_CONFIG` | `runtime.toml` next to the manifest, if there | a runtime config file |
//! | `MAYFLY_SHUTDOWN_GRACE` | `30` | seconds in-flight requests get after SIGTERM |
//! | `MAYFLY_WORKERS` | one per CPU | worker threads |
//! | `MAYFLY_MAX_INSTANCES` | as `mayfly serve` | instances alive at once |
//! | `MAYFLY_MAX_CONNECTIONS` | as `mayfly serve` | client connections at once |
//! | `MAYFLY_CACHE_DIR` | `/var/cache/mayfly` | the compile cache; `off` for none |
//! | `MAYFLY_DATA_DIR` | `/var/lib/mayfly` | the embedded key-value backend's files |
//! | `MAYFLY_LOG_FORMAT` | `human` | `human` or `json` |
//!
//! Any other `MAYFLY_` variable is refused, so a misspelt one is not
//! silently ignored, except the ones Kubernetes makes for a Service whose
//! name starts with `mayfly-` (`MAYFLY_REDIS_SERVICE_HOST`,
//! `MAYFLY_REDIS_PORT_6379_TCP`...). Errors name the variable, never a
//! URL's value (it may hold a password).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use mayfly_sandbox::{CompileCache, EngineSettings};
use mayfly_serve::launch::Launch;
use mayfly_serve::logging::LogFormat;
use mayfly_serve::manifest::AppSpec;
use mayfly_serve::server::ServeOptions;
use mayfly_serve::state::{KeyValueConfig, RuntimeConfig};

/// The variables a task reads; any other `MAYFLY_` one is an error.
pub const VARIABLES: &[&str] = &[
    "MAYFLY_LISTEN",
    "MAYFLY_HEALTH_LISTEN",
    "MAYFLY_KEY_VALUE_URL",
    "MAYFLY_RUNTIME_CONFIG",
    "MAYFLY_SHUTDOWN_GRACE",
    "MAYFLY_WORKERS",
    "MAYFLY_MAX_INSTANCES",
    "MAYFLY_MAX_CONNECTIONS",
    "MAYFLY_CACHE_DIR",
    "MAYFLY_DATA_DIR",
    "MAYFLY_LOG_FORMAT",
];

/// The app's address in a pod.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// The health checks' address in a pod.
pub const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:8081";
/// The compile cache inside the container: mount a node-local volume here
/// to share compiled code between tasks.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/mayfly";
/// The embedded key-value backend's directory inside the container.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/mayfly";

/// Whether `dir` is where a file system is mounted in this process's view
/// (a volume, in a container), from `/proc/self/mountinfo`.
fn is_mount_point(dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| Path::new(&unescape_mount_point(point)) == dir)
}

/// A mount point as `mountinfo` writes it, with `\040` for a space (and
/// the like for tab, newline and backslash), as it is.
fn unescape_mount_point(point: &str) -> String {
    let mut out = String::with_capacity(point.len());
    let mut rest = point;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).unwrap_or("");
        match u8::from_str_radix(code, 8) {
            Ok(byte) if code.len() == 3 => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            _ => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment: its `MAYFLY_*` settings, checked, and
/// every variable, for the app's `{ env = "NAME" }` config values.
pub struct Environment {
    vars: BTreeMap<String, String>,
    all: BTreeMap<String, String>,
}

impl Environment {
    /// Reads `NAME=VALUE` entries (the OCI spec's `process.env`), keeping
    /// the `MAYFLY_` ones; refuses an unknown `MAYFLY_` name.
    pub fn new(envs: &[String]) -> anyhow::Result<Self> {
        let mut vars = BTreeMap::new();
        let mut all = BTreeMap::new();
        for entry in envs {
            let Some((name, value)) = entry.split_once('=') else {
                continue;
            };
            all.insert(name.to_string(), value.to_string());
            if !name.starts_with("MAYFLY_") || is_service_link(name) {
                continue;
            }
            if !VARIABLES.contains(&name) {
                bail!(
                    "environment variable {name}: not a Mayfly setting (known: {})",
                    VARIABLES.join(", ")
                );
            }
            vars.insert(name.to_string(), value.to_string());
        }
        Ok(Self { vars, all })
    }

    /// The log format (`MAYFLY_LOG_FORMAT`).
    pub fn log_format(&self) -> anyhow::Result<LogFormat> {
        self.parsed("MAYFLY_LOG_FORMAT", "human", |text| text.parse())
    }

    /// Everything the task serves with, for the app at `args[0]`.
    pub fn launch(&self, args: &[String]) -> anyhow::Result<Launch> {
        let app = match args {
            [app] => PathBuf::from(app),
            [] => bail!(
                "the container has no arguments: its first must be the app \
                 (`/app/app.toml`, as `mayfly oci build` makes it)"
            ),
            [_, extra, ..] => {
                bail!("the container's arguments: the app takes none after its path, got `{extra}`")
            }
        };
        // The shim's own environment (containerd's) is not the task's.
        let spec = AppSpec::from_path_in(&app, &|name| self.all.get(name).cloned())
            .with_context(|| format!("cannot load the app {}", app.display()))?;

        let mut options = ServeOptions {
            shutdown_grace: Duration::from_secs(self.parsed(
                "MAYFLY_SHUTDOWN_GRACE",
                "30",
                |text| match text.parse::<u64>() {
                    Ok(seconds) if seconds <= 3600 => Ok(seconds),
                    _ => Err("must be a whole number of seconds from 0 to 3600".to_string()),
                },
            )?),
            ..ServeOptions::default()
        };
        if let Some(workers) = self.number("MAYFLY_WORKERS", 1, 1024)? {
            options.workers = workers;
        }
        if let Some(max) = self.number("MAYFLY_MAX_CONNECTIONS", 1, 1 << 20)? {
            options.max_connections = max;
        }
        let mut settings = EngineSettings::default();
        if let Some(max) = self.number("MAYFLY_MAX_INSTANCES", 1, 100_000)? {
            settings.max_instances = u32::try_from(max).unwrap_or(u32::MAX);
        }

        let health = match self.get("MAYFLY_HEALTH_LISTEN") {
            Some("off") => None,
            _ => Some(self.address("MAYFLY_HEALTH_LISTEN", DEFAULT_HEALTH_LISTEN)?),
        };
        let cache = match self.get("MAYFLY_CACHE_DIR") {
            Some("off") => CompileCache::disabled(),
            dir => {
                let dir = PathBuf::from(dir.unwrap_or(DEFAULT_CACHE_DIR));
                // A volume the node mounted holds the node's key. Anything
                // else came with the image, whose author may have tagged
                // native code of their own: the task makes its own key.
                let opened = if is_mount_point(&dir) {
                    CompileCache::open(dir.clone())
                } else {
                    CompileCache::open_with_new_key(dir.clone())
                };
                opened.with_context(|| {
                    format!(
                        "environment variable MAYFLY_CACHE_DIR: cannot use {} as the compile cache",
                        dir.display()
                    )
                })?
            }
        };
        Ok(Launch {
            runtime_config: self.runtime_config(&app)?,
            spec,
            settings,
            data_dir: PathBuf::from(self.get("MAYFLY_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR)),
            cache,
            listen: self.address("MAYFLY_LISTEN", DEFAULT_LISTEN)?,
            options,
            admin: None,
            health,
            watch: None,
        })
    }

    /// Where state lives: `MAYFLY_KEY_VALUE_URL`, else the runtime config
    /// (`MAYFLY_RUNTIME_CONFIG`, else `runtime.toml` next to the app).
    fn runtime_config(&self, app: &Path) -> anyhow::Result<RuntimeConfig> {
        if let Some(url) = self.get("MAYFLY_KEY_VALUE_URL") {
            // The URL itself is never shown: it may carry a password.
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                bail!(
                    "environment variable MAYFLY_KEY_VALUE_URL: must be a Redis URL \
                     (`redis://HOST:PORT` or `rediss://...`)"
                );
            }
            return Ok(RuntimeConfig {
                key_value: KeyValueConfig {
                    backend: Some("redis".into()),
                    url: Some(url.to_string()),
                },
            });
        }
        if let Some(path) = self.get("MAYFLY_RUNTIME_CONFIG") {
            return RuntimeConfig::load(Path::new(path))
                .context("environment variable MAYFLY_RUNTIME_CONFIG");
        }
        let beside = app.with_file_name("runtime.toml");
        if beside.is_file() {
            return RuntimeConfig::load(&beside);
        }
        Ok(RuntimeConfig::default())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// `name` parsed by `parse`, or `default` parsed if it is unset.
    fn parsed<T>(
        &self,
        name: &str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let text = self.get(name).unwrap_or(default);
        parse(text).map_err(|why| anyhow::anyhow!("environment variable {name}: {why}"))
    }

    fn address(&self, name: &str, default: &str) -> anyhow::Result<SocketAddr> {
        self.parsed(name, default, |text| {
            text.parse()
                .map_err(|_| format!("must be an address as `{default}`, not `{text}`"))
        })
    }

    fn number(&self, name: &str, min: usize, max: usize) -> anyhow::Result<Option<usize>> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        match text.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => bail!(
                "environment variable {name}: must be a number from {min} to {max}, not `{text}`"
            ),
        }
    }
}

/// Whether `name` is one of the variables Kubernetes gives a pod for each
/// Service (`NAME_SERVICE_HOST`, `NAME_SERVICE_PORT[_PORTNAME]`,
/// `NAME_PORT`, `NAME_PORT_6379_TCP[_PROTO|_PORT|_ADDR]`).
fn is_service_link(name: &str) -> bool {
    if name.contains("_SERVICE_HOST") || name.contains("_SERVICE_PORT") {
        return true;
    }
    if let Some(stem) = name.strip_suffix("_PORT") {
        return !VARIABLES.iter().any(|known| known.starts_with(stem));
    }
    // NAME_PORT_<number>_<TCP|UDP|SCTP>...
    name.split("_PORT_").skip(1).any(|rest| {
        let mut parts = rest.split('_');
        let number = parts
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let protocol = parts
            .next()
            .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
        number && protocol
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_points_are_read_from_mountinfo() {
        assert!(super::is_mount_point(std::path::Path::new("/")));
        assert!(super::is_mount_point(std::path::Path::new("/proc")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!super::is_mount_point(&dir.path().join("missing")));
        assert_eq!(super::unescape_mount_point("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(super::unescape_mount_point("/plain\\x"), "/plain\\x");
    }

    use super::*;

    fn env(entries: &[&str]) -> anyhow::Result<Environment> {
        Environment::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_misspelt_variable_is_refused_by_name() {
        let err = env(&["PATH=/bin", "MAYFLY_LISEN=0.0.0.0:1"])
            .err()
            .expect("refused");
        assert!(
            err.to_string()
                .starts_with("environment variable MAYFLY_LISEN: not a Mayfly setting"),
            "{err}"
        );
    }

    #[test]
    fn kubernetes_service_variables_are_not_settings() {
        let env = env(&[
            "MAYFLY_REDIS_SERVICE_HOST=10.0.0.7",
            "MAYFLY_REDIS_SERVICE_PORT=6379",
            "MAYFLY_REDIS_SERVICE_PORT_REDIS=6379",
            "MAYFLY_REDIS_PORT=tcp://10.0.0.7:6379",
            "MAYFLY_REDIS_PORT_6379_TCP=tcp://10.0.0.7:6379",
            "MAYFLY_REDIS_PORT_6379_TCP_PROTO=tcp",
            "MAYFLY_REDIS_PORT_6379_TCP_PORT=6379",
            "MAYFLY_REDIS_PORT_6379_TCP_ADDR=10.0.0.7",
            "MAYFLY_WORKERS=3",
        ])
        .unwrap();
        assert_eq!(env.vars.keys().collect::<Vec<_>>(), ["MAYFLY_WORKERS"]);
        // Not a loophole for misspellings of real settings.
        assert!(env_is_refused("MAYFLY_LISTEN_PORT=1"));
        assert!(env_is_refused("MAYFLY_WORKER=2"));
    }

    fn env_is_refused(entry: &str) -> bool {
        env(&[entry]).is_err()
    }

    #[test]
    fn a_bad_redis_url_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let env = env(&["MAYFLY_KEY_VALUE_URL=http://user:hunter2-SECRET@db"]).unwrap();
        let err = env
            .runtime_config(&dir.path().join("app.toml"))
            .unwrap_err();
        let shown = format!("{err:#}");
        assert!(
            shown.contains("MAYFLY_KEY_VALUE_URL: must be a Redis URL"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_redis_url_selects_the_redis_backend() {
        let env = env(&["MAYFLY_KEY_VALUE_URL=redis://db:6379"]).unwrap();
        let config = env
            .runtime_config(Path::new("/nonexistent/app.toml"))
            .unwrap();
        assert_eq!(config.key_value.backend.as_deref(), Some("redis"));
        assert_eq!(config.key_value.url.as_deref(), Some("redis://db:6379"));
    }

    #[test]
    fn numbers_and_addresses_name_the_variable() {
        let env = env(&["MAYFLY_WORKERS=0", "MAYFLY_LISTEN=8080"]).unwrap();
        let err = env.number("MAYFLY_WORKERS", 1, 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable MAYFLY_WORKERS: must be a number from 1 to 1024, not `0`"
        );
        let err = env.address("MAYFLY_LISTEN", DEFAULT_LISTEN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable MAYFLY_LISTEN: must be an address as `0.0.0.0:8080`, not `8080`"
        );
        assert_eq!(
            env.address("MAYFLY_HEALTH_LISTEN", DEFAULT_HEALTH_LISTEN)
                .unwrap(),
            "0.0.0.0:8081".parse().unwrap()
        );
        let err = Environment::new(&["MAYFLY_LOG_FORMAT=xml".into()])
            .unwrap()
            .log_format()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable MAYFLY_LOG_FORMAT: unknown log format `xml`, expected `human` or `json`"
        );
    }

    #[test]
    fn config_values_come_from_the_containers_environment() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("app.toml");
        std::fs::write(
            &manifest,
            "[component.hello]\nsource = \"hello.wasm\"\nconfig.greeting = { env = \"MAYFLY_TEST_GREETING_0f3a\" }\n\n[[route]]\npath = \"/...\"\ncomponent = \"hello\"\n",
        )
        .unwrap();
        let args = [manifest.display().to_string()];
        let launch = env(&["MAYFLY_CACHE_DIR=off", "MAYFLY_TEST_GREETING_0f3a=hi"])
            .err()
            .map(|err| err.to_string());
        // A `MAYFLY_` name the app uses is still not a setting.
        assert!(launch.is_some_and(|err| err.contains("MAYFLY_TEST_GREETING_0f3a")));

        let launch = env(&["MAYFLY_CACHE_DIR=off", "GREETING_0f3a=hi"]).unwrap();
        let text = std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("MAYFLY_TEST_GREETING_0f3a", "GREETING_0f3a");
        std::fs::write(&manifest, text).unwrap();
        let spec = launch.launch(&args).unwrap().spec;
        assert_eq!(
            spec.components[0].grants.config,
            [("greeting".to_string(), "hi".to_string())]
        );
        // Unset in the container, it is an error naming the field.
        let err = env(&["MAYFLY_CACHE_DIR=off", "PATH=/bin"])
            .unwrap()
            .launch(&args)
            .err()
            .expect("refused");
        let shown = format!("{err:#}");
        assert!(
            shown.contains("component.hello.config.greeting")
                && shown.contains("environment variable `GREETING_0f3a` is not set"),
            "{shown}"
        );
    }

    #[test]
    fn the_app_is_the_only_argument() {
        let env = env(&[]).unwrap();
        let err = env.launch(&[]).err().expect("refused");
        assert!(
            err.to_string().contains("the container has no arguments"),
            "{err}"
        );
        let err = env
            .launch(&["/app/app.toml".into(), "--verbose".into()])
            .err()
            .expect("refused");
        assert!(err.to_string().contains("got `--verbose`"), "{err}");
        let err = env
            .launch(&["/nonexistent/app.toml".into()])
            .err()
            .expect("refused");
        assert!(
            format!("{err:#}").starts_with("cannot load the app /nonexistent/app.toml: "),
            "{err:#}"
        );
    }
}
