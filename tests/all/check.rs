//! `mayfly check`: validates an app without serving it and reports what each
//! component can reach.

use std::ffi::OsStr;

use crate::guests;
use crate::harness::{run_mayfly, write_file};

#[test]
fn the_report_lists_every_grant_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    std::fs::create_dir_all(dir.path().join("scratch")).unwrap();
    let manifest = format!(
        r#"
name = "shop"

[limits]
timeout = "5s"

[component.caps]
source = {caps:?}
env = {{ API_TOKEN = "do-not-print-me", MODE = "test" }}
allowed_outbound_hosts = ["https://api.example.com", "http://*.internal:8080"]
key_value_stores = ["sessions", "carts"]
config = {{ api_url = "https://api.example.com", password = "do-not-print-me-either" }}

[[component.caps.files]]
host = "public"
guest = "/public"

[[component.caps.files]]
host = "scratch"
guest = "/scratch"
mode = "read-write"

[component.caps.limits]
memory = "32MiB"
instances = 4
fuel = 1000000

[component.hello]
source = {hello:?}

[[route]]
path = "/caps/..."
component = "caps"
[[route]]
path = "/"
component = "hello"
"#,
        caps = guests::CAPABILITIES,
        hello = guests::HELLO,
    );
    let app = write_file(dir.path(), "app.toml", manifest);
    let output = run_mayfly(&[
        OsStr::new("check"),
        app.as_os_str(),
        OsStr::new("--no-cache"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let public = dir.path().join("public").canonicalize().unwrap();
    let scratch = dir.path().join("scratch").canonicalize().unwrap();
    for expected in [
        "App `shop` (".to_string(),
        "): 2 components, 2 routes".to_string(),
        "Checked against a server of 1000 instances, with memory slots of 4GiB (--max-instances)."
            .to_string(),
        "  routes:    /caps/...".to_string(),
        format!("  files:     /public <- {} (read-only)", public.display()),
        format!(
            "             /scratch <- {} (read-write)",
            scratch.display()
        ),
        "  env:       API_TOKEN, MODE".to_string(),
        "  outbound:  https://api.example.com:443, http://*.internal:8080".to_string(),
        "  sockets:   none (wasi:sockets is always denied)".to_string(),
        "  stores:    sessions, carts".to_string(),
        "  config:    api_url, password".to_string(),
        "  limits:    timeout 5s, memory 32MiB, table elements 20000, resources 1000, \
         descriptors 128, host memory 1MiB, instances 4 (queue 1000), request body 256MiB, request head as the server's, response headers 200, fuel 1000000"
            .to_string(),
        "component `hello` (".to_string(),
        "  routes:    /\n  files:     none\n  env:       none\n  outbound:  none".to_string(),
        "  stores:    none\n  config:    none".to_string(),
        "  limits:    timeout 5s, memory 256MiB,".to_string(),
        "wasi:http/{types, outgoing-handler}@".to_string(),
        "OK: every component loads".to_string(),
    ] {
        assert!(stdout.contains(&expected), "no `{expected}` in:\n{stdout}");
    }
    // Names, never values: the report may be pasted anywhere.
    assert!(!stdout.contains("do-not-print-me"), "{stdout}");
    assert!(!stdout.contains("do-not-print-me-either"), "{stdout}");
}

#[test]
fn every_broken_component_is_reported_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "notes.wasm", "not wasm at all");
    let manifest = format!(
        r#"
[component.good]
source = {hello:?}
[component.broken]
source = "notes.wasm"
[component.missing]
source = "missing.wasm"

[[route]]
path = "/"
component = "good"
[[route]]
path = "/b"
component = "broken"
[[route]]
path = "/m"
component = "missing"
"#,
        hello = guests::HELLO,
    );
    let app = write_file(dir.path(), "app.toml", manifest);
    let output = run_mayfly(&[
        OsStr::new("check"),
        app.as_os_str(),
        OsStr::new("--no-cache"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("component `good` ("), "{stdout}");
    assert!(
        stdout.contains(
            "component `broken`: PROBLEM\n  component `broken` (component.broken.source = "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("notes.wasm): not a WebAssembly file"),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing.wasm): cannot read the file: No such file or directory"),
        "{stdout}"
    );
    assert!(
        stderr.contains("error: 2 of 3 components of app `app` cannot be loaded (see above)"),
        "{stderr}"
    );
}
