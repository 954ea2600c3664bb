//! The compile cache's rules for the file system: which directories and
//! files it trusts, and how it writes new ones.

use std::fs::{self, File, Metadata};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// The user this process acts as: the only owner the cache trusts.
pub(super) use crate::private_dir::effective_uid;

/// A file the cache looked at.
pub(super) enum Opened {
    /// Nothing is there.
    Missing,
    /// A regular file of this user's, which only this user may read or
    /// write, open for reading.
    Own(File, Metadata),
    /// Something else; what it is, as `is owned by uid 7, ...`.
    Distrusted(String),
}

/// Opens `path` for reading if it is a file the cache may trust, without
/// following a symbolic link. The checks are made on the open file, so
/// what is judged is what is read.
pub(super) fn open_own(path: &Path) -> io::Result<Opened> {
    let opened = fs::OpenOptions::new()
        .read(true)
        // A link is refused, not followed; a FIFO does not block the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Opened::Distrusted("is a symbolic link".into()));
        }
        Err(err) => return Err(err),
    };
    let meta = file.metadata()?;
    Ok(match distrust(&meta) {
        Some(problem) => Opened::Distrusted(problem),
        None => Opened::Own(file, meta),
    })
}

/// What keeps the cache from trusting a file, if anything: it must be a
/// regular file, owned by this user, with no permissions for group or
/// others.
fn distrust(meta: &Metadata) -> Option<String> {
    if !meta.file_type().is_file() {
        return Some("is not a regular file".into());
    }
    let (owner, user) = (meta.uid(), effective_uid());
    if owner != user {
        return Some(format!(
            "is owned by uid {owner}, not by this user (uid {user})"
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Some(format!(
            "is readable or writable by group or others (mode {mode:04o})"
        ));
    }
    None
}

/// Writes `parts` to a new file in `dir` with a random name, mode 0600,
/// synced to disk, and returns its path for the caller to rename or link
/// into place. The file is created with O_EXCL|O_NOFOLLOW, so it is never
/// one (or a link to one) that was there before. On failure nothing is
/// left behind.
pub(super) fn write_new(dir: &Path, parts: &[&[u8]]) -> io::Result<PathBuf> {
    let mut name = [0u8; 16];
    fill_random(&mut name)?;
    let path = dir.join(format!(".tmp-{}", hex(&name)));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    let written = parts
        .iter()
        .try_for_each(|part| file.write_all(part))
        .and_then(|()| file.sync_all());
    if let Err(err) = written {
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(err);
    }
    Ok(path)
}

/// Fills `bytes` from the operating system's random number generator.
pub(super) fn fill_random(bytes: &mut [u8]) -> io::Result<()> {
    getrandom::fill(bytes)
        .map_err(|err| io::Error::other(format!("no random numbers from the system: {err}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
