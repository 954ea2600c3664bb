//! `--watch`: poll the manifest, the component files and the sources their
//! builds read; build a component again when one of its sources changes,
//! and reload the app when the manifest or a component file does.
//!
//! A source change waits for one quiet poll before its build starts (an
//! editor's save is often several writes), and a build that fails leaves
//! the running version serving, its error on stderr with the compiler's
//! output. A build that succeeds rewrites its component's file, which the
//! same poll sees, and the reload swaps the new version in as any other
//! file change does: requests already running finish on the old one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mayfly_build::{BuildStep, Sources, sources};

use super::LiveApp;
use crate::manifest::{AppSpec, Source};

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

/// One component's build and what was last seen of its sources.
struct Watched {
    step: BuildStep,
    sources: Sources,
    seen: sources::Stamp,
    /// Its sources changed at the last poll: it builds once they have not
    /// changed for a poll.
    settling: bool,
}

impl Watched {
    /// `None` for a step whose globs do not parse (the manifest has said
    /// why already).
    fn new(step: BuildStep) -> Option<Self> {
        let sources = Sources::new(&step).ok()?;
        let seen = sources.stamp();
        Some(Self {
            step,
            sources,
            seen,
            settling: false,
        })
    }

    /// Looks at the sources; builds if they changed and have settled.
    fn poll(&mut self) {
        let now = self.sources.stamp();
        if now != self.seen {
            self.seen = now;
            self.settling = true;
            return;
        }
        if !std::mem::take(&mut self.settling) {
            return;
        }
        if let Err(err) = mayfly_build::build(&self.step) {
            eprintln!("{err}\n  (still serving the previous version)");
        }
        // What the build itself wrote under the globs is not a change.
        self.seen = self.sources.stamp();
    }
}

/// The builds of `spec`, keeping what `old` has seen of those that are the
/// same.
fn builds_of(spec: &AppSpec, mut old: Vec<Watched>) -> Vec<Watched> {
    spec.build_steps()
        .into_iter()
        .filter_map(
            |step| match old.iter().position(|known| known.step == step) {
                Some(at) => Some(old.swap_remove(at)),
                None => Watched::new(step),
            },
        )
        .collect()
}

/// What `--watch` saw of an app's files before the app was loaded from
/// them: an edit made while it loads is then seen as a change.
pub struct FirstLook {
    files: Stamp,
    builds: Vec<Watched>,
}

/// Looks at the manifest, the component files and the builds' sources
/// `spec` names, before the app is loaded from them.
pub fn first_look(spec: &AppSpec, manifest: &Path) -> FirstLook {
    FirstLook {
        files: stamp(&files_to_watch(spec, manifest)),
        builds: builds_of(spec, Vec::new()),
    }
}

/// Watches the manifest, the component files and the builds' sources, as
/// the module says, until `live` drains. Polls every `interval`.
pub fn watch(
    live: Arc<LiveApp>,
    manifest: PathBuf,
    interval: Duration,
    first: FirstLook,
) -> std::io::Result<()> {
    let FirstLook {
        files: mut seen,
        mut builds,
    } = first;
    std::thread::Builder::new()
        .name("mayfly-watch".into())
        .spawn(move || {
            while !live.draining() {
                std::thread::sleep(interval);
                for build in &mut builds {
                    build.poll();
                }
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
                builds = builds_of(&spec, std::mem::take(&mut builds));
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
