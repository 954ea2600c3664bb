//! The on-disk compile cache: a component is compiled once per engine, not
//! once per start.
//!
//! An entry is keyed by the SHA-256 of the component's bytes and by the
//! engine's [fingerprint](crate::engine::fingerprint) (wasmtime version,
//! compiler settings, CPU features), so a changed component or an upgraded
//! Mayfly simply misses. Each entry carries a checksum of its payload; an
//! entry that is truncated, corrupt, or that wasmtime refuses, is ignored,
//! recompiled and overwritten, never loaded as is.
//!
//! Entries are native code: the cache directory must be writable only by the
//! user running Mayfly, like any directory of executables.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"MAYFLY\x00\x01";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// Where compiled components are kept, if anywhere.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
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

impl CompileCache {
    /// A cache that stores nothing.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// A cache in `dir` (created on first write).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
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

    /// The cache directory, if the cache is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled form of `wasm`, from the cache when a valid entry exists,
    /// otherwise compiled now (and stored, when the cache is on).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            let component = Component::new(engine, wasm)?;
            return Ok((component, CacheOutcome::NotCached("cache disabled".into())));
        };
        let entry = dir.join(entry_name(engine, wasm));
        let stale = match fs::read(&entry) {
            Ok(bytes) => match load_entry(engine, &bytes) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(reason) => Some(reason),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => Some(format!("unreadable: {err}")),
        };

        let component = Component::new(engine, wasm)?;
        let outcome = match store_entry(dir, &entry, &component) {
            Ok(()) => match stale {
                Some(reason) => CacheOutcome::Replaced(reason),
                None => CacheOutcome::Stored,
            },
            Err(err) => CacheOutcome::NotCached(format!(
                "could not write cache entry {}: {err:#}",
                entry.display()
            )),
        };
        Ok((component, outcome))
    }
}

fn entry_name(engine: &Engine, wasm: &[u8]) -> String {
    format!(
        "{}-{:016x}.mayfly-cwasm",
        sha256_hex(wasm),
        crate::engine::fingerprint(engine)
    )
}

/// The SHA-256 of `bytes`, in lowercase hex: how Mayfly names a component's
/// bytes everywhere (cache entries, deployed versions).
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Checks an entry's framing and checksum, then hands the payload to wasmtime.
fn load_entry(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a Mayfly cache entry".into());
    }
    let (checksum, payload) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != checksum {
        return Err("checksum mismatch (corrupt entry)".into());
    }
    // SAFETY: `Component::deserialize` trusts its input to be code that this
    // wasmtime produced. The payload is byte-for-byte what `store_entry` wrote
    // from `Component::serialize` (the checksum above proves it was not
    // altered or truncated), and wasmtime itself rejects payloads from another
    // version or configuration.
    unsafe { Component::deserialize(engine, payload) }
        .map_err(|err| format!("rejected by wasmtime: {err}"))
}

/// Writes an entry atomically: a reader sees the old entry, or the whole new one.
fn store_entry(dir: &Path, entry: &Path, component: &Component) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

    let payload = component.serialize()?;
    // Native code: readable and writable by this user alone.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.{}.tmp",
        entry
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("entry"),
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    // A new file, never one planted there (nor a link to one).
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(MAGIC)?;
    file.write_all(&Sha256::digest(&payload))?;
    file.write_all(&payload)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, entry)?;
    Ok(())
}
