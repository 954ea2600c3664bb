//! `--watch`: poll the manifest and the component files, and reload the
//! app when one changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
