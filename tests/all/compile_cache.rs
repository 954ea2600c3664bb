//! `mayfly compile` and the on-disk compile cache: hits are reused, and
//! entries that are corrupt, truncated or from another engine are rebuilt,
//! never trusted.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::guests;
use crate::harness::{Server, get, run_mayfly, test_app};

fn compile(app: &Path, cache: &Path) -> String {
    let output = run_mayfly(&[
        OsStr::new("compile"),
        app.as_os_str(),
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "compile failed:\n{stdout}\n{stderr}"
    );
    stdout
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
    let app = dir.path().join("hello.toml");
    std::fs::write(
        &app,
        format!(
            "[component.hello]\nsource = {:?}\n[[route]]\npath = \"/\"\ncomponent = \"hello\"\n",
            guests::HELLO
        ),
    )
    .unwrap();
    compile(&app, &cache);
    let entry = entries(&cache).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();

    // One flipped bit in the compiled code.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&entry, &flipped).unwrap();
    let out = compile(&app, &cache);
    assert!(
        line_for(&out, "hello").contains("replaced an entry: checksum mismatch (corrupt entry)"),
        "{out}"
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

    // A well-framed entry whose payload wasmtime did not produce (as from
    // another engine): the checksum matches, wasmtime refuses it.
    let payload = b"\x7fELF not really compiled code".to_vec();
    let mut foreign = b"MAYFLY\x00\x01".to_vec();
    foreign.extend_from_slice(&sha256(&payload));
    foreign.extend_from_slice(&payload);
    std::fs::write(&entry, &foreign).unwrap();
    let out = compile(&app, &cache);
    assert!(
        line_for(&out, "hello").contains("rejected by wasmtime"),
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
