//! The app being served, replaceable while it is served.
//!
//! A new version (of one component, through the admin API, or of the whole
//! app, when `--watch` sees a file change) is compiled, validated and
//! pre-instantiated off the request path, then swapped in with one atomic
//! store. A request takes the app once, when it arrives: requests already
//! running finish on the version they started with, new ones get the new
//! one, and no request ever sees a half-updated app. A version that fails
//! to load is refused with its error, and the old one keeps serving.

pub mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use mayfly_sandbox::Grants;
use mayfly_sandbox::cache::sha256_hex;

use crate::app::App;
use crate::component::LoadedComponent;
use crate::limits::Limits;
use crate::loader::Loader;
use crate::manifest::{AppSpec, ComponentSpec, Source};

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
    limits: Limits,
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

impl LiveApp {
    /// Serves `app`, loaded from `spec` by `loader`, which loads the later
    /// versions too.
    pub fn new(app: App, spec: AppSpec, loader: Loader) -> Self {
        let live = Self {
            current: ArcSwap::from_pointee(app),
            spec: Mutex::new(spec),
            history: Mutex::new(History::default()),
            loader,
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
        live
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
        let hash = sha256_hex(&bytes);
        let mut declared = spec.components[index].clone();
        declared.source = Source::Deployed {
            label: format!("deploy of {name} ({})", &hash[..12]),
            bytes: bytes.into(),
        };
        declared.field = format!("deploy of component `{name}`");
        let app = self.current();
        let component = self
            .loader
            .load(&declared, app.component(name).map(|live| &**live))
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
                                && *live.component.limits() == fresh.limits
                                && *live.component.grants() == fresh.grants
                        })
                });
                (name, same)
            })
            .collect();
        drop(history);

        let (app, loaded) = App::load_next(&self.loader, &spec, &self.current(), |declared| {
            unchanged.get(declared.name.as_str()).copied() == Some(true)
        })?;

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
        Source::File(path) => std::fs::read(path).ok().map(|b| sha256_hex(&b)),
        Source::Embedded { bytes, .. } => Some(sha256_hex(bytes)),
        Source::Deployed { bytes, .. } => Some(sha256_hex(bytes)),
    }
}
