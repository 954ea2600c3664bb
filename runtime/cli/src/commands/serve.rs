//! `mayfly serve`: serve an app over HTTP.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use mayfly_serve::admin;
use mayfly_serve::app::App;
use mayfly_serve::live::LiveApp;
use mayfly_serve::live::watch;
use mayfly_serve::loader::Loader;
use mayfly_serve::metrics::Metrics;
use mayfly_serve::server::{ServeOptions, Server, Shutdown};
use mayfly_serve::state::{RuntimeConfig, default_data_dir, open_backend};
use tokio::signal::unix::{SignalKind, signal};

use super::shared::{self, CacheArgs, EngineArgs};

/// Serve an app over HTTP, with a fresh component instance for every request
///
/// Prints the bound address and the routes, then serves until SIGINT or
/// SIGTERM, when it stops accepting, lets in-flight requests finish (within
/// the grace period) and exits 0.
#[derive(Args)]
pub struct Serve {
    /// The app: a manifest (`app.toml`), or one component (`hello.wasm`) to
    /// serve on every path. Without it, the built-in demo app is served.
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

    /// Longest a response may wait for the client to read it; past it the
    /// connection is closed [suffixes: ms, s, m]
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_client_timeout)]
    write_timeout: Duration,

    /// Most client connections served at once; past it, a new client waits
    /// until the oldest idle connection has closed to make room [default:
    /// half the open-file limit, less 256]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,

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

    /// Reload the app when the manifest or a component file changes; a
    /// version that fails to load is refused and the old one keeps serving
    #[arg(long)]
    watch: bool,

    /// Serve the admin API (deploy, versions, rollback), metrics and health
    /// checks on this loopback address; off unless given
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,

    /// File holding the admin API's bearer token [default: the
    /// MAYFLY_ADMIN_TOKEN environment variable]
    #[arg(long, value_name = "FILE", requires = "admin_listen")]
    admin_token_file: Option<PathBuf>,

    #[command(flatten)]
    cache: CacheArgs,
}

impl Serve {
    pub fn execute(self) -> Result<()> {
        let spec = shared::app_spec(self.app.as_deref())?;
        let settings = shared::settings_for(self.engine.settings(), &spec);
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

        let admin_token = match self.admin_listen {
            Some(_) => Some(self.admin_token()?),
            None => None,
        };
        let watches_a_manifest = self
            .app
            .as_deref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "toml"));
        if self.watch && !watches_a_manifest {
            anyhow::bail!("--watch needs an app manifest (`app.toml`) to watch");
        }

        let mut options = ServeOptions {
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            max_header_bytes: self.max_header_bytes,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            write_timeout: self.write_timeout,
            ..ServeOptions::default()
        };
        if let Some(max) = self.max_connections {
            options.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
        }
        if let Some(workers) = self.workers {
            options.workers = usize::from(workers);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            // The backend's connections are driven by this runtime, which
            // lives as long as the server.
            let backend = open_backend(&spec, &runtime_config, &data_dir)
                .await
                .with_context(|| {
                    format!("cannot open the key-value stores of app `{}`", spec.name)
                })?;
            // Before loading: an edit made while the app loads is a change.
            let first_look = self
                .app
                .as_deref()
                .filter(|_| self.watch)
                .map(|manifest| watch::first_look(&spec, manifest));
            let loader = Loader::new(settings, cache, backend, Arc::new(Metrics::default()))?;
            let app = App::load(&loader, &spec)?;
            let live = Arc::new(LiveApp::new(app, spec, loader));
            if let (Some(manifest), Some(first_look)) = (&self.app, first_look) {
                watch::watch(live.clone(), manifest.clone(), WATCH_INTERVAL, first_look)
                    .context("cannot start watching the app's files")?;
            }
            let admin = match (self.admin_listen, admin_token) {
                (Some(addr), Some(token)) => {
                    let listener = admin::bind(addr).await?;
                    let bound = listener.local_addr()?;
                    tokio::spawn(admin::serve(listener, live.clone(), token));
                    Some(bound)
                }
                _ => None,
            };
            // Signal handlers go in before the address is printed: whoever
            // reads it may signal at once.
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            let server = Server::bind(self.listen)
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            print_banner(&live.current(), admin, server.local_addr());
            let grace = options.shutdown_grace;
            let shutdown = async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                tracing::info!("shutting down; in-flight requests have {grace:?} to finish");
            };
            match server.run(live, &options, shutdown).await? {
                Shutdown::Drained => tracing::info!("stopped"),
                Shutdown::GraceExpired => {
                    tracing::warn!("stopped; the grace period ended with requests in flight")
                }
            }
            Ok(())
        })
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

/// How often `--watch` looks at the files.
const WATCH_INTERVAL: Duration = Duration::from_millis(300);

fn print_banner(app: &App, admin: Option<SocketAddr>, addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Routes of app `{}`:", app.name());
    for (pattern, component) in app.routes() {
        let _ = writeln!(out, "  {:<24} -> {}", pattern.to_string(), component.name());
    }
    if let Some(admin) = admin {
        let _ = writeln!(
            out,
            "Admin API, metrics and health checks on http://{admin}"
        );
    }
    // Last, so whoever waits for this line has the whole banner.
    let _ = writeln!(out, "Serving app `{}` on http://{addr}", app.name());
    let _ = out.flush();
}

fn parse_client_timeout(text: &str) -> Result<Duration, String> {
    let timeout = mayfly_sandbox::units::parse_duration(text)?;
    if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(3600) {
        return Err("must be between 10ms and 60m".into());
    }
    Ok(timeout)
}

fn parse_header_bytes(text: &str) -> Result<usize, String> {
    let bytes = mayfly_sandbox::units::parse_size(text)?;
    match usize::try_from(bytes) {
        Ok(bytes) if (8 << 10..=16 << 20).contains(&bytes) => Ok(bytes),
        _ => Err("must be between 8KiB and 16MiB".into()),
    }
}
