//! `mayfly serve`: serve an app over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use mayfly_serve::launch::Launch;
use mayfly_serve::server::ServeOptions;
use mayfly_serve::state::{RuntimeConfig, default_data_dir};

use super::build;
use super::shared::{self, CacheArgs, EngineArgs};

/// Serve an app over HTTP, with a fresh component instance for every request
///
/// Prints the bound address and the routes, then serves until SIGINT or
/// SIGTERM, when it stops accepting, lets in-flight requests finish (within
/// the grace period) and exits 0.
#[derive(Args)]
pub struct Serve {
    /// The app: a manifest (`app.toml`), or one component (`hello.wasm`) to
    /// serve on every path.
    #[cfg_attr(feature = "demo", doc = "Without it, the built-in demo app is served.")]
    #[cfg_attr(
        not(feature = "demo"),
        doc = "This build has no built-in demo app (the `demo` cargo feature)."
    )]
    #[arg(value_name = "APP")]
    app: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// Worker threads, each with its own event loop [default: one per CPU]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

    #[command(flatten)]
    engine: EngineArgs,

    /// Largest request head (request line and headers) a client may send;
    /// beyond it, 431 [suffixes: KiB, MiB]
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_header_bytes)]
    max_header_bytes: usize,

    /// Longest a client may take to send a request head, and longest a
    /// keep-alive connection may sit idle [suffixes: ms, s, m]
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_client_timeout)]
    header_timeout: Duration,

    /// Longest pause in a request body; past it reading the body fails in
    /// the guest, and the client gets 408 unless the guest answers itself
    /// [suffixes: ms, s, m]
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_client_timeout)]
    body_timeout: Duration,

    /// Slowest a request body may come once --body-rate-grace has passed,
    /// in bytes per second over all the time spent waiting for it; past it,
    /// 408 as for a pause. 0 turns it off [suffixes: B, KiB, MiB]
    #[arg(long, value_name = "SIZE", default_value = "1KiB", value_parser = parse_body_rate)]
    min_body_rate: u64,

    /// How long a request body may keep the server waiting before its pace
    /// counts [suffixes: ms, s, m]
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_client_timeout)]
    body_rate_grace: Duration,

    /// Longest a response may wait for the client to read it; past it the
    /// connection is closed [suffixes: ms, s, m]
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_client_timeout)]
    write_timeout: Duration,

    /// Most client connections served at once; past it, a new client waits
    /// until the oldest idle connection has closed to make room [default:
    /// half the open-file limit, less 256]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,

    /// How long a worker keeps polling for the next request after one
    /// before it sleeps: a little CPU for less latency. The window halves
    /// while requests come further apart than this, down to none; 0 turns
    /// it off [suffixes: us, ms]
    #[arg(long, value_name = "DURATION", default_value = "100us", value_parser = parse_busy_poll)]
    busy_poll: Duration,

    /// Seconds that in-flight requests get to finish after SIGINT or SIGTERM
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_grace: u64,

    /// Directory for the embedded key-value backend's files (one per app)
    /// [default: $MAYFLY_DATA_DIR, else $XDG_DATA_HOME/mayfly, else
    /// ~/.local/share/mayfly]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Runtime config file: where state lives (for example a shared Redis),
    /// kept out of the app manifest so the app stays portable
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,

    /// Reload the app when the manifest or a component file changes, and
    /// build a component again when a file its `build.watch` globs match
    /// changes; a version that fails to build or to load is refused and
    /// the old one keeps serving
    #[arg(long)]
    watch: bool,

    /// Build the app's components from source first (`mayfly build`)
    #[arg(long)]
    build: bool,

    /// Log a line for every request: method, path (without the query),
    /// status and time
    #[arg(long)]
    log_requests: bool,

    /// Serve the admin API (deploy, versions, rollback), metrics and health
    /// checks on this loopback address; off unless given
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,

    /// Serve `GET /healthz` and `GET /readyz` alone on this address (any
    /// address: this is what an orchestrator's probes reach); off unless
    /// given
    #[arg(long, value_name = "ADDR")]
    health_listen: Option<SocketAddr>,

    /// File holding the admin API's bearer token [default: the
    /// MAYFLY_ADMIN_TOKEN environment variable]
    #[arg(long, value_name = "FILE", requires = "admin_listen")]
    admin_token_file: Option<PathBuf>,

    #[command(flatten)]
    cache: CacheArgs,
}

impl Serve {
    /// These flags as `mayfly dev` uses them: `app.toml` unless an app is
    /// given, built first, watched, every request logged.
    pub(super) fn for_development(mut self) -> Self {
        self.app.get_or_insert_with(|| PathBuf::from("app.toml"));
        self.build = true;
        self.watch = true;
        self.log_requests = true;
        self
    }

    pub fn execute(self) -> Result<()> {
        if self.build {
            let Some(app) = self.app.as_deref().filter(|app| is_manifest(app)) else {
                anyhow::bail!("--build needs an app manifest (`app.toml`) to build");
            };
            if let Err(err) = build::build(app) {
                // Under --watch, a failed build with an earlier one at hand
                // is an error to fix, not a reason to stop: serve what was
                // built last, and build again on the next save.
                if !(self.watch && build::all_built(app)) {
                    return Err(err);
                }
                eprintln!(
                    "error: {err:#}
  (serving the last version built until a build succeeds)"
                );
            }
        }
        mayfly_serve::logging::log_requests(self.log_requests);
        let spec = shared::app_spec(self.app.as_deref())?;
        let runtime_config = match &self.runtime_config {
            Some(path) => RuntimeConfig::load(path)?,
            None => RuntimeConfig::default(),
        };
        let data_dir = self
            .data_dir
            .clone()
            .or_else(default_data_dir)
            .context("no data directory: pass --data-dir DIR")?;
        // Refused before anything starts if its directory cannot be trusted.
        let cache = self.cache.cache()?;

        let admin = match self.admin_listen {
            Some(addr) => Some((addr, self.admin_token()?)),
            None => None,
        };
        let watches_a_manifest = self.app.as_deref().is_some_and(is_manifest);
        if self.watch && !watches_a_manifest {
            anyhow::bail!("--watch needs an app manifest (`app.toml`) to watch");
        }

        let mut options = ServeOptions {
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            max_header_bytes: self.max_header_bytes,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            min_body_rate: self.min_body_rate,
            body_rate_grace: self.body_rate_grace,
            write_timeout: self.write_timeout,
            busy_poll: self.busy_poll,
            ..ServeOptions::default()
        };
        if let Some(max) = self.max_connections {
            options.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
        }
        if let Some(workers) = self.workers {
            options.workers = usize::from(workers);
        }
        let launch = Launch {
            spec,
            settings: self.engine.settings(),
            runtime_config,
            data_dir,
            cache,
            listen: self.listen,
            options,
            admin,
            health: self.health_listen,
            watch: self.app.clone().filter(|_| self.watch),
        };
        launch.run().map(|_| ())
    }
}

impl Serve {
    /// The admin token, from `--admin-token-file` or `MAYFLY_ADMIN_TOKEN`.
    fn admin_token(&self) -> Result<Arc<str>> {
        let token = match &self.admin_token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the admin token file {}", path.display()))?,
            None => std::env::var("MAYFLY_ADMIN_TOKEN").map_err(|_| {
                anyhow::anyhow!(
                    "--admin-listen needs a token: --admin-token-file FILE, or MAYFLY_ADMIN_TOKEN"
                )
            })?,
        };
        let token = token.trim();
        if token.len() < 16 {
            anyhow::bail!("the admin token must be at least 16 characters long");
        }
        Ok(Arc::from(token))
    }
}

/// Whether `app` names a manifest (rather than one component).
fn is_manifest(app: &std::path::Path) -> bool {
    app.extension().is_some_and(|e| e == "toml")
}

fn parse_client_timeout(text: &str) -> Result<Duration, String> {
    let timeout = mayfly_sandbox::units::parse_duration(text)?;
    if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(3600) {
        return Err("must be between 10ms and 60m".into());
    }
    Ok(timeout)
}

fn parse_body_rate(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    let rate = mayfly_sandbox::units::parse_size(text)?;
    if rate > 1 << 30 {
        return Err("must be at most 1GiB (per second)".into());
    }
    Ok(rate)
}

fn parse_busy_poll(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let window = mayfly_sandbox::units::parse_duration(text)?;
    if window > Duration::from_millis(10) {
        return Err("must be at most 10ms".into());
    }
    Ok(window)
}

fn parse_header_bytes(text: &str) -> Result<usize, String> {
    let bytes = mayfly_sandbox::units::parse_size(text)?;
    match usize::try_from(bytes) {
        Ok(bytes) if (8 << 10..=16 << 20).contains(&bytes) => Ok(bytes),
        _ => Err("must be between 8KiB and 16MiB".into()),
    }
}
