//! Spin apps, served from their `spin.toml` unmodified: a component written
//! with the published spin-sdk 5.2 (`guests/spin-v2`: Spin's variables,
//! key-value and outbound HTTP over `fermyon:spin@2.0.0` and wasi:http
//! 0.2), with a wildcard route, a private component reached through
//! `*.spin.internal`, variables templated over the app's, and a store.
//! What Mayfly does not serve of a Spin manifest is refused by name: the
//! fixtures `tests/fixtures/invalid/spin-*.toml`.

use crate::guests;
use crate::harness::{Server, get, write_file};

/// The body of `GET path`, which must answer 200.
async fn text(server: &Server, path: &str) -> String {
    let reply = get(server.addr, path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.text()
}

/// A Spin app of two components, both `guests/spin-v2`: `front` on every
/// path, `back` private.
fn spin_app(dir: &std::path::Path) -> std::path::PathBuf {
    write_file(
        dir,
        "spin.toml",
        format!(
            r#"
spin_manifest_version = 2

[application]
name = "Spin Test"
version = "0.1.0"
authors = ["Mayfly <mayfly@example.invalid>"]

[variables]
greeting = {{ default = "Hello" }}

[[trigger.http]]
route = "/..."
component = "front"

[[trigger.http]]
route = "/api/..."
component = "front"

[[trigger.http]]
route = {{ private = true }}
component = "back"

[component.front]
source = {source:?}
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://back.spin.internal"]
[component.front.variables]
message = "{{{{ greeting }}}}, Spin"

[component.back]
source = {source:?}
"#,
            source = guests::SPIN_V2
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_spin_sdk_5_app_runs_unmodified() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&spin_app(dir.path()));
    let text = |path| text(&server, path);
    assert_eq!(text("/hello").await, "Hello from a Spin component!");
    // Component variables, templated over the app's.
    assert_eq!(text("/variable?name=message").await, "Hello, Spin");
    assert_eq!(
        text("/variable?name=nope").await,
        "undefined: no variable for \"front\".\"nope\""
    );
    assert!(
        text("/variable?name=Nope")
            .await
            .starts_with("invalid-name: "),
        "an invalid name is Spin's invalid-name"
    );
    // The default store, kept by the host: a fresh instance every time.
    assert_eq!(text("/count").await, "visits: 1");
    assert_eq!(text("/count").await, "visits: 2");
    assert_eq!(text("/keys").await, "visits");
    assert_eq!(text("/store?label=default").await, "opened");
    assert_eq!(text("/store?label=other").await, "access-denied");
    // The private component, through Spin's internal domain; any other
    // host is denied.
    assert_eq!(
        text("/call?url=http://back.spin.internal/hello").await,
        "200 Hello from a Spin component!"
    );
    let denied = text("/call?url=http://example.com/").await;
    assert!(denied.starts_with("send failed: "), "{denied}");
    // Every public path is front's: back has no route of its own.
    assert_eq!(text("/back/anything").await, "spin-v2 at /back/anything");
    // Spin's headers say where the request was routed.
    let headers = text("/api/v1/headers?x=1").await;
    let port = server.addr.port();
    for line in [
        format!("spin-full-url: http://127.0.0.1:{port}/api/v1/headers?x=1"),
        "spin-path-info: /v1/headers".into(),
        "spin-matched-route: /api/...".into(),
        "spin-component-route: /api".into(),
        "spin-base-path: /".into(),
        "spin-client-addr: 127.0.0.1:".into(),
    ] {
        assert!(headers.contains(&line), "{line} not in:\n{headers}");
    }
}

#[test]
fn check_reports_a_spin_app_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::harness::run_mayfly(&[
        std::ffi::OsStr::new("check"),
        spin_app(dir.path()).as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("App `spin_test` ("), "{stdout}");
    assert!(
        stdout.contains("fermyon:spin/{key-value, variables}@2.0.0"),
        "{stdout}"
    );
    // The private component has no route; the public one reaches it.
    assert!(stdout.contains("component `back` ("), "{stdout}");
    assert!(stdout.contains("  routes:    none\n"), "{stdout}");
    assert!(
        stdout.contains("  outbound:  http://back.spin.internal:80\n"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spin_build_with_several_commands_is_built_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_file(
        dir.path(),
        "spin.toml",
        format!(
            r#"
spin_manifest_version = 2
[application]
name = "built"
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "out/web.wasm"
[component.web.build]
command = ["mkdir -p out", "cp {source} out/web.wasm"]
watch = ["src/**/*.rs"]
"#,
            source = guests::SPIN_V2
        ),
    );
    let printed = crate::templates::build_ok(&manifest);
    assert!(printed.contains("[web] $ mkdir -p out && cp "), "{printed}");
    let server = Server::start(&manifest);
    assert_eq!(
        get(server.addr, "/hello").await.text(),
        "Hello from a Spin component!"
    );
}

/// A Spin app of one component, `guests/spin-v3` (spin-sdk 7, WASI 0.3),
/// on every path.
fn spin_v3_app(dir: &std::path::Path) -> std::path::PathBuf {
    write_file(
        dir,
        "spin.toml",
        format!(
            r#"
spin_manifest_version = 2
[application]
name = "spin3"
[variables]
greeting = {{ default = "Hi" }}
[[trigger.http]]
route = "/..."
component = "current"
[component.current]
source = {source:?}
key_value_stores = ["default"]
[component.current.variables]
message = "{{{{ greeting }}}} from Spin 3"
"#,
            source = guests::SPIN_V3
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_spin_sdk_7_app_on_wasi_03_runs_unmodified() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&spin_v3_app(dir.path()));
    let text = |path| text(&server, path);
    assert_eq!(text("/hello").await, "Hello from a Spin 3 component!");
    assert_eq!(text("/variable?name=message").await, "Hi from Spin 3");
    assert_eq!(
        text("/variable?name=nope").await,
        "undefined: no variable for \"current\".\"nope\""
    );
    assert_eq!(text("/count").await, "visits: 1");
    assert_eq!(text("/count").await, "visits: 2");
    // get-keys: a stream of keys, and its outcome.
    assert_eq!(text("/keys").await, "visits");
    assert_eq!(text("/store?label=other").await, "access-denied");
    assert_eq!(text("/x/y").await, "spin-v3 at /x/y");
}
