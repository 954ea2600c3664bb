//! The image's one layer: a tar of `/app` and the shim's data and cache
//! directories, gzipped, the same bytes for the same app wherever and
//! whenever it is built.
//!
//! What makes it reproducible: entries in path order, owner 0:0 with no
//! user or group names, modification time 0, mode 0644 for files and 0755
//! for directories (whatever they were on disk), and gzip with a fixed
//! header (no name, time 0, OS "unknown") at a fixed level. Two kinds keep
//! what is theirs private: the secrets file and the runtime config are
//! 0600, and the shim's data and cache directories 0700.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use mayfly_sandbox::cache::sha256_hex;

use crate::app::{AppFiles, Entry};

/// Where the app lives in the image.
const APP_DIR: &str = "app";
/// The shim's default data and cache directories, present and empty.
const EMPTY_DIRS: [&str; 2] = [crate::DATA_DIR, crate::CACHE_DIR];

/// The gzip level: fixed, as the compressed bytes depend on it.
const LEVEL: u32 = 6;
/// gzip's "unknown" operating system byte, rather than the builder's.
const OS_UNKNOWN: u8 = 255;

/// The layer, compressed, with its two digests.
pub(crate) struct Layer {
    /// The gzipped tar.
    pub gzip: Vec<u8>,
    /// `sha256:` of the uncompressed tar (the config's `diff_ids`).
    pub diff_id: String,
}

/// Builds the layer holding `app` under `/app`.
pub(crate) fn build(app: &AppFiles) -> io::Result<Layer> {
    let dir = Entry::Dir;
    let private = Private;
    let mut entries: BTreeMap<PathBuf, Layered<'_>> = BTreeMap::new();
    for (path, entry) in &app.entries {
        // Not `join`: that makes `app/` of the empty path.
        let path: PathBuf = Path::new(APP_DIR)
            .components()
            .chain(path.components())
            .collect();
        entries.insert(path, Layered::App(entry));
    }
    for empty in EMPTY_DIRS {
        let empty = Path::new(empty.trim_start_matches('/'));
        for path in empty.ancestors().skip(1) {
            if !path.as_os_str().is_empty() {
                entries.insert(path.to_path_buf(), Layered::App(&dir));
            }
        }
        entries.insert(empty.to_path_buf(), Layered::Private(&private));
    }

    let mut tar = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        append(&mut tar, &path, entry)?;
    }
    let tar = tar.into_inner()?;

    let mut gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(OS_UNKNOWN)
        .write(Vec::new(), Compression::new(LEVEL));
    gzip.write_all(&tar)?;
    Ok(Layer {
        gzip: gzip.finish()?,
        diff_id: format!("sha256:{}", sha256_hex(&tar)),
    })
}

/// A directory only its owner may enter: the shim's data and cache.
struct Private;

/// What goes in the layer at a path.
enum Layered<'a> {
    /// Something of the app's.
    App(&'a Entry),
    /// One of the shim's own directories.
    Private(&'a Private),
}

/// Appends `entry` at `path`.
fn append<W: io::Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    entry: Layered<'_>,
) -> io::Result<()> {
    match entry {
        Layered::App(Entry::Dir) => append_dir(tar, path),
        Layered::App(Entry::File(bytes)) => append_file(tar, path, bytes, 0o644),
        Layered::App(Entry::Secret(bytes)) => append_file(tar, path, bytes, 0o600),
        Layered::Private(Private) => {
            let mut header = fixed_header(tar::EntryType::Directory, 0o700, 0);
            tar.append_data(&mut header, path, io::empty())
        }
    }
}

/// Appends a directory at `path`: mode 0755, owner 0:0, time 0.
pub(crate) fn append_dir<W: io::Write>(tar: &mut tar::Builder<W>, path: &Path) -> io::Result<()> {
    let mut header = fixed_header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut header, path, io::empty())
}

/// Appends a file holding `data` at `path`: mode `mode`, owner 0:0, time
/// 0.
pub(crate) fn append_file<W: io::Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    data: &[u8],
    mode: u32,
) -> io::Result<()> {
    let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let mut header = fixed_header(tar::EntryType::Regular, mode, size);
    tar.append_data(&mut header, path, data)
}

/// A header with nothing in it that depends on the machine or the time:
/// no user or group names, and every number not set here is 0.
fn fixed_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}
