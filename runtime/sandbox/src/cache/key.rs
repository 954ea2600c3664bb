//! The cache's secret key, and the tags it puts on entries.
//!
//! The key is 32 random bytes in the file `key` of the cache directory,
//! made on first use, mode 0600. A key file that is not this user's own
//! secret (a link, another owner, readable by group or others, the wrong
//! size) is refused rather than replaced: someone else may know it, and
//! `chmod` would not make it secret again. Deleting it is the fix; a new
//! key is made, and every entry is compiled again.

use std::fmt;
use std::fs;
use std::io::{self, Read as _};
use std::path::Path;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::CacheError;
use super::files::{self, Opened};

/// The key file's name in the cache directory.
pub(super) const KEY_FILE: &str = "key";
const KEY_LEN: usize = 32;
/// Length of an entry's tag.
pub(super) const TAG_LEN: usize = 32;
/// What a tag is for, so that it can mean nothing else.
const CONTEXT: &[u8] = b"mayfly compile cache entry\0";

/// A cache's secret key. Its `Debug` form does not show it.
#[derive(Clone)]
pub(super) struct Key([u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// The key of the cache in `dir`: read from its key file, or made and
    /// stored there if there is none. If several processes make one at
    /// once, all of them use the one stored first.
    pub(super) fn load_or_make(dir: &Path) -> Result<Self, CacheError> {
        let path = dir.join(KEY_FILE);
        let io = |reason| CacheError::Io {
            path: path.clone(),
            reason,
        };
        if let Some(key) = Self::read(&path)? {
            return Ok(key);
        }
        let mut key = [0u8; KEY_LEN];
        files::fill_random(&mut key).map_err(io)?;
        let temp = files::write_new(dir, &[&key]).map_err(io)?;
        // A hard link, unlike a rename, never replaces a file: whoever
        // stores a key first wins, and the others read theirs.
        let linked = fs::hard_link(&temp, &path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(Self(key)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                Self::read(&path)?.ok_or_else(|| io(io::ErrorKind::NotFound.into()))
            }
            Err(err) => Err(io(err)),
        }
    }

    /// A new key for the cache in `dir`, whatever key file was there (one
    /// this process cannot vouch for, as a container image's): the old one
    /// is deleted, so nothing tagged under it is ever loaded.
    pub(super) fn replace(dir: &Path) -> Result<Self, CacheError> {
        let path = dir.join(KEY_FILE);
        // (A link is removed, not followed.)
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(reason) => return Err(CacheError::Io { path, reason }),
        }
        Self::load_or_make(dir)
    }

    /// The key in `path`, if there is a file there; refused if it is not
    /// this user's secret.
    fn read(path: &Path) -> Result<Option<Self>, CacheError> {
        let io = |reason| CacheError::Io {
            path: path.to_path_buf(),
            reason,
        };
        let refuse = |problem| CacheError::Key {
            path: path.to_path_buf(),
            problem,
        };
        let (mut file, meta) = match files::open_own(path).map_err(io)? {
            Opened::Missing => return Ok(None),
            Opened::Distrusted(problem) => return Err(refuse(problem)),
            Opened::Own(file, meta) => (file, meta),
        };
        if meta.len() != u64::try_from(KEY_LEN).unwrap_or(u64::MAX) {
            return Err(refuse(format!(
                "is {} bytes long, not {KEY_LEN}",
                meta.len()
            )));
        }
        let mut key = [0u8; KEY_LEN];
        file.read_exact(&mut key).map_err(io)?;
        Ok(Some(Self(key)))
    }

    /// The tag of an entry: an HMAC-SHA256, under this key, of the entry's
    /// name (the component's hash and the engine's fingerprint), the
    /// fingerprint again, and the payload. An entry is valid only in this
    /// cache, under its own name, for its own engine.
    pub(super) fn tag(&self, name: &str, fingerprint: u64, payload: &[u8]) -> [u8; TAG_LEN] {
        self.mac(name, fingerprint, payload)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `tag` is the tag of the entry, compared in constant time.
    pub(super) fn verify(&self, name: &str, fingerprint: u64, payload: &[u8], tag: &[u8]) -> bool {
        self.mac(name, fingerprint, payload)
            .verify_slice(tag)
            .is_ok()
    }

    fn mac(&self, name: &str, fingerprint: u64, payload: &[u8]) -> Hmac<Sha256> {
        let name_len = u64::try_from(name.len()).unwrap_or(u64::MAX);
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any size");
        for part in [
            CONTEXT,
            &name_len.to_le_bytes(),
            name.as_bytes(),
            &fingerprint.to_le_bytes(),
            payload,
        ] {
            mac.update(part);
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn a_tag_is_bound_to_the_key_the_name_the_engine_and_the_payload() {
        let key = Key([7; KEY_LEN]);
        let tag = key.tag("a", 1, b"code");
        assert!(key.verify("a", 1, b"code", &tag));
        assert!(!key.verify("b", 1, b"code", &tag));
        assert!(!key.verify("a", 2, b"code", &tag));
        assert!(!key.verify("a", 1, b"codf", &tag));
        assert!(!key.verify("a", 1, b"code", &tag[..31]));
        assert!(!Key([8; KEY_LEN]).verify("a", 1, b"code", &tag));
        // The name's length is part of the message: moving a byte between
        // name and payload changes the tag.
        assert_ne!(key.tag("ab", 1, b"c"), key.tag("a", 1, b"bc"));
        assert_eq!(format!("{key:?}"), "Key(..)");
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_key_is_made_once_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::load_or_make(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), key.0);
        assert_eq!(Key::load_or_make(dir.path()).unwrap().0, key.0);
        // Only the key is left: no temporary file.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE]);
    }

    #[test]
    fn processes_making_a_key_at_once_all_use_the_one_stored_first() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path: PathBuf = dir.path().to_path_buf();
            let keys: Vec<[u8; KEY_LEN]> = std::thread::scope(|scope| {
                let makers: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| Key::load_or_make(&path).unwrap().0))
                    .collect();
                makers.into_iter().map(|m| m.join().unwrap()).collect()
            });
            let stored = fs::read(dir.path().join(KEY_FILE)).unwrap();
            for key in keys {
                assert_eq!(key[..], stored[..]);
            }
        }
    }

    /// Why `load_or_make` refused the key file `dir/key`.
    fn refusal(dir: &Path) -> String {
        match Key::load_or_make(dir) {
            Err(err @ CacheError::Key { .. }) => err.to_string(),
            other => panic!("expected the key to be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_key_file_that_others_may_read_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::load_or_make(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let message = refusal(dir.path());
        assert_eq!(
            message,
            format!(
                "compile cache key {} is readable or writable by group or others (mode 0644); \
                 delete it and a new one is made (every entry is then compiled again)",
                path.display()
            )
        );
        assert!(!message.contains(&hex(&key.0)), "{message}");
        // Left as it was, for its owner to look at.
        assert_eq!(fs::read(&path).unwrap(), key.0);
        assert_eq!(mode(&path), 0o644);

        // Deleting it is the fix.
        fs::remove_file(&path).unwrap();
        let new = Key::load_or_make(dir.path()).unwrap();
        assert_ne!(new.0, key.0);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_key_file_that_is_a_link_a_directory_or_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, [1; KEY_LEN]).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();

        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(refusal(dir.path()).contains("/key is a symbolic link;"));
        fs::remove_file(&path).unwrap();

        fs::create_dir(&path).unwrap();
        assert!(refusal(dir.path()).contains("/key is not a regular file;"));
        fs::remove_dir(&path).unwrap();

        fs::write(&path, [1; 16]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(refusal(dir.path()).contains("/key is 16 bytes long, not 32;"));
    }

    #[test]
    fn a_key_file_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Key::load_or_make(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        if let Err(err) = std::os::unix::fs::chown(&path, Some(65534), None) {
            // Only root can give a file away.
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            eprintln!("skipped: cannot chown as uid {}", files::effective_uid());
            return;
        }
        let message = refusal(dir.path());
        assert!(
            message.contains(&format!(
                "/key is owned by uid 65534, not by this user (uid {})",
                files::effective_uid()
            )),
            "{message}"
        );
    }
}
