//! # Mayfly
//!
//! A WebAssembly micro-runtime that serves each HTTP request with a fresh
//! component instance, under capability-based isolation, and throws the
//! instance away when the response is done.
//!
//! The pieces, in the order a request meets them:
//!
//! - [`manifest`]: the app manifest (components and routes), validated into
//!   an [`AppSpec`](manifest::AppSpec).
//! - [`engine`]: the wasmtime engine, tuned for instance churn.
//! - [`cache`]: compiled components on disk, keyed by content and engine.
//! - [`component`]: loading, checking and pre-instantiating a component.
//! - [`app`]: the loaded components and the [`router`].
//! - [`live`]: the app being served, swapped atomically on a deploy, a
//!   rollback or a file change; [`admin`] is the API that drives it.
//! - [`server`]: sockets, worker threads and graceful shutdown.
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`state`]: which key-value backend holds the stores.
//! - [`plugin`]: embedding untrusted plugins in another program.
//! - [`request`]: the per-request path (store, instantiate, handle, drop).
//! - [`host`]: the per-store state, which holds only what was granted.
//! - [`guest_log`]: guest stdout and stderr, capped, into the host log.
//! - [`limits`]: deadlines, memory and table caps, the epoch ticker.
//! - [`units`]: durations and sizes as written in manifests.
//! - [`demo`]: the built-in demo app.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mayfly::{app::App, cache::CompileCache, engine::EngineSettings, manifest::AppSpec};
//! use mayfly::live::LiveApp;
//! use mayfly::server::{Server, ServeOptions};
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = EngineSettings::default().build()?;
//! let _ticker = mayfly::limits::EpochTicker::start(&engine)?;
//! let spec = AppSpec::from_manifest("app.toml".as_ref())?;
//! let app = App::load(&engine, &spec, &CompileCache::disabled(), None)?;
//! let app = Arc::new(LiveApp::new(app, spec, &engine, CompileCache::disabled(), None)?);
//! let server = Server::bind("127.0.0.1:3000".parse()?)?;
//! tokio::runtime::Runtime::new()?.block_on(server.run(app, &ServeOptions::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! }))?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod admin;
pub mod app;
pub mod cache;
pub mod compare;
pub mod component;
pub mod demo;
pub mod engine;
pub mod guest_log;
pub mod host;
pub mod limits;
pub mod live;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod plugin;
pub mod request;
pub mod router;
pub mod server;
pub mod state;
pub mod units;
