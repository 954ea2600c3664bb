//! A serving process from start to exit, the one way both `mayfly serve`
//! and the containerd shim (`containerd-shim-mayfly-v1`) run an app: open
//! the key-value backend, load the app, start the admin API, the health
//! checks and `--watch` if asked, bind, print the banner, serve until
//! SIGTERM or SIGINT, and drain.
//!
//! Each caller only gathers a [`Launch`] from where its settings come from
//! (flags for the CLI, the container's environment for the shim).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mayfly_sandbox::{CompileCache, EngineSettings};
use tokio::signal::unix::{SignalKind, signal};

use crate::admin;
use crate::app::App;
use crate::live::{LiveApp, watch};
use crate::loader::Loader;
use crate::manifest::AppSpec;
use crate::metrics::Metrics;
use crate::server::{ServeOptions, Server, Shutdown};
use crate::state::{RuntimeConfig, open_backend};

/// Keeps errors from capturing the host's backtrace, unless
/// `RUST_LIB_BACKTRACE` asks for them: sets it to `0` when unset.
///
/// With `RUST_BACKTRACE=1` in the environment (common on developer
/// machines and in CI), every error value captures a backtrace of the host,
/// and the request path makes errors it expects: a guest's trap, and, for
/// each WASI 0.3 instance, the one wasmtime builds to dispose of the store's
/// idle fiber when the store is dropped. That capture took a tenth of the
/// server's time on a 0.3 hello, and would let a trapping guest buy host CPU
/// cheaply. Panics still print their backtraces (`RUST_BACKTRACE` governs
/// those); Mayfly's errors carry their context chain, and guests' traps
/// their wasm backtrace.
///
/// # Safety
///
/// It writes the process environment, which is sound only while no other
/// thread may read or write it: call it first thing in `main`, before any
/// other thread starts (as `std::env::set_var` requires).
pub unsafe fn errors_without_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller guarantees that no other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// Everything a serving process is started with.
pub struct Launch {
    /// The app.
    pub spec: AppSpec,
    /// The server's engine bounds (fuel metering is added if the app needs
    /// it).
    pub settings: EngineSettings,
    /// Where the app's state lives.
    pub runtime_config: RuntimeConfig,
    /// The embedded key-value backend's directory.
    pub data_dir: PathBuf,
    /// Compiled components.
    pub cache: CompileCache,
    /// The app's address.
    pub listen: SocketAddr,
    /// Workers, timeouts, caps and the shutdown grace.
    pub options: ServeOptions,
    /// The admin API's loopback address and bearer token.
    pub admin: Option<(SocketAddr, Arc<str>)>,
    /// Where `/healthz` and `/readyz` are served alone, on any address.
    pub health: Option<SocketAddr>,
    /// The manifest to watch, reloading the app when it or a component
    /// changes.
    pub watch: Option<PathBuf>,
}

/// How often `watch` looks at the files.
const WATCH_INTERVAL: Duration = Duration::from_millis(300);

impl Launch {
    /// Serves until SIGTERM or SIGINT, then drains: how the run ended, or
    /// why the app could not start.
    pub fn run(self) -> anyhow::Result<Shutdown> {
        let Self {
            spec,
            settings,
            runtime_config,
            data_dir,
            cache,
            listen,
            options,
            admin,
            health,
            watch: watched,
        } = self;
        let settings = spec.engine_settings(settings);
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
            let first_look = watched
                .as_deref()
                .map(|manifest| watch::first_look(&spec, manifest));
            let loader = Loader::new(settings, cache, backend, Arc::new(Metrics::default()))?;
            let app = App::load(&loader, &spec)?;
            let live = Arc::new(LiveApp::new(app, spec, loader));
            if let (Some(manifest), Some(first_look)) = (watched, first_look) {
                watch::watch(live.clone(), manifest, WATCH_INTERVAL, first_look)
                    .context("cannot start watching the app's files")?;
            }
            let admin = match admin {
                Some((addr, token)) => {
                    let listener = admin::bind(addr).await?;
                    let bound = listener.local_addr()?;
                    tokio::spawn(admin::serve(listener, live.clone(), token));
                    Some(bound)
                }
                None => None,
            };
            let health = match health {
                Some(addr) => {
                    let listener = admin::bind_health(addr).await?;
                    let bound = listener.local_addr()?;
                    tokio::spawn(admin::serve_health(listener, live.clone()));
                    Some(bound)
                }
                None => None,
            };
            // Signal handlers go in before the address is printed: whoever
            // reads it may signal at once.
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            let server = Server::bind(listen, options.workers)
                .with_context(|| format!("cannot listen on {listen}"))?;
            print_banner(&live.current(), admin, health, server.local_addr());
            let grace = options.shutdown_grace;
            let shutdown = async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                tracing::info!("shutting down; in-flight requests have {grace:?} to finish");
            };
            let outcome = server.run(live, &options, shutdown).await?;
            match outcome {
                Shutdown::Drained => tracing::info!("stopped"),
                Shutdown::GraceExpired => {
                    tracing::warn!("stopped; the grace period ended with requests in flight")
                }
            }
            Ok(outcome)
        })
    }
}

/// The routes and addresses, on stdout; the last line is the one callers
/// wait for.
fn print_banner(
    app: &App,
    admin: Option<SocketAddr>,
    health: Option<SocketAddr>,
    addr: SocketAddr,
) {
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
    if let Some(health) = health {
        let _ = writeln!(out, "Health checks (/healthz, /readyz) on http://{health}");
    }
    // Last, so whoever waits for this line has the whole banner.
    let _ = writeln!(out, "Serving app `{}` on http://{addr}", app.name());
    let _ = out.flush();
}
