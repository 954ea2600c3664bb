//! The app as an image holds it under `/app`: the manifest rewritten so
//! that every path in it is relative to `/app`, and the files it names.
//!
//! | written in the manifest             | in the image                       |
//! | ----------------------------------- | ---------------------------------- |
//! | `component.NAME.source`             | `components/NAME.wasm`             |
//! | `component.NAME.files[i].host`      | `files/NAME/<i>` (the whole tree)  |
//! | `secrets`                           | `secrets.toml`                     |
//! | (`--runtime-config`)                | `runtime.toml`                     |
//!
//! Everything is read and checked before anything is written: the
//! manifest through [`AppSpec::from_manifest`], each component's bytes
//! (a WebAssembly component), each granted tree (directories and regular
//! files only: a symlink would reach outside what the manifest names).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use mayfly_sandbox::binary::check_component;
use mayfly_serve::manifest::{AppSpec, ManifestError, Source};
use mayfly_serve::state::RuntimeConfig;
use toml::{Table, Value};

use crate::error::BuildError;

/// The manifest's name in the image, under `/app`.
pub(crate) const MANIFEST: &str = "app.toml";
/// The runtime config's name in the image, under `/app`.
pub(crate) const RUNTIME_CONFIG: &str = "runtime.toml";

/// What the layer holds at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A file that may hold secrets (the secrets file, the runtime config
    /// with a Redis password): readable by its owner alone.
    Secret(Vec<u8>),
}

/// The app's files, by path relative to `/app`, and its name.
#[derive(Debug)]
pub(crate) struct AppFiles {
    /// The app's name, as the manifest gives it or its file name implies.
    pub name: String,
    /// Every file and directory under `/app` (parents before children, as
    /// paths order by component).
    pub entries: BTreeMap<PathBuf, Entry>,
}

impl AppFiles {
    fn insert(&mut self, path: PathBuf, entry: Entry) {
        for parent in path.ancestors().skip(1) {
            if !parent.as_os_str().is_empty() {
                self.entries.insert(parent.to_path_buf(), Entry::Dir);
            }
        }
        self.entries.insert(path, entry);
    }
}

/// Reads and checks the app at `manifest`, and the runtime config at
/// `runtime_config`, into the files of `/app`.
pub(crate) fn collect(
    manifest: &Path,
    runtime_config: Option<&Path>,
) -> Result<AppFiles, BuildError> {
    // `{ env = "NAME" }` config values are read when a task starts, from
    // its container's environment, not from the environment of this build.
    let spec = AppSpec::from_manifest_in(manifest, &|_| Some(String::new()))?;
    let runtime = match runtime_config {
        Some(path) => {
            RuntimeConfig::load(path).map_err(BuildError::RuntimeConfig)?;
            let bytes = std::fs::read(path).map_err(|err| {
                BuildError::RuntimeConfig(anyhow::anyhow!(
                    "cannot read runtime config {}: {err}",
                    path.display()
                ))
            })?;
            Some(bytes)
        }
        None => None,
    };
    let field_error = |field: &str, message: String| ManifestError::Field {
        path: manifest.to_path_buf(),
        field: field.to_string(),
        message,
    };
    // The text is read again to be rewritten: only the paths change.
    let text = std::fs::read_to_string(manifest).map_err(|reason| ManifestError::Read {
        path: manifest.to_path_buf(),
        reason,
    })?;
    let mut table: Table = text
        .parse()
        .map_err(|err: toml::de::Error| ManifestError::Parse {
            path: manifest.to_path_buf(),
            position: None,
            field: None,
            message: err.message().trim_end().to_string(),
        })?;
    let changed = || {
        field_error(
            "component",
            "the manifest changed while the image was being built; build again".into(),
        )
    };

    let mut app = AppFiles {
        name: spec.name.clone(),
        entries: BTreeMap::new(),
    };
    app.entries.insert(PathBuf::new(), Entry::Dir);
    for component in &spec.components {
        let name = &component.name;
        let Source::File(path) = &component.source else {
            return Err(field_error(
                &component.field,
                format!(
                    "the component comes from {}, not a file: an image is built from files",
                    component.source
                ),
            )
            .into());
        };
        let bytes = read_component(path).map_err(|message| {
            field_error(&component.field, format!("{}: {message}", path.display()))
        })?;
        let in_image = format!("components/{name}.wasm");
        app.insert(PathBuf::from(&in_image), Entry::File(bytes));

        let entry = table
            .get_mut("component")
            .and_then(Value::as_table_mut)
            .and_then(|components| components.get_mut(name))
            .and_then(Value::as_table_mut)
            .ok_or_else(changed)?;
        entry.insert("source".into(), Value::String(in_image));
        // The image holds what was built, not how: its sources are not in it.
        entry.remove("build");
        if component.grants.files.is_empty() {
            continue;
        }
        let grants = entry
            .get_mut("files")
            .and_then(Value::as_array_mut)
            .filter(|grants| grants.len() == component.grants.files.len())
            .ok_or_else(changed)?;
        for (i, (grant, written)) in component.grants.files.iter().zip(grants).enumerate() {
            let field = format!("component.{name}.files[{i}].host");
            let in_image = format!("files/{name}/{i}");
            copy_tree(&grant.host, Path::new(&in_image), &mut app)
                .map_err(|message| field_error(&field, message))?;
            written
                .as_table_mut()
                .ok_or_else(changed)?
                .insert("host".into(), Value::String(in_image));
        }
    }

    if let Some(secrets) = table.get("secrets") {
        let written = secrets.as_str().ok_or_else(changed)?;
        let path = manifest.parent().unwrap_or(Path::new("")).join(written);
        let bytes = std::fs::read(&path)
            .map_err(|err| field_error("secrets", format!("{}: {err}", path.display())))?;
        app.insert(PathBuf::from("secrets.toml"), Entry::Secret(bytes));
        table.insert("secrets".into(), Value::String("secrets.toml".into()));
    }
    // A manifest without `name` takes it from its file's name, which in the
    // image is `app.toml`: written out, the app keeps its name, and with it
    // its state's keys.
    table
        .entry("name")
        .or_insert_with(|| Value::String(spec.name.clone()));

    let rewritten = toml::to_string(&table).map_err(|err| BuildError::Encode(err.to_string()))?;
    let rewritten = format!(
        "# Rewritten by `mayfly oci build`: every path is relative to this file.\n{rewritten}"
    );
    app.insert(PathBuf::from(MANIFEST), Entry::File(rewritten.into_bytes()));
    if let Some(bytes) = runtime {
        app.insert(PathBuf::from(RUNTIME_CONFIG), Entry::Secret(bytes));
    }
    Ok(app)
}

/// A component's bytes, if the file is a WebAssembly component.
fn read_component(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = std::fs::File::open(path).map_err(|err| err.to_string())?;
    let meta = file.metadata().map_err(|err| err.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|err| err.to_string())?;
    check_component(&bytes).map_err(|err| err.to_string())?;
    Ok(bytes)
}

/// Copies the directory tree at `host` to `into` in `app`. Only directories
/// and regular files are copied; anything else, a symlink above all, is
/// refused by its path. The tree is read through a handle on `host`, so
/// nothing outside it is ever opened.
fn copy_tree(host: &Path, into: &Path, app: &mut AppFiles) -> Result<(), String> {
    let root = Dir::open_ambient_dir(host, ambient_authority())
        .map_err(|err| format!("{}: {err}", host.display()))?;
    app.insert(into.to_path_buf(), Entry::Dir);
    let mut pending = vec![(root, host.to_path_buf(), into.to_path_buf())];
    while let Some((dir, shown, into)) = pending.pop() {
        let failed = |err: std::io::Error| format!("{}: {err}", shown.display());
        for entry in dir.entries().map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name();
            let shown = shown.join(&name);
            let into = into.join(&name);
            let failed = |err: std::io::Error| format!("{}: {err}", shown.display());
            let kind = entry.file_type().map_err(failed)?;
            if kind.is_symlink() {
                return Err(format!(
                    "{} is a symbolic link: an image holds only directories and regular files \
                     (copy what it points to into the directory instead)",
                    shown.display()
                ));
            } else if kind.is_dir() {
                let sub = entry.open_dir().map_err(failed)?;
                app.insert(into.clone(), Entry::Dir);
                pending.push((sub, shown, into));
            } else if kind.is_file() {
                let mut file = entry.open().map_err(failed)?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(failed)?;
                app.insert(into, Entry::File(bytes));
            } else {
                return Err(format!(
                    "{} is not a directory or a regular file (a device, socket or FIFO): \
                     an image cannot hold it",
                    shown.display()
                ));
            }
        }
    }
    Ok(())
}
