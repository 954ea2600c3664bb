//! The app being served, replaceable while it is served.
//!
//! A new version (of one component, through the admin API, or of the whole
//! app, when `--watch` sees a file change) is compiled, validated and
//! pre-instantiated off the request path, then swapped in with one atomic
//! store. A request takes the app once, when it arrives: requests already
//! running finish on the version they started with, new ones get the new
//! one, and no request ever sees a half-updated app. A version that fails
//! to load is refused with its error, and the old one keeps serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use mayfly_host_api::kv::Backend;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::app::App;
use crate::cache::CompileCache;
use crate::component::LoadedComponent;
use crate::host::{self, Host};
use crate::manifest::{AppSpec, Source};

/// Versions kept per component, for rollback.
const KEPT_VERSIONS: usize = 5;

/// One deployed version of a component.
#[derive(Clone)]
pub struct Version {
    /// 1 for what the server started with, then counting up.
    pub number: u32,
    /// SHA-256 of the component's bytes, in hex.
    pub sha256: String,
    /// Where it came from: a file, or `deployed`.
    pub origin: String,
    /// When it went live first.
    pub deployed_at: SystemTime,
    component: Arc<LoadedComponent>,
}

#[derive(Default)]
struct History {
    /// Per component: its versions, oldest first, and which is live.
    components: BTreeMap<String, (Vec<Version>, usize)>,
    next: BTreeMap<String, u32>,
}

/// What loads new versions: the same engine, linker, cache and backend as
/// the first.
struct Loader {
    engine: Engine,
    linker: Linker<Host>,
    cache: CompileCache,
    backend: Option<Arc<dyn Backend>>,
}

/// The app being served, its spec, and its history.
pub struct LiveApp {
    current: ArcSwap<App>,
    spec: Mutex<AppSpec>,
    history: Mutex<History>,
    loader: Loader,
    draining: AtomicBool,
}

/// Why a deploy or rollback was refused. The app is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// There is no component by that name.
    #[error("no component named `{0}`")]
    NoSuchComponent(String),
    /// The new version did not load.
    #[error("{0}")]
    Invalid(String),
    /// There is no older version to go back to.
    #[error("component `{0}` has no earlier version to roll back to")]
    NothingToRollBack(String),
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl LiveApp {
    /// Serves `app`, loaded from `spec`; later versions load with the same
    /// `engine`, `cache` and `backend`.
    pub fn new(
        app: App,
        spec: AppSpec,
        engine: &Engine,
        cache: CompileCache,
        backend: Option<Arc<dyn Backend>>,
    ) -> anyhow::Result<Self> {
        let linker = host::linker(engine).map_err(anyhow::Error::from)?;
        let live = Self {
            current: ArcSwap::from_pointee(app),
            spec: Mutex::new(spec),
            history: Mutex::new(History::default()),
            loader: Loader {
                engine: engine.clone(),
                linker,
                cache,
                backend,
            },
            draining: AtomicBool::new(false),
        };
        let app = live.current();
        let spec = live.spec.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut history = live.history.lock().unwrap_or_else(|p| p.into_inner());
        for (component, declared) in app.components().iter().zip(&spec.components) {
            record(
                &mut history,
                component,
                origin(&declared.source),
                hash_source(&declared.source),
            );
        }
        drop(history);
        Ok(live)
    }

    /// The app as it is now. Take it once per request.
    pub fn current(&self) -> Arc<App> {
        self.current.load_full()
    }

    /// Marks the server as shutting down (for readiness).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the server is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Every component's versions, and which is live.
    pub fn versions(&self) -> Vec<(String, Vec<Version>, u32)> {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history
            .components
            .iter()
            .map(|(name, (versions, live))| {
                (name.clone(), versions.clone(), versions[*live].number)
            })
            .collect()
    }

    /// Compiles `bytes` as a new version of component `name` (same grants
    /// and limits), and swaps it in. Blocks while compiling: call it off the
    /// request path.
    pub fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<u32, UpdateError> {
        let mut spec = self.spec.lock().unwrap_or_else(|p| p.into_inner());
        let index = spec
            .components
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| UpdateError::NoSuchComponent(name.into()))?;
        let hash = sha256(&bytes);
        let mut declared = spec.components[index].clone();
        declared.source = Source::Deployed {
            label: format!("deploy of {name} ({})", &hash[..12]),
            bytes: bytes.into(),
        };
        declared.field = format!("deploy of component `{name}`");
        let loader = &self.loader;
        let component = LoadedComponent::load(
            &loader.engine,
            &loader.linker,
            &declared,
            &loader.cache,
            loader.backend.as_ref(),
        )
        .map_err(|err| UpdateError::Invalid(err.to_string()))?;
        spec.components[index] = declared;
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let number = record(&mut history, &component, "deployed".into(), hash);
        self.swap(index, component);
        Ok(number)
    }

    /// Puts the version before the live one of component `name` back.
    pub fn rollback(&self, name: &str) -> Result<u32, UpdateError> {
        let _spec = self.spec.lock().unwrap_or_else(|p| p.into_inner());
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let (versions, live) = history
            .components
            .get_mut(name)
            .ok_or_else(|| UpdateError::NoSuchComponent(name.into()))?;
        if *live == 0 {
            return Err(UpdateError::NothingToRollBack(name.into()));
        }
        *live -= 1;
        let version = versions[*live].clone();
        drop(history);
        let app = self.current();
        let index = app
            .components()
            .iter()
            .position(|c| c.name() == name)
            .ok_or_else(|| UpdateError::NoSuchComponent(name.into()))?;
        self.swap(index, version.component.clone());
        Ok(version.number)
    }

    /// Reloads the whole app from `spec` (after a manifest or file change)
    /// and swaps it in. Blocks while compiling.
    pub fn reload(&self, spec: AppSpec) -> anyhow::Result<()> {
        let loader = &self.loader;
        let app = App::load(
            &loader.engine,
            &spec,
            &loader.cache,
            loader.backend.as_ref(),
        )?;
        let mut current_spec = self.spec.lock().unwrap_or_else(|p| p.into_inner());
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for (component, declared) in app.components().iter().zip(&spec.components) {
            record(
                &mut history,
                component,
                origin(&declared.source),
                hash_source(&declared.source),
            );
        }
        *current_spec = spec;
        self.current.store(Arc::new(app));
        Ok(())
    }

    fn swap(&self, index: usize, component: Arc<LoadedComponent>) {
        let app = self.current();
        self.current
            .store(Arc::new(app.with_component(index, component)));
    }
}

/// Adds `component` as the newest, live version; returns its number.
fn record(
    history: &mut History,
    component: &Arc<LoadedComponent>,
    origin: String,
    sha256: String,
) -> u32 {
    let name = component.name().to_string();
    let next = history.next.entry(name.clone()).or_insert(1);
    let number = *next;
    *next += 1;
    let (versions, live) = history.components.entry(name).or_default();
    // A deploy after a rollback drops the versions that were rolled back.
    versions.truncate(*live + usize::from(!versions.is_empty()));
    versions.push(Version {
        number,
        sha256,
        origin,
        deployed_at: SystemTime::now(),
        component: component.clone(),
    });
    if versions.len() > KEPT_VERSIONS {
        versions.remove(0);
    }
    *live = versions.len() - 1;
    number
}

fn origin(source: &Source) -> String {
    source.to_string()
}

fn hash_source(source: &Source) -> String {
    match source {
        Source::File(path) => std::fs::read(path).map(|b| sha256(&b)).unwrap_or_default(),
        Source::Embedded { bytes, .. } => sha256(bytes),
        Source::Deployed { bytes, .. } => sha256(bytes),
    }
}

/// Watches the manifest and the component files, and reloads the app when
/// one changes, until `live` drains. Polls every `interval`.
pub fn watch(live: Arc<LiveApp>, manifest: PathBuf, interval: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("mayfly-watch".into())
        .spawn(move || {
            let mut seen = stamp(&live, &manifest);
            while !live.draining() {
                std::thread::sleep(interval);
                let now = stamp(&live, &manifest);
                if now == seen {
                    continue;
                }
                seen = now;
                let spec = match AppSpec::from_manifest(&manifest) {
                    Ok(spec) => spec,
                    Err(err) => {
                        tracing::error!(
                            "reload refused; still serving the previous version: {err}"
                        );
                        continue;
                    }
                };
                match live.reload(spec) {
                    Ok(()) => tracing::info!("reloaded {} after a change", manifest.display()),
                    Err(err) => tracing::error!(
                        "reload refused; still serving the previous version: {err:#}"
                    ),
                }
                // What the new manifest names is what to watch now.
                seen = stamp(&live, &manifest);
            }
        })
        .map(|_| ())
}

/// Modification times and sizes of the manifest and every component file.
fn stamp(live: &LiveApp, manifest: &Path) -> Vec<Option<(SystemTime, u64)>> {
    let spec = live.spec.lock().unwrap_or_else(|p| p.into_inner());
    let mut files = vec![manifest.to_path_buf()];
    for component in &spec.components {
        if let Source::File(path) = &component.source {
            files.push(path.clone());
        }
    }
    drop(spec);
    files
        .iter()
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|meta| Some((meta.modified().ok()?, meta.len())))
        })
        .collect()
}
