//! The files a component's `watch` globs match, and a stamp of them that
//! changes when one is edited, added or removed.
//!
//! Globs are relative to the build's `workdir`; `*` stops at `/` (`*.py`
//! is the directory's own files, `**/*.py` any depth). The walk skips
//! hidden files and directories and whatever a `.gitignore` ignores (so
//! `target/`, `node_modules/` and `.venv/` of a new app are never read),
//! and the build's output is never a source.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::BuildStep;

/// A component's sources, as its `watch` globs name them.
pub struct Sources {
    workdir: PathBuf,
    globs: GlobSet,
    output: PathBuf,
}

/// Every matching file, in path order, with its modification time and size.
pub type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

impl Sources {
    /// The sources of `step`; an invalid glob is refused with its index
    /// and what is wrong with it.
    pub fn new(step: &BuildStep) -> Result<Self, (usize, String)> {
        let mut set = GlobSetBuilder::new();
        for (i, glob) in step.watch.iter().enumerate() {
            set.add(parse(glob).map_err(|message| (i, message))?);
        }
        Ok(Self {
            workdir: step.workdir.clone(),
            globs: set.build().map_err(|err| (0, err.to_string()))?,
            output: step.output.clone(),
        })
    }

    /// The files that match now. Files that cannot be read are left out.
    pub fn stamp(&self) -> Stamp {
        let mut stamp: Stamp = ignore::WalkBuilder::new(&self.workdir)
            .require_git(false)
            .build()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_some_and(|kind| kind.is_file()))
            .filter(|entry| {
                entry
                    .path()
                    .strip_prefix(&self.workdir)
                    .is_ok_and(|relative| self.globs.is_match(relative))
                    && entry.path() != self.output
            })
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                Some((entry.into_path(), meta.modified().ok(), meta.len()))
            })
            .collect();
        stamp.sort();
        stamp
    }
}

/// Checks one `watch` glob: relative, inside the workdir, and well formed.
pub fn check(glob: &str) -> Result<(), String> {
    parse(glob).map(|_| ())
}

fn parse(glob: &str) -> Result<globset::Glob, String> {
    let path = Path::new(glob);
    if path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "`{glob}` leaves the build's workdir: a watch glob is relative to it, without `..`"
        ));
    }
    GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|err| format!("`{glob}` is not a valid glob: {}", err.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(stamp: &Stamp, root: &Path) -> Vec<String> {
        stamp
            .iter()
            .map(|(path, ..)| path.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn globs_match_below_the_workdir_except_ignored_hidden_and_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "app.py",
            "lib/util.py",
            ".venv/lib/site.py",
            "build/gen.py",
            "notes.txt",
            "out.py",
        ] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), file).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
        let step = |watch: &[&str]| BuildStep {
            component: "api".into(),
            command: String::new(),
            workdir: root.to_path_buf(),
            watch: watch.iter().map(|glob| glob.to_string()).collect(),
            output: root.join("out.py"),
        };
        let top = Sources::new(&step(&["*.py"])).unwrap();
        assert_eq!(names(&top.stamp(), root), ["app.py"]);
        let deep = Sources::new(&step(&["**/*.py"])).unwrap();
        let before = deep.stamp();
        assert_eq!(names(&before, root), ["app.py", "lib/util.py"]);
        std::fs::write(root.join("lib/util.py"), "changed, and longer").unwrap();
        assert_ne!(deep.stamp(), before);
    }

    #[test]
    fn globs_outside_the_workdir_or_malformed_are_refused() {
        assert_eq!(
            check("../shared/*.rs").unwrap_err(),
            "`../shared/*.rs` leaves the build's workdir: a watch glob is relative to it, \
             without `..`"
        );
        assert_eq!(
            check("/etc/*").unwrap_err(),
            "`/etc/*` leaves the build's workdir: a watch glob is relative to it, without `..`"
        );
        assert_eq!(
            check("src/[a-").unwrap_err(),
            "`src/[a-` is not a valid glob: unclosed character class; missing ']'"
        );
        check("src/**/*.rs").unwrap();
    }
}
