//! `mayfly compile`: fill the compile cache ahead of time.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use std::sync::Arc;

use mayfly_sandbox::cache::CacheOutcome;
use mayfly_serve::app::App;
use mayfly_serve::loader::Loader;
use mayfly_serve::metrics::Metrics;

use super::shared::{self, CacheArgs, EngineArgs};

/// Compile an app's components into the compile cache
///
/// Validates and links every component exactly as `mayfly serve` would, so
/// that a later `serve` of the same app with the same Mayfly starts without
/// compiling anything.
#[derive(Args)]
pub struct Compile {
    /// The app: a manifest (`app.toml`) or a single component (`hello.wasm`)
    #[arg(value_name = "APP")]
    app: PathBuf,

    #[command(flatten)]
    engine: EngineArgs,

    #[command(flatten)]
    cache: CacheArgs,
}

impl Compile {
    pub fn execute(self) -> Result<()> {
        let cache = self.cache.cache()?;
        let Some(dir) = cache.dir() else {
            bail!("there is no compile cache to fill: pass --cache-dir DIR (and not --no-cache)");
        };
        println!("Compile cache: {}", dir.display());
        let spec = shared::app_spec(Some(&self.app))?;
        let settings = spec.engine_settings(self.engine.settings());
        let loader = Loader::new(settings, cache, None, Arc::new(Metrics::default()))?;
        let app = App::load(&loader, &spec)?;
        for component in app.components() {
            let what = match component.cache_outcome() {
                CacheOutcome::Hit => "already compiled".to_string(),
                CacheOutcome::Stored => "compiled".to_string(),
                CacheOutcome::Replaced(reason) => format!("compiled (replaced an entry: {reason})"),
                CacheOutcome::NotCached(reason) => bail!(
                    "component `{}` compiled but was not cached: {reason}",
                    component.name()
                ),
            };
            println!("  {:<24} {what}", component.name());
        }
        Ok(())
    }
}
