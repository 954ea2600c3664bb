//! What a guest may reach: the one place where grants are checked.
//!
//! Every way of granting something (a manifest, a plugin builder, `mayfly
//! run`'s flags) goes through the constructors here, so one rule decides
//! what an environment variable name, a directory grant and a guest path
//! may be. Callers only add where the grant was written (a manifest field,
//! a flag) to the error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mayfly_host_api::outbound::HostPattern;

/// The capabilities granted to a guest; everything else is denied. Its
/// `Debug` shows variable names and config keys, never their values.
#[derive(Clone, Default, PartialEq)]
pub struct Grants {
    /// Environment variables, exactly these (see [`env_var`]).
    pub env: Vec<(String, String)>,
    /// Preopened directories.
    pub files: Vec<FileGrant>,
    /// Where outbound HTTP requests may go.
    pub outbound: Arc<[HostPattern]>,
    /// Outbound requests may reach loopback, private and link-local
    /// addresses whatever pattern allowed them (otherwise only a pattern
    /// naming the address does: an IP literal, `localhost`).
    pub private_networks: bool,
    /// Labels of the key-value stores it may open.
    pub stores: Vec<String>,
    /// Its configuration values, resolved at load time.
    pub config: Vec<(String, String)>,
}

impl Grants {
    /// Adds a directory grant, unless its guest path is granted already
    /// (the one rule every way of granting directories follows).
    pub fn add_dir(&mut self, grant: FileGrant) -> Result<(), String> {
        if self.files.iter().any(|f| f.guest == grant.guest) {
            return Err(format!("`{}` is granted twice", grant.guest.escape_debug()));
        }
        self.files.push(grant);
        Ok(())
    }
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("Grants")
            .field("env", &names(&self.env))
            .field("files", &self.files)
            .field("outbound", &self.outbound)
            .field("private_networks", &self.private_networks)
            .field("stores", &self.stores)
            .field("config", &names(&self.config))
            .finish()
    }
}

/// Checks one environment variable grant: a name that is non-empty and has
/// no `=` or NUL, and a value without NUL (neither can be passed to a
/// guest's environment otherwise).
pub fn env_var(name: &str, value: &str) -> Result<(String, String), String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(format!(
            "`{}` is not a valid variable name: it must be non-empty, without `=` or NUL",
            name.escape_debug()
        ));
    }
    if value.contains('\0') {
        return Err(format!("the value of `{name}` contains NUL"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Checks a guest path for a directory grant: absolute, without `..`.
pub fn guest_path(guest: &str) -> Result<(), String> {
    if !guest.starts_with('/') || guest.split('/').any(|part| part == "..") {
        return Err(format!(
            "the guest path `{}` must be absolute, without `..`",
            guest.escape_debug()
        ));
    }
    Ok(())
}

/// What a guest may do in a granted directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum FilesMode {
    /// Read files and list directories.
    #[default]
    ReadOnly,
    /// Also create, write, rename and delete.
    ReadWrite,
}

impl FilesMode {
    /// `read-only` or `read-write`, as manifests write it.
    pub fn name(self) -> &'static str {
        match self {
            FilesMode::ReadOnly => "read-only",
            FilesMode::ReadWrite => "read-write",
        }
    }
}

/// A host directory a guest may open.
///
/// The directory is opened when the grant is made, and every instance gets
/// that same directory: if its path is later renamed, or replaced with a
/// symlink to somewhere else, instances still see what was granted.
#[derive(Debug, Clone)]
pub struct FileGrant {
    /// The directory on the host, as it was named.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Read-only or read-write.
    pub mode: FilesMode,
    /// Which directory that is (device and inode): two grants of the same
    /// path are the same only if it still names the same directory.
    identity: (u64, u64),
    /// The directory, held open for as long as the grant lives.
    _handle: Arc<std::fs::File>,
    /// What each instance opens: the held handle's `/proc/self/fd` entry
    /// (the same directory, whatever its path names now), or, where there
    /// is no such entry, the path.
    open_path: PathBuf,
}

/// Why a directory cannot be granted. The text says which rule it broke,
/// naming the path; the caller says where the grant was written.
#[derive(Debug, thiserror::Error)]
pub enum FileGrantError {
    /// The host side is missing, unreadable or not a directory.
    #[error("{}: {reason}", path.display())]
    Host {
        /// The host path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The guest side is not an absolute path without `..`.
    #[error("{0}")]
    Guest(String),
}

impl FileGrant {
    /// Grants the directory `host` at `guest` (checked with [`guest_path`]),
    /// opening it now.
    pub fn new(host: PathBuf, guest: String, mode: FilesMode) -> Result<Self, FileGrantError> {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::fs::MetadataExt as _;
        guest_path(&guest).map_err(FileGrantError::Guest)?;
        let host_error = |reason: String| FileGrantError::Host {
            path: host.clone(),
            reason,
        };
        let handle = std::fs::File::open(&host).map_err(|err| host_error(err.to_string()))?;
        let held = handle
            .metadata()
            .map_err(|err| host_error(err.to_string()))?;
        if !held.is_dir() {
            return Err(host_error("not a directory".into()));
        }
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
        let same = std::fs::metadata(&by_fd)
            .is_ok_and(|meta| meta.dev() == held.dev() && meta.ino() == held.ino());
        let open_path = if same { by_fd } else { host.clone() };
        Ok(Self {
            host,
            guest,
            mode,
            identity: (held.dev(), held.ino()),
            _handle: Arc::new(handle),
            open_path,
        })
    }

    /// The path an instance's preopen is opened from (see [`FileGrant`]).
    pub fn open_path(&self) -> &Path {
        &self.open_path
    }
}

impl PartialEq for FileGrant {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host
            && self.guest == other.guest
            && self.mode == other.mode
            && self.identity == other.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_variable_names_and_guest_paths() {
        assert_eq!(
            env_var("LANG", "en"),
            Ok(("LANG".to_string(), "en".to_string()))
        );
        assert_eq!(
            env_var("", "x").unwrap_err(),
            "`` is not a valid variable name: it must be non-empty, without `=` or NUL"
        );
        assert!(
            env_var("A=B", "x")
                .unwrap_err()
                .contains("without `=` or NUL")
        );
        assert_eq!(
            env_var("A", "x\0y").unwrap_err(),
            "the value of `A` contains NUL"
        );
        assert_eq!(guest_path("/data"), Ok(()));
        assert_eq!(
            guest_path("data").unwrap_err(),
            "the guest path `data` must be absolute, without `..`"
        );
        assert!(guest_path("/data/../etc").is_err_and(|e| e.contains("without `..`")));
    }

    #[test]
    fn a_guest_path_is_granted_once_and_values_are_never_shown() {
        let dir = std::env::temp_dir();
        let mut grants = Grants::default();
        let grant = || FileGrant::new(dir.clone(), "/data".into(), FilesMode::ReadOnly).unwrap();
        grants.add_dir(grant()).unwrap();
        assert_eq!(
            grants.add_dir(grant()).unwrap_err(),
            "`/data` is granted twice"
        );
        grants.env.push(("TOKEN".into(), "do-not-print-me".into()));
        grants
            .config
            .push(("password".into(), "do-not-print-me".into()));
        let shown = format!("{grants:?}");
        assert!(
            shown.contains("TOKEN") && shown.contains("password"),
            "{shown}"
        );
        assert!(!shown.contains("do-not-print-me"), "{shown}");
    }

    #[test]
    fn a_grant_is_a_directory_that_exists() {
        let dir = std::env::temp_dir();
        let grant = FileGrant::new(dir.clone(), "/tmp".into(), FilesMode::ReadOnly).unwrap();
        assert_eq!(grant.mode.name(), "read-only");
        let missing = dir.join("mayfly-no-such-directory-here");
        let err = FileGrant::new(missing.clone(), "/x".into(), FilesMode::ReadOnly).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: No such file or directory", missing.display())),
            "{err}"
        );
        let err = FileGrant::new(dir, "x".into(), FilesMode::ReadWrite).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the guest path `x` must be absolute, without `..`"
        );
    }
}
