//! # mayfly-serve
//!
//! Everything a served Mayfly app needs: each HTTP request gets a fresh
//! component instance, made from the component's sandbox
//! ([`mayfly_sandbox`]), and the instance is thrown away when the response
//! is done.
//!
//! The modules, in the order a request meets them:
//!
//! - [`manifest`]: the app manifest (components and routes), validated into
//!   an [`AppSpec`](manifest::AppSpec).
//! - [`router`]: paths to components.
//! - [`metrics`]: the server's Prometheus registry and each component's
//!   handles into it.
//! - [`limits`]: the bounds of a component's requests (its store's and
//!   the HTTP path's), and which one a request hit.
//! - [`gate`]: admission to a component (instances and queue).
//! - [`component`]: a component ready to serve.
//! - [`loader`]: the engine, linker and cache that load components, and the
//!   checks against the server's settings.
//! - [`app`]: the loaded components and their routes.
//! - [`live`]: the app being served, swapped atomically on a deploy, a
//!   rollback or a file change (`--watch`).
//! - [`request`]: the per-request path (store, instantiate, handle, drop).
//! - [`server`]: sockets, worker threads and graceful shutdown; in
//!   `connections`, the connection cap, in `socket`, the client socket's
//!   write timeout, and in `busy_poll`, how long a worker polls for the
//!   next request before it sleeps.
//! - [`admin`]: the admin API that drives [`live`], with health and metrics.
//! - [`launch`]: a serving process from start to exit, as `mayfly serve`
//!   and the containerd shim both run it.
//! - [`logging`]: the host's log lines on stderr, human or JSON.
//! - [`state`]: which key-value backend holds the stores.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mayfly_sandbox::{CompileCache, EngineSettings};
//! use mayfly_serve::{app::App, live::LiveApp, loader::Loader, manifest::AppSpec};
//! use mayfly_serve::metrics::Metrics;
//! use mayfly_serve::server::{Server, ServeOptions};
//!
//! # fn main() -> anyhow::Result<()> {
//! let spec = AppSpec::from_manifest("app.toml".as_ref())?;
//! let settings = EngineSettings { consume_fuel: spec.needs_fuel(), ..EngineSettings::default() };
//! let metrics = Arc::new(Metrics::default());
//! let loader = Loader::new(settings, CompileCache::disabled(), None, metrics)?;
//! let app = App::load(&loader, &spec)?;
//! let live = Arc::new(LiveApp::new(app, spec, loader));
//! let options = ServeOptions::default();
//! let server = Server::bind("127.0.0.1:3000".parse()?, options.workers)?;
//! tokio::runtime::Runtime::new()?.block_on(server.run(live, &options, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! }))?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod admin;
pub mod app;
mod busy_poll;
pub mod component;
mod connections;
pub mod gate;
pub mod launch;
pub mod limits;
pub mod live;
pub mod loader;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod request;
pub mod router;
pub mod server;
mod socket;
pub mod state;
