//! `mayfly compile` and the on-disk compile cache: hits are reused; entries
//! that are corrupt, truncated, planted or from another cache are rebuilt,
//! never loaded; a cache directory or key that others could have written
//! is refused.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::guests;
use crate::harness::{Server, get, run_mayfly, test_app};

fn compile(app: &Path, cache: &Path) -> String {
    compile_logged(app, cache).0
}

/// `mayfly compile`'s stdout and its log (stderr).
fn compile_logged(app: &Path, cache: &Path) -> (String, String) {
    let output = run_mayfly(&[
        OsStr::new("compile"),
        app.as_os_str(),
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "compile failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// A manifest serving `source` at `/`, as component `name`.
fn one_component_app(dir: &Path, name: &str, source: &str) -> PathBuf {
    let app = dir.join(format!("{name}.toml"));
    std::fs::write(
        &app,
        format!(
            "[component.{name}]\nsource = {source:?}\n\
             [[route]]\npath = \"/\"\ncomponent = \"{name}\"\n"
        ),
    )
    .unwrap();
    app
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mayfly-cwasm"))
        .collect();
    entries.sort();
    entries
}

/// The line `compile` printed for `component`.
fn line_for<'a>(stdout: &'a str, component: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(component))
        .unwrap_or_else(|| panic!("no line for {component} in:\n{stdout}"))
}

#[test]
fn compile_fills_the_cache_and_a_second_run_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let app = test_app(dir.path());

    let first = compile(&app, &cache);
    assert!(
        first.contains(&format!("Compile cache: {}", cache.display())),
        "{first}"
    );
    for name in ["hello", "echo", "probe", "trap", "slow"] {
        assert!(line_for(&first, name).ends_with(" compiled"), "{first}");
    }
    assert_eq!(entries(&cache).len(), 5);
    // Native code: the directory and every entry are this user's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache), 0o700);
    for entry in entries(&cache) {
        assert_eq!(mode(&entry), 0o600, "{}", entry.display());
    }

    let second = compile(&app, &cache);
    for name in ["hello", "echo", "probe", "trap", "slow"] {
        assert!(
            line_for(&second, name).ends_with("already compiled"),
            "{second}"
        );
    }
    assert_eq!(entries(&cache).len(), 5);
}

#[test]
fn corrupt_truncated_and_foreign_entries_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let app = one_component_app(dir.path(), "hello", guests::HELLO);
    compile(&app, &cache);
    let entry = entries(&cache).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();

    // One flipped bit in the compiled code.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&entry, &flipped).unwrap();
    let (out, log) = compile_logged(&app, &cache);
    assert!(
        line_for(&out, "hello").contains("replaced an entry: its tag is wrong"),
        "{out}"
    );
    assert!(
        log.contains(&format!(
            "compile cache entry {} rejected, compiling the component again: its tag is wrong",
            entry.display()
        )),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        good,
        "the entry was not rewritten"
    );

    // Cut short, as by a crash mid-write of a foreign tool.
    std::fs::write(&entry, &good[..20]).unwrap();
    let out = compile(&app, &cache);
    assert!(
        line_for(&out, "hello").contains("not a Mayfly cache entry"),
        "{out}"
    );

    // A well-framed entry made without the cache's key: a checksum where
    // the tag goes, over code of the planter's choosing.
    let payload = b"\x7fELF not really compiled code".to_vec();
    let mut forged = good[..8].to_vec();
    forged.extend_from_slice(&sha256(&payload));
    forged.extend_from_slice(&payload);
    std::fs::write(&entry, &forged).unwrap();
    let out = compile(&app, &cache);
    assert!(
        line_for(&out, "hello").contains("its tag is wrong"),
        "{out}"
    );

    let out = compile(&app, &cache);
    assert_eq!(
        line_for(&out, "hello").trim(),
        "hello                    already compiled"
    );
}

#[tokio::test]
async fn serve_uses_a_cache_that_compile_filled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let app = test_app(dir.path());
    compile(&app, &cache);
    let before: Vec<_> = entries(&cache)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    let server = Server::start_with(&[
        app.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
    let after: Vec<_> = entries(&cache)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    assert_eq!(
        before, after,
        "serve rewrote cache entries instead of using them"
    );
}

#[test]
fn compile_without_a_cache_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_mayfly(&[
        OsStr::new("compile"),
        test_app(dir.path()).as_os_str(),
        OsStr::new("--no-cache"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("there is no compile cache to fill"),
        "{stderr}"
    );
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

/// An entry planted under a component's name (here, the real compiled code
/// of another component) is refused by its tag: the server compiles the
/// right component, serves it, says so in its log, and replaces the entry.
#[tokio::test]
async fn a_planted_entry_is_compiled_again_and_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let hello = one_component_app(dir.path(), "hello", guests::HELLO);
    compile(&hello, &cache);
    let entry = entries(&cache).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();
    let echo = one_component_app(dir.path(), "echo", guests::ECHO);
    compile(&echo, &cache);
    let echo_entry = entries(&cache).into_iter().find(|e| *e != entry).unwrap();
    let planted = std::fs::read(&echo_entry).unwrap();
    std::fs::write(&entry, &planted).unwrap();

    let server = Server::start_with(&[
        hello.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let reply = get(server.addr, "/").await;
    assert_eq!(reply.text(), "Hello from Mayfly!\n");
    assert!(!reply.headers.contains_key("x-echo-path"));
    server.wait_for_output(&format!(
        "compile cache entry {} rejected, compiling the component again: its tag is wrong",
        entry.display()
    ));
    let now = std::fs::read(&entry).unwrap();
    assert_ne!(now, planted, "the planted entry was kept");
    assert_eq!(now, good, "the entry was not rewritten with hello's code");
}

/// What `mayfly ARGS` printed on stderr, asserting it failed with status 1
/// before serving anything.
fn refused(args: &[&OsStr]) -> String {
    let output = run_mayfly(args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("Serving app"), "{stdout}");
    stderr
}

fn serve_refused(app: &Path, cache: &Path) -> String {
    refused(&[
        OsStr::new("serve"),
        app.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
    ])
}

fn compile_refused(app: &Path, cache: &Path) -> String {
    refused(&[
        OsStr::new("compile"),
        app.as_os_str(),
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
    ])
}

#[test]
fn a_cache_directory_others_may_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let app = one_component_app(dir.path(), "hello", guests::HELLO);
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o775)).unwrap();
    let expected = format!(
        "error: compile cache {0} is writable by group or others (mode 0775), so its code \
         cannot be trusted; fix with `chmod 700 {0}` (or pass --cache-dir DIR to use another \
         cache, --no-cache for none)\n",
        cache.display()
    );
    assert_eq!(serve_refused(&app, &cache), expected);
    assert_eq!(compile_refused(&app, &cache), expected);
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "something was written to the refused cache"
    );
}

#[test]
fn a_cache_directory_of_another_user_is_refused() {
    use std::os::unix::fs::MetadataExt as _;

    let dir = tempfile::tempdir().unwrap();
    let app = one_component_app(dir.path(), "hello", guests::HELLO);
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    // Root (as in CI) can give the directory away; anyone else is refused
    // the root directory, which is someone else's.
    let (cache, user) = match std::os::unix::fs::chown(&cache, Some(65534), None) {
        Ok(()) => (cache, 0),
        Err(_) => (PathBuf::from("/"), dir.path().metadata().unwrap().uid()),
    };
    let owner = cache.metadata().unwrap().uid();
    assert_ne!(owner, user);
    let stderr = serve_refused(&app, &cache);
    assert!(
        stderr.starts_with(&format!(
            "error: compile cache {} is owned by uid {owner}, not by this user (uid {user}), \
             so its code cannot be trusted",
            cache.display()
        )),
        "{stderr}"
    );
}

/// A key file others may read may be known to them: it is refused, not
/// quietly replaced. Deleting it is the fix, and every entry is then
/// compiled again under the new key.
#[test]
fn a_cache_key_others_may_read_is_refused_until_deleted() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let app = test_app(dir.path());
    compile(&app, &cache);
    let key = cache.join("key");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    let secret = std::fs::read(&key).unwrap();
    assert_eq!(secret.len(), 32);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = compile_refused(&app, &cache);
    assert!(
        stderr.starts_with(&format!(
            "error: compile cache key {} is readable or writable by group or others \
             (mode 0644); delete it and a new one is made (every entry is then compiled again)",
            key.display()
        )),
        "{stderr}"
    );
    let shown: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
    assert!(!stderr.contains(&shown), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), secret, "the key was changed");

    std::fs::remove_file(&key).unwrap();
    let out = compile(&app, &cache);
    for name in ["hello", "echo", "probe", "trap", "slow"] {
        assert!(
            line_for(&out, name).contains("replaced an entry: its tag is wrong"),
            "{out}"
        );
    }
    assert_eq!(mode(&key), 0o600);
    assert_ne!(std::fs::read(&key).unwrap(), secret);
}

#[test]
fn a_default_cache_that_cannot_be_made_is_skipped_with_a_warning() {
    // Nobody chose this cache, and its directory cannot be created (`/proc`
    // takes no new directories, even from root): the command goes on
    // without a cache, and says so.
    let mut command = std::process::Command::new(crate::harness::MAYFLY);
    command
        .args(["check", guests::HELLO])
        .env("HOME", "/proc/self")
        .env_remove("MAYFLY_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME");
    let output = crate::harness::run_bounded(command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot use compile cache /proc/self/.cache/mayfly")
            && stderr.contains("running without a compile cache"),
        "{stderr}"
    );
    // Chosen on the command line, the same directory is an error.
    let output = run_mayfly(&[
        OsStr::new("check"),
        OsStr::new(guests::HELLO),
        OsStr::new("--cache-dir"),
        OsStr::new("/proc/self/.cache/mayfly"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot use compile cache"), "{stderr}");
}
