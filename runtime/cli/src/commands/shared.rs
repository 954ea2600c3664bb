//! What the subcommands share: engine and cache flags, and how an app is
//! named on the command line.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;
use mayfly_sandbox::{CompileCache, EngineSettings};
use mayfly_serve::manifest::AppSpec;

/// The engine's server-wide bounds: what a component's limits are checked
/// against when the app loads.
#[derive(Args)]
pub(super) struct EngineArgs {
    /// Most component instances alive at once, across all components; a
    /// request beyond it gets 503 with Retry-After. A component's
    /// `instances` may not exceed it. Past about 8000, memory slots shrink
    /// to fit and compiled code changes with them: give `compile` and
    /// `check` the value `serve` will run with
    #[arg(long, value_name = "N", default_value_t = EngineSettings::default().max_instances,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_instances: u32,

    /// Run WASI 0.3 components even if none of the app's needs it at
    /// start, so that a 0.3 version can be deployed later. On by itself
    /// when a component is a 0.3 one; it makes every request cost a little
    /// more (component-model async state in every store)
    #[arg(long = "wasi-03")]
    wasi_03: bool,
}

impl EngineArgs {
    pub(super) fn settings(&self) -> EngineSettings {
        EngineSettings {
            max_instances: self.max_instances,
            wasi_03: self.wasi_03,
            ..EngineSettings::default()
        }
    }
}

/// Where compiled components are cached.
#[derive(Args)]
pub(super) struct CacheArgs {
    /// Directory of the compile cache [default: $MAYFLY_CACHE_DIR, else
    /// $XDG_CACHE_HOME/mayfly, else ~/.cache/mayfly]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile every component at start-up and keep nothing on disk
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    /// The cache these flags ask for; an error, saying why, if its
    /// directory cannot be trusted (see [`CompileCache::open`]).
    pub(super) fn cache(&self) -> Result<CompileCache> {
        if self.no_cache {
            return Ok(CompileCache::disabled());
        }
        let opened = match &self.cache_dir {
            // Chosen: it must work.
            Some(dir) => CompileCache::open(dir.clone()),
            None => CompileCache::open_default(),
        };
        opened.map_err(|err| {
            anyhow::anyhow!(
                "{err} (or pass --cache-dir DIR to use another cache, --no-cache for none)"
            )
        })
    }
}

/// An app from the command line: a manifest, a single component, or (with
/// nothing given) the built-in demo.
pub(super) fn app_spec(app: Option<&Path>) -> Result<AppSpec> {
    match app {
        Some(path) => AppSpec::from_path(path).context("cannot load the app"),
        None => demo_app(),
    }
}

/// The built-in demo app.
#[cfg(feature = "demo")]
fn demo_app() -> Result<AppSpec> {
    Ok(crate::demo::app())
}

/// No app was given, and this build has no demo app to serve instead.
#[cfg(not(feature = "demo"))]
fn demo_app() -> Result<AppSpec> {
    anyhow::bail!(
        "no app given, and this mayfly has no built-in demo app: it was built without the \
         `demo` cargo feature (on by default). Name an app (`mayfly serve app.toml`, \
         `mayfly serve hello.wasm`), or build with `--features demo`"
    )
}
