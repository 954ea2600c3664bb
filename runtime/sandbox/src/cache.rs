//! The on-disk compile cache: a component is compiled once per engine, not
//! once per start.
//!
//! An entry is keyed by the SHA-256 of the component's bytes and by the
//! engine's [fingerprint](crate::engine::fingerprint) (wasmtime version,
//! compiler settings, CPU features), so a changed component or an upgraded
//! Mayfly simply misses.
//!
//! Entries are native code that Mayfly runs as it finds it, so the cache
//! trusts only what it wrote itself:
//!
//! - [`CompileCache::open`] creates the directory 0700 (and any parents it
//!   makes), and refuses one that is a symbolic link, belongs to another
//!   user, or is writable by group or others.
//! - Each entry carries an HMAC-SHA256 tag under a secret key of this cache
//!   (the file `key`, 32 random bytes, 0600), over the entry's name, engine
//!   and payload. The tag is checked, in constant time, before wasmtime
//!   sees a byte. An entry with a wrong tag (planted, copied from another
//!   cache or another component's name, corrupt, truncated), or that is
//!   not a regular file of this user's readable by it alone, is logged,
//!   compiled again and replaced; it is never loaded.
//! - Every file is written to a new file with a random name (created with
//!   O_EXCL|O_NOFOLLOW, mode 0600), synced, and then renamed into place.

mod files;
mod key;

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::Component;

use self::files::Opened;
use self::key::{Key, TAG_LEN};
use crate::private_dir::{COMPILE_CACHE, PrivateDirError};

/// The first bytes of an entry; the last one is the format's version.
const MAGIC: &[u8; 8] = b"MAYFLY\x00\x02";
const HEADER_LEN: usize = MAGIC.len() + TAG_LEN;

/// Where compiled components are kept, if anywhere.
#[derive(Debug, Clone)]
pub struct CompileCache {
    open: Option<OpenCache>,
}

/// A cache directory that passed the checks, and its key.
#[derive(Debug, Clone)]
struct OpenCache {
    dir: PathBuf,
    key: Key,
}

/// What the cache did for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A valid entry was loaded; nothing was compiled.
    Hit,
    /// No entry existed; the component was compiled and stored.
    Stored,
    /// An entry existed but was unusable (the reason is given); the component
    /// was compiled again and the entry replaced.
    Replaced(String),
    /// The cache is off, or could not be written (the reason is given); the
    /// component was compiled in memory only.
    NotCached(String),
}

/// Why a compile cache cannot be used. Each names the path and what is
/// wrong with it.
#[derive(Debug, Error)]
pub enum CacheError {
    /// The directory or its key could not be created or read.
    #[error("cannot use compile cache {path}: {reason}")]
    Io {
        /// The directory or key file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The directory is not this user's alone (see
    /// [`private_dir`](crate::private_dir)).
    #[error(transparent)]
    Dir(#[from] PrivateDirError),
    /// The key file is not this user's secret. It is refused, not
    /// replaced: someone else may know it.
    #[error(
        "compile cache key {path} {problem}; delete it and a new one is made \
         (every entry is then compiled again)"
    )]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong, as `is readable or writable by group or others
        /// (mode 0644)`.
        problem: String,
    },
}

impl CompileCache {
    /// A cache that stores nothing.
    pub fn disabled() -> Self {
        Self { open: None }
    }

    /// The cache in `dir`, created 0700 (with any missing parents, also
    /// 0700) if it does not exist, and its key, made if there is none.
    ///
    /// Refused if `dir` is a symbolic link or not a directory, is owned by
    /// another user, or is writable by group or others; or if its key file
    /// is not a regular file of this user's, mode 0600 or stricter.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        // Native code: this user's alone, like every directory made for it.
        crate::private_dir::prepare(&dir, COMPILE_CACHE)?;
        let key = Key::load_or_make(&dir)?;
        Ok(Self {
            open: Some(OpenCache { dir, key }),
        })
    }

    /// [`CompileCache::open`], with a new key made by this process whatever
    /// key was in `dir`: for a directory whose files may not be the host's
    /// own (one that came in a container image), so that entries planted
    /// there, tagged under a key their author knew, are never loaded
    /// (each is compiled again and replaced).
    pub fn open_with_new_key(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        crate::private_dir::prepare(&dir, COMPILE_CACHE)?;
        let key = Key::replace(&dir)?;
        Ok(Self {
            open: Some(OpenCache { dir, key }),
        })
    }

    /// The default location: `$MAYFLY_CACHE_DIR`, else `$XDG_CACHE_HOME/mayfly`,
    /// else `$HOME/.cache/mayfly`.
    pub fn default_dir() -> Option<PathBuf> {
        let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        if let Some(dir) = non_empty("MAYFLY_CACHE_DIR") {
            return Some(dir.into());
        }
        if let Some(dir) = non_empty("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("mayfly"));
        }
        non_empty("HOME").map(|home| PathBuf::from(home).join(".cache").join("mayfly"))
    }

    /// The cache at [`CompileCache::default_dir`], when nobody chose one:
    /// off if there is no default location, or if it cannot be created or
    /// read (a read-only home, say: warned about, as compiling every time
    /// is slow but safe). A directory that cannot be trusted is still an
    /// error.
    pub fn open_default() -> Result<Self, CacheError> {
        let Some(dir) = Self::default_dir() else {
            return Ok(Self::disabled());
        };
        match Self::open(dir) {
            Err(err @ (CacheError::Io { .. } | CacheError::Dir(PrivateDirError::Io { .. }))) => {
                tracing::warn!("{err}; running without a compile cache");
                Ok(Self::disabled())
            }
            opened => opened,
        }
    }

    /// The cache directory, if the cache is on.
    pub fn dir(&self) -> Option<&Path> {
        self.open.as_ref().map(|open| open.dir.as_path())
    }

    /// The compiled form of `wasm`, from the cache when a valid entry exists,
    /// otherwise compiled now (and stored, when the cache is on).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(open) = &self.open else {
            let component = Component::new(engine, wasm)?;
            return Ok((component, CacheOutcome::NotCached("cache disabled".into())));
        };
        let entry = Entry::new(open, engine, wasm);
        let rejected = match entry.load(engine) {
            Ok(Some(component)) => return Ok((component, CacheOutcome::Hit)),
            Ok(None) => None,
            // Expected once after an upgrade: not worth a warning.
            Err(Unusable::OtherVersion) => Some("written by another version of Mayfly".into()),
            Err(Unusable::Rejected(reason)) => {
                tracing::warn!(
                    "compile cache entry {} rejected, compiling the component again: {reason}",
                    entry.path.display()
                );
                Some(reason)
            }
        };

        let component = Component::new(engine, wasm)?;
        let outcome = match entry.store(&component) {
            Ok(()) => match rejected {
                Some(reason) => CacheOutcome::Replaced(reason),
                None => CacheOutcome::Stored,
            },
            Err(err) => CacheOutcome::NotCached(format!(
                "could not write cache entry {}: {err:#}",
                entry.path.display()
            )),
        };
        Ok((component, outcome))
    }
}

/// The SHA-256 of `bytes`, in lowercase hex: how Mayfly names a component's
/// bytes everywhere (cache entries, deployed versions).
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Why an entry is not used.
enum Unusable {
    /// It is in the format of another version of Mayfly.
    OtherVersion,
    /// It cannot be trusted or loaded, for the reason given.
    Rejected(String),
}

/// One component's entry in an open cache.
struct Entry<'a> {
    cache: &'a OpenCache,
    name: String,
    fingerprint: u64,
    path: PathBuf,
}

impl<'a> Entry<'a> {
    fn new(cache: &'a OpenCache, engine: &Engine, wasm: &[u8]) -> Self {
        let fingerprint = crate::engine::fingerprint(engine);
        let name = format!("{}-{fingerprint:016x}.mayfly-cwasm", sha256_hex(wasm));
        let path = cache.dir.join(&name);
        Self {
            cache,
            name,
            fingerprint,
            path,
        }
    }

    /// The stored component, if there is an entry; why it is unusable, if
    /// it is. Nothing reaches wasmtime unless the file is this user's own
    /// and its tag is right.
    fn load(&self, engine: &Engine) -> Result<Option<Component>, Unusable> {
        let reject = Unusable::Rejected;
        let unreadable = |err| reject(format!("unreadable: {err}"));
        let mut file = match files::open_own(&self.path).map_err(unreadable)? {
            Opened::Missing => return Ok(None),
            Opened::Distrusted(problem) => return Err(reject(format!("the file {problem}"))),
            Opened::Own(file, _) => file,
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(unreadable)?;
        let version = MAGIC.len() - 1;
        if bytes.len() < HEADER_LEN || bytes[..version] != MAGIC[..version] {
            return Err(reject("not a Mayfly cache entry".into()));
        }
        if bytes[version] != MAGIC[version] {
            return Err(Unusable::OtherVersion);
        }
        let (tag, payload) = bytes[MAGIC.len()..].split_at(TAG_LEN);
        if !self
            .cache
            .key
            .verify(&self.name, self.fingerprint, payload, tag)
        {
            return Err(reject(
                "its tag is wrong: it was altered, or not written by this cache for this \
                 component"
                    .into(),
            ));
        }
        // SAFETY: `Component::deserialize` trusts its input to be code that
        // this wasmtime produced. The payload carries a tag that only the
        // holder of this cache's key can make, over this entry's name
        // (component and engine) and these exact bytes: it is what
        // `store` wrote from `Component::serialize`, unaltered and whole.
        // wasmtime itself also rejects payloads from another version or
        // configuration.
        unsafe { Component::deserialize(engine, payload) }
            .map(Some)
            .map_err(|err| reject(format!("rejected by wasmtime: {err}")))
    }

    /// Writes the entry atomically: a reader sees the old entry, or the
    /// whole new one.
    fn store(&self, component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize()?;
        let tag = self.cache.key.tag(&self.name, self.fingerprint, &payload);
        let temp = files::write_new(&self.cache.dir, &[MAGIC, &tag, &payload])?;
        if let Err(err) = fs::rename(&temp, &self.path) {
            let _ = fs::remove_file(&temp);
            return Err(err.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::engine::test_engine;

    /// Two small components, told apart by their imports.
    fn components() -> (Vec<u8>, Vec<u8>) {
        let none = wat::parse_str("(component)").unwrap();
        let one = wat::parse_str(r#"(component (import "f" (func)))"#).unwrap();
        (none, one)
    }

    fn imports(engine: &Engine, component: &Component) -> usize {
        component.component_type().imports(engine).count()
    }

    fn entry_path(cache: &CompileCache, engine: &Engine, wasm: &[u8]) -> PathBuf {
        Entry::new(cache.open.as_ref().unwrap(), engine, wasm).path
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn an_entry_is_stored_then_hit() {
        let engine = test_engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().join("a/b/cache")).unwrap();
        // Every directory made for the cache is this user's alone.
        for made in ["a", "a/b", "a/b/cache"] {
            assert_eq!(mode(&dir.path().join(made)), 0o700, "{made}");
        }
        let (_, wasm) = components();
        let (component, outcome) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Stored);
        assert_eq!(imports(&engine, &component), 1);
        let entry = entry_path(&cache, &engine, &wasm);
        assert_eq!(mode(&entry), 0o600);

        let (component, outcome) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert_eq!(imports(&engine, &component), 1);
        // The key, the entry, and no temporary file.
        assert_eq!(fs::read_dir(cache.dir().unwrap()).unwrap().count(), 2);
    }

    #[test]
    fn a_cache_opened_with_a_new_key_loads_nothing_tagged_under_the_old_one() {
        let engine = test_engine();
        let dir = tempfile::tempdir().unwrap();
        let (_, wasm) = components();
        // As an image's author would ship it: a key, and an entry tagged
        // under it.
        let shipped = CompileCache::open(dir.path()).unwrap();
        shipped.load_or_compile(&engine, &wasm).unwrap();
        let shipped_key = fs::read(dir.path().join("key")).unwrap();
        let cache = CompileCache::open_with_new_key(dir.path()).unwrap();
        assert_ne!(fs::read(dir.path().join("key")).unwrap(), shipped_key);
        match cache.load_or_compile(&engine, &wasm).unwrap().1 {
            CacheOutcome::Replaced(why) if why.contains("its tag is wrong") => {}
            other => panic!("the shipped entry was not refused: {other:?}"),
        }
        // A key that is a link is removed, not followed.
        let target = dir.path().join("target");
        fs::write(&target, [0u8; 32]).unwrap();
        fs::remove_file(dir.path().join("key")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("key")).unwrap();
        CompileCache::open_with_new_key(dir.path()).unwrap();
        assert_eq!(fs::read(&target).unwrap(), [0u8; 32]);
        assert!(
            fs::symlink_metadata(dir.path().join("key"))
                .unwrap()
                .is_file()
        );
    }

    /// Loads `wasm` through `cache` and asserts the entry was rejected for
    /// `reason`, rewritten as `good`, and that `wasm` itself was compiled.
    fn assert_replaced(cache: &CompileCache, wasm: &[u8], good: &[u8], reason: &str) {
        let engine = test_engine();
        let (component, outcome) = cache.load_or_compile(&engine, wasm).unwrap();
        match &outcome {
            CacheOutcome::Replaced(why) if why.contains(reason) => {}
            other => panic!("expected the entry to be replaced ({reason}), got {other:?}"),
        }
        assert_eq!(imports(&engine, &component), 1, "the wrong component ran");
        let entry = entry_path(cache, &engine, wasm);
        let meta = fs::symlink_metadata(&entry).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(mode(&entry), 0o600);
        assert_eq!(fs::read(&entry).unwrap(), good);
        assert_eq!(
            cache.load_or_compile(&engine, wasm).unwrap().1,
            CacheOutcome::Hit
        );
    }

    #[test]
    fn an_altered_or_planted_entry_is_compiled_again_never_loaded() {
        let engine = test_engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (other, wasm) = components();
        cache.load_or_compile(&engine, &other).unwrap();
        cache.load_or_compile(&engine, &wasm).unwrap();
        let entry = entry_path(&cache, &engine, &wasm);
        let good = fs::read(&entry).unwrap();
        let others = fs::read(entry_path(&cache, &engine, &other)).unwrap();
        let rewrite = |bytes: &[u8]| {
            fs::remove_file(&entry).unwrap();
            fs::write(&entry, bytes).unwrap();
            fs::set_permissions(&entry, fs::Permissions::from_mode(0o600)).unwrap();
        };

        // Another component's entry, validly tagged for its own name.
        rewrite(&others);
        assert_replaced(&cache, &wasm, &good, "its tag is wrong");

        // One flipped bit in the code, and one in the tag.
        for at in [good.len() / 2, MAGIC.len()] {
            let mut flipped = good.clone();
            flipped[at] ^= 0x01;
            rewrite(&flipped);
            assert_replaced(&cache, &wasm, &good, "its tag is wrong");
        }

        // Cut short, and cut to the header.
        for len in [20, HEADER_LEN] {
            rewrite(&good[..len]);
            let reason = if len < HEADER_LEN {
                "not a Mayfly cache entry"
            } else {
                "its tag is wrong"
            };
            assert_replaced(&cache, &wasm, &good, reason);
        }

        // The entry of another cache (another host), with its own key.
        let elsewhere = tempfile::tempdir().unwrap();
        let foreign = CompileCache::open(elsewhere.path()).unwrap();
        foreign.load_or_compile(&engine, &wasm).unwrap();
        rewrite(&fs::read(entry_path(&foreign, &engine, &wasm)).unwrap());
        assert_replaced(&cache, &wasm, &good, "its tag is wrong");

        // An entry of an older format.
        let mut older = good.clone();
        older[MAGIC.len() - 1] = 1;
        rewrite(&older);
        assert_replaced(&cache, &wasm, &good, "written by another version of Mayfly");
    }

    #[test]
    fn an_entry_with_a_valid_tag_that_wasmtime_refuses_is_replaced() {
        let engine = test_engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (_, wasm) = components();
        cache.load_or_compile(&engine, &wasm).unwrap();
        let open = cache.open.as_ref().unwrap();
        let entry = Entry::new(open, &engine, &wasm);
        let good = fs::read(&entry.path).unwrap();
        let payload = b"\x7fELF not really compiled code";
        let tag = open.key.tag(&entry.name, entry.fingerprint, payload);
        fs::write(&entry.path, [&MAGIC[..], &tag, payload].concat()).unwrap();
        assert_replaced(&cache, &wasm, &good, "rejected by wasmtime");
    }

    #[test]
    fn an_entry_that_is_not_this_users_own_file_is_not_read() {
        let engine = test_engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (_, wasm) = components();
        cache.load_or_compile(&engine, &wasm).unwrap();
        let entry = entry_path(&cache, &engine, &wasm);
        let good = fs::read(&entry).unwrap();

        // A valid entry, but readable by others: who knows who wrote it.
        fs::set_permissions(&entry, fs::Permissions::from_mode(0o644)).unwrap();
        assert_replaced(
            &cache,
            &wasm,
            &good,
            "the file is readable or writable by group or others (mode 0644)",
        );

        // A link to a valid entry: the link is replaced, its target left.
        let target = dir.path().join("target");
        fs::rename(&entry, &target).unwrap();
        std::os::unix::fs::symlink(&target, &entry).unwrap();
        assert_replaced(&cache, &wasm, &good, "the file is a symbolic link");
        assert_eq!(fs::read(&target).unwrap(), good);

        if std::os::unix::fs::chown(&entry, Some(65534), None).is_ok() {
            assert_replaced(
                &cache,
                &wasm,
                &good,
                &format!(
                    "the file is owned by uid 65534, not by this user (uid {})",
                    files::effective_uid()
                ),
            );
        }
    }

    #[test]
    fn an_entry_that_cannot_be_replaced_leaves_the_component_uncached() {
        let engine = test_engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (_, wasm) = components();
        let entry = entry_path(&cache, &engine, &wasm);
        fs::create_dir(&entry).unwrap();
        fs::write(entry.join("x"), "x").unwrap();
        let (component, outcome) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(imports(&engine, &component), 1);
        match outcome {
            CacheOutcome::NotCached(reason) => {
                assert!(reason.contains("could not write cache entry"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // The key and the directory in the entry's place; no temporary file.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    /// Why `open` refused `dir`.
    fn refusal(dir: &Path) -> String {
        match CompileCache::open(dir) {
            Ok(_) => panic!("{} was accepted", dir.display()),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_directory_others_may_write_to_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (bits, shown) in [(0o770, "0770"), (0o702, "0702"), (0o1777, "1777")] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(bits)).unwrap();
            assert_eq!(
                refusal(dir.path()),
                format!(
                    "compile cache {0} is writable by group or others (mode {shown}), so its \
                     code cannot be trusted; fix with `chmod 700 {0}`",
                    dir.path().display()
                )
            );
        }
        // Nothing was made in it.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        // Readable is fine: entries and key are 0600.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        CompileCache::open(dir.path()).unwrap();
    }

    #[test]
    fn a_link_or_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            refusal(&link),
            format!(
                "compile cache {} is a symbolic link, not a directory",
                link.display()
            )
        );
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(refusal(&file).ends_with(" is a file, not a directory"));
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
        let theirs = match std::os::unix::fs::chown(&theirs, Some(65534), None) {
            Ok(()) => theirs,
            // Only root can give a directory away; the root directory is
            // someone else's for everyone else.
            Err(_) => PathBuf::from("/"),
        };
        let owner = std::os::unix::fs::MetadataExt::uid(&fs::metadata(&theirs).unwrap());
        assert_eq!(
            refusal(&theirs),
            format!(
                "compile cache {} is owned by uid {owner}, not by this user (uid {}), so its \
                 code cannot be trusted",
                theirs.display(),
                files::effective_uid()
            )
        );
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let key = fs::read(dir.path().join(key::KEY_FILE)).unwrap();
        let shown = format!("{cache:?}");
        assert!(shown.contains("Key(..)"), "{shown}");
        let hex: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
        assert!(!shown.contains(&hex), "{shown}");
        assert!(!shown.contains(&format!("{key:?}")), "{shown}");
    }
}
