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
use crate::limits::RequestLimits;
use crate::manifest::{AppSpec, ComponentSpec, Grants, Source};

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
    /// Per component: what the manifest declared when it was last read. A
    /// reload leaves a component whose declaration has not changed as it
    /// is, even if the live version came from the admin API since.
    declared: BTreeMap<String, Fingerprint>,
}

/// What makes two declarations of a component load the same thing.
#[derive(PartialEq)]
struct Fingerprint {
    sha256: String,
    limits: RequestLimits,
    grants: Grants,
}

impl Fingerprint {
    /// `None` when the bytes cannot be read (the load will say why).
    fn of(declared: &ComponentSpec) -> Option<Self> {
        Some(Self {
            sha256: hash_source(&declared.source)?,
            limits: declared.limits,
            grants: declared.grants.clone(),
        })
    }
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
    /// The app as served: the manifest's declarations, with deployed
    /// versions in place of the ones they replaced. Held while an update
    /// is made, so that updates happen one at a time.
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
            let fingerprint = Fingerprint::of(declared);
            let sha256 = fingerprint
                .as_ref()
                .map(|f| f.sha256.clone())
                .unwrap_or_default();
            record(&mut history, component, origin(&declared.source), sha256);
            if let Some(fingerprint) = fingerprint {
                history.declared.insert(declared.name.clone(), fingerprint);
            }
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
        let app = self.current();
        let component = LoadedComponent::load_after(
            &loader.engine,
            &loader.linker,
            &declared,
            &loader.cache,
            loader.backend.as_ref(),
            app.component(name).map(|live| &**live),
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
        // Where the component is in the app, before anything moves.
        let index = self
            .current()
            .components()
            .iter()
            .position(|c| c.name() == name)
            .ok_or_else(|| UpdateError::NoSuchComponent(name.into()))?;
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let (versions, live) = history
            .components
            .get_mut(name)
            .ok_or_else(|| UpdateError::NoSuchComponent(name.into()))?;
        if *live == 0 {
            return Err(UpdateError::NothingToRollBack(name.into()));
        }
        let version = versions[*live - 1].clone();
        *live -= 1;
        self.swap(index, version.component.clone());
        Ok(version.number)
    }

    /// Reloads the whole app from `spec` (after a manifest or file change)
    /// and swaps it in. Blocks while compiling.
    ///
    /// Only the components whose declaration changed (bytes, grants or
    /// limits) are loaded anew and get a new version; the others keep
    /// serving their live version, deployed or not.
    pub fn reload(&self, spec: AppSpec) -> anyhow::Result<()> {
        let mut current_spec = self.spec.lock().unwrap_or_else(|p| p.into_inner());
        let fresh: Vec<Option<Fingerprint>> = spec.components.iter().map(Fingerprint::of).collect();
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let unchanged: BTreeMap<&str, bool> = spec
            .components
            .iter()
            .zip(&fresh)
            .map(|(declared, fresh)| {
                let name = declared.name.as_str();
                let same = fresh.as_ref().is_some_and(|fresh| {
                    let declared_before = history.declared.get(name);
                    let live = history
                        .components
                        .get(name)
                        .map(|(versions, live)| &versions[*live]);
                    declared_before == Some(fresh)
                        || live.is_some_and(|live| {
                            live.sha256 == fresh.sha256
                                && live.component.limits == fresh.limits
                                && live.component.grants == fresh.grants
                        })
                });
                (name, same)
            })
            .collect();
        drop(history);

        let loader = &self.loader;
        let (app, loaded) = App::load_next(
            &loader.engine,
            &spec,
            &loader.cache,
            loader.backend.as_ref(),
            &self.current(),
            |declared, _| unchanged.get(declared.name.as_str()).copied() == Some(true),
        )?;

        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let mut served = spec.clone();
        for (((component, declared), fresh), loaded) in app
            .components()
            .iter()
            .zip(&spec.components)
            .zip(fresh)
            .zip(&loaded)
        {
            if *loaded {
                let sha256 = fresh.as_ref().map(|f| f.sha256.clone()).unwrap_or_default();
                record(&mut history, component, origin(&declared.source), sha256);
            }
            match fresh {
                Some(fresh) => history.declared.insert(declared.name.clone(), fresh),
                None => history.declared.remove(&declared.name),
            };
        }
        // A component that was kept keeps its declaration as served (a
        // deployed version stays deployed).
        for (declared, loaded) in served.components.iter_mut().zip(&loaded) {
            if !*loaded
                && let Some(before) = current_spec
                    .components
                    .iter()
                    .find(|c| c.name == declared.name)
            {
                *declared = before.clone();
            }
        }
        // Components the manifest no longer declares are gone.
        let names: Vec<&str> = spec.components.iter().map(|c| c.name.as_str()).collect();
        history
            .components
            .retain(|name, _| names.contains(&name.as_str()));
        history
            .declared
            .retain(|name, _| names.contains(&name.as_str()));
        *current_spec = served;
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

fn hash_source(source: &Source) -> Option<String> {
    match source {
        Source::File(path) => std::fs::read(path).ok().map(|b| sha256(&b)),
        Source::Embedded { bytes, .. } => Some(sha256(bytes)),
        Source::Deployed { bytes, .. } => Some(sha256(bytes)),
    }
}

/// The component files `spec` names.
fn files_of(spec: &AppSpec) -> Vec<PathBuf> {
    spec.components
        .iter()
        .filter_map(|component| match &component.source {
            Source::File(path) => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// What `--watch` saw of an app's files before the app was loaded from
/// them: an edit made while it loads is then seen as a change.
pub struct FirstLook(Stamp);

/// Looks at the manifest and the component files `spec` names, before the
/// app is loaded from them.
pub fn first_look(spec: &AppSpec, manifest: &Path) -> FirstLook {
    FirstLook(stamp(&files_to_watch(spec, manifest)))
}

/// Watches the manifest and the component files, and reloads the app when
/// one changes from what `first` saw, until `live` drains. Polls every
/// `interval`.
pub fn watch(
    live: Arc<LiveApp>,
    manifest: PathBuf,
    interval: Duration,
    first: FirstLook,
) -> std::io::Result<()> {
    let FirstLook(mut seen) = first;
    std::thread::Builder::new()
        .name("mayfly-watch".into())
        .spawn(move || {
            while !live.draining() {
                std::thread::sleep(interval);
                let files: Vec<PathBuf> = seen.iter().map(|(path, _)| path.clone()).collect();
                let now = stamp(&files);
                if now == seen {
                    continue;
                }
                let spec = match AppSpec::from_manifest(&manifest) {
                    Ok(spec) => spec,
                    Err(err) => {
                        tracing::error!(
                            "reload refused; still serving the previous version: {err}"
                        );
                        seen = now;
                        continue;
                    }
                };
                // What the new manifest names is what to watch from now on,
                // whether or not the reload succeeds (a component file it
                // names may not exist yet). Each file is looked at before
                // the reload reads it, so an edit made during the reload is
                // seen next time.
                let next = files_to_watch(&spec, &manifest)
                    .into_iter()
                    .map(|path| match now.iter().find(|(known, _)| *known == path) {
                        Some(before) => before.clone(),
                        None => {
                            let look = look(&path);
                            (path, look)
                        }
                    })
                    .collect();
                match live.reload(spec) {
                    Ok(()) => tracing::info!("reloaded {} after a change", manifest.display()),
                    Err(err) => tracing::error!(
                        "reload refused; still serving the previous version: {err:#}"
                    ),
                }
                seen = next;
            }
        })
        .map(|_| ())
}

/// The manifest and every component file `spec` names.
fn files_to_watch(spec: &AppSpec, manifest: &Path) -> Vec<PathBuf> {
    let mut files = vec![manifest.to_path_buf()];
    files.extend(files_of(spec));
    files
}

/// What a poll compares: each file with its modification time and size.
type Stamp = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|path| (path.clone(), look(path)))
        .collect()
}

/// A file's modification time and size, or `None` while it is missing.
fn look(path: &Path) -> Option<(SystemTime, u64)> {
    std::fs::metadata(path)
        .ok()
        .and_then(|meta| Some((meta.modified().ok()?, meta.len())))
}
