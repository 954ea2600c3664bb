//! Directories Mayfly keeps its own files in (the compile cache's native
//! code, the key-value stores' data): this user's alone, by one rule.
//!
//! A missing directory is made 0700, with any missing parents. One that is
//! there is refused if it is a symbolic link or not a directory, belongs
//! to another user, or may be written by group or others (who could have
//! put files in it); one that group or others may only read or enter is
//! made 0700.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// What a private directory is for, as its errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose {
    /// What the directory is, as `compile cache`.
    pub what: &'static str,
    /// What it holds that must not be planted, as `code`.
    pub holds: &'static str,
}

/// The compile cache: native code Mayfly runs.
pub const COMPILE_CACHE: Purpose = Purpose {
    what: "compile cache",
    holds: "code",
};

/// The data directory: the key-value stores' files.
pub const DATA: Purpose = Purpose {
    what: "data directory",
    holds: "data",
};

/// Why a directory cannot be Mayfly's own. Each names the path and what is
/// wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    /// The directory could not be made, read or tightened.
    #[error("cannot use {} {}: {reason}", purpose.what, path.display())]
    Io {
        /// What it is for.
        purpose: Purpose,
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The path is a symbolic link (not followed), a file, or something
    /// else that is not a directory.
    #[error("{} {} is {found}, not a directory", purpose.what, path.display())]
    NotADirectory {
        /// What it is for.
        purpose: Purpose,
        /// The path.
        path: PathBuf,
        /// What is there instead, as `a symbolic link`.
        found: &'static str,
    },
    /// The directory belongs to another user, who could put files in it.
    #[error(
        "{} {} is owned by uid {owner}, not by this user (uid {user}), \
         so its {} cannot be trusted",
        purpose.what, path.display(), purpose.holds
    )]
    NotOwned {
        /// What it is for.
        purpose: Purpose,
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The user Mayfly runs as.
        user: u32,
    },
    /// Group or others may write to the directory, and so put files in it.
    #[error(
        "{} {} is writable by group or others (mode {mode:04o}), \
         so its {} cannot be trusted; fix with `chmod 700 {}`",
        purpose.what, path.display(), purpose.holds, path.display()
    )]
    Writable {
        /// What it is for.
        purpose: Purpose,
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The user this process acts as: the only owner Mayfly trusts.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes `dir` Mayfly's own for `purpose`, or says why it cannot be (see
/// the [module](self)): made 0700 if missing, refused if another user or
/// group or others could have put files in it, tightened to 0700 if they
/// could only read it.
pub fn prepare(dir: &Path, purpose: Purpose) -> Result<(), PrivateDirError> {
    let io = |reason| PrivateDirError::Io {
        purpose,
        path: dir.to_path_buf(),
        reason,
    };
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
            fs::symlink_metadata(dir).map_err(io)?
        }
        Err(err) => return Err(io(err)),
    };
    let kind = meta.file_type();
    if !kind.is_dir() {
        let found = if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_file() {
            "a file"
        } else {
            "a special file"
        };
        return Err(PrivateDirError::NotADirectory {
            purpose,
            path: dir.to_path_buf(),
            found,
        });
    }
    let (owner, user) = (meta.uid(), effective_uid());
    if owner != user {
        return Err(PrivateDirError::NotOwned {
            purpose,
            path: dir.to_path_buf(),
            owner,
            user,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PrivateDirError::Writable {
            purpose,
            path: dir.to_path_buf(),
            mode,
        });
    }
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_missing_directory_is_made_private_with_its_parents() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        prepare(&dir, DATA).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
    }

    #[test]
    fn a_directory_others_may_read_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        prepare(dir.path(), DATA).unwrap();
        assert_eq!(mode(dir.path()), 0o700);
    }

    #[test]
    fn a_directory_others_may_write_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o775)).unwrap();
        let err = prepare(dir.path(), DATA).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "data directory {0} is writable by group or others (mode 0775), so its data \
                 cannot be trusted; fix with `chmod 700 {0}`",
                dir.path().display()
            )
        );
        assert_eq!(mode(dir.path()), 0o775);
    }

    #[test]
    fn a_symbolic_link_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path(), &link).unwrap();
        let err = prepare(&link, COMPILE_CACHE).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "compile cache {} is a symbolic link, not a directory",
                link.display()
            )
        );
    }
}
