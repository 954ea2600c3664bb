//! Both worlds in one server: a WASI 0.3 component is served next to WASI
//! 0.2 ones, `check` says which world each serves, internal calls go
//! from one world to the other and back, and `--watch` swaps a file from
//! one world to the other with no failed request (or, on a server that runs
//! 0.2 only, refuses the swap and says how to allow it).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::guests;
use crate::harness::{Load, PATIENCE, Seen, Server, get, run_mayfly, write_file};

const FRESH: &str = "count=1 heap_items=1 pages_at_start=";

/// An app of both worlds: 0.2 `hello` at `/` and `probe` at `/probe`, and
/// their 0.3 twins at `/p3/hello` and `/p3/probe`; `extra` is more of the
/// manifest.
fn both_worlds(dir: &Path, extra: &str) -> Server {
    let manifest = format!(
        r#"
name = "both-worlds"

[component.hello]
source = {hello:?}
[component.probe]
source = {probe:?}
[component.hello-p3]
source = {hello_p3:?}
[component.probe-p3]
source = {probe_p3:?}

[[route]]
path = "/"
component = "hello"
[[route]]
path = "/probe"
component = "probe"
[[route]]
path = "/p3/hello"
component = "hello-p3"
[[route]]
path = "/p3/probe"
component = "probe-p3"
{extra}
"#,
        hello = guests::HELLO,
        probe = guests::PROBE,
        hello_p3 = guests::HELLO_P3,
        probe_p3 = guests::PROBE_P3,
    );
    Server::start(&write_file(dir, "app.toml", manifest))
}

#[tokio::test]
async fn check_says_which_world_each_component_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds(dir.path(), "");
    drop(server);
    let output = run_mayfly(&[
        "check".as_ref(),
        dir.path().join("app.toml").as_os_str(),
        "--no-cache".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let world_of = |component: &str| {
        let section = stdout
            .split("component `")
            .find(|s| s.starts_with(&format!("{component}`")))
            .unwrap_or_else(|| panic!("no section for {component}: {stdout}"));
        section
            .lines()
            .find(|line| line.trim_start().starts_with("world:"))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        world_of("hello").contains("`wasi:http/proxy` (WASI 0.2)"),
        "{stdout}"
    );
    assert!(
        world_of("hello-p3").contains("`wasi:http/service` (WASI 0.3)"),
        "{stdout}"
    );
}

#[tokio::test]
pub(crate) async fn internal_calls_go_both_ways_between_worlds() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.chain-p3]
source = {chain_p3:?}
allowed_outbound_hosts = ["http://hello.mayfly.internal", "http://back.mayfly.internal"]

[component.back]
source = {capabilities:?}
allowed_outbound_hosts = ["http://hello-p3.mayfly.internal"]

[[route]]
path = "/p3/chain"
component = "chain-p3"
[[route]]
path = "/back"
component = "back"
"#,
        chain_p3 = guests::CHAIN_P3,
        capabilities = guests::CAPABILITIES,
    );
    let server = both_worlds(dir.path(), &extra);
    // 0.3 -> 0.2
    let reply = get(server.addr, "/p3/chain?to=hello&path=/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "200 Hello from Mayfly!\n");
    // 0.2 -> 0.3
    let reply = get(
        server.addr,
        "/back?op=fetch&url=http://hello-p3.mayfly.internal/p3/hello",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.text().contains("Hello from Mayfly!"),
        "{}",
        reply.text()
    );
    // 0.3 -> 0.2 -> 0.3
    let reply = get(
        server.addr,
        "/p3/chain?to=back&path=/back%3Fop%3Dfetch%26url%3Dhttp%3A%2F%2Fhello-p3.mayfly.internal%2Fp3%2Fhello",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.text().contains("Hello from Mayfly!"),
        "{}",
        reply.text()
    );
    // Not granted: refused inside the guest.
    let reply = get(server.addr, "/p3/chain?to=probe&path=/probe").await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.text(), "denied: ErrorCode::HttpRequestDenied");
}

/// Replaces `path` atomically (as editors and deploy tools do).
fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Waits until `GET /` answers a body that `wanted` accepts.
async fn wait_for_body(server: &Server, wanted: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = get(server.addr, "/").await.text();
        if wanted(&body) {
            return;
        }
        assert!(Instant::now() < deadline, "still answering {body:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `web` component at `/`, from `web.wasm` (a copy of 0.2 `hello`),
/// served with `--watch` and `args`; `extra` is more of the manifest.
fn watched(dir: &Path, extra: &str, args: &[&str]) -> Server {
    std::fs::copy(guests::HELLO, dir.join("web.wasm")).unwrap();
    let manifest = format!(
        "[component.web]\nsource = \"web.wasm\"\n\n[[route]]\npath = \"/\"\ncomponent = \"web\"\n{extra}"
    );
    let app = write_file(dir, "app.toml", manifest);
    let mut all = vec![app.to_str().unwrap(), "--watch"];
    all.extend_from_slice(args);
    Server::start_with(&all)
}

const V1: &str = "Hello from Mayfly!\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_swaps_a_file_between_worlds_with_no_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    // A 0.3 component in the app: the server runs both worlds, with no
    // `--wasi-03`.
    let extra = format!(
        "[component.hello-p3]\nsource = {:?}\n\n[[route]]\npath = \"/p3/hello\"\ncomponent = \"hello-p3\"\n",
        guests::HELLO_P3
    );
    let server = watched(dir.path(), &extra, &[]);
    assert_eq!(get(server.addr, "/").await.text(), V1);

    // Load on `/` all along, on four connections; each version answers a
    // few hundred requests of it.
    let load = Load::start(server.addr, "/", 4);
    let more_answers = || load.more_answers(300, Duration::ZERO);
    let web = dir.path().join("web.wasm");
    more_answers().await;
    // 0.2 -> 0.3: the probe guest, whose answer is easy to tell apart.
    replace(&web, &std::fs::read(guests::PROBE_P3).unwrap());
    wait_for_body(&server, |body| body.starts_with(FRESH)).await;
    more_answers().await;
    // ...and back to 0.2.
    replace(&web, &std::fs::read(guests::HELLO).unwrap());
    wait_for_body(&server, |body| body == V1).await;
    more_answers().await;
    let seen = load.stop().await;
    let (mut v1, mut p3) = (0, 0);
    for Seen { status, body, .. } in &seen {
        assert_eq!(*status, 200, "a request failed: {body}");
        if body == V1 {
            v1 += 1;
        } else {
            assert!(body.starts_with(FRESH), "unexpected answer {body:?}");
            p3 += 1;
        }
    }
    assert!(v1 > 0 && p3 > 0, "0.2 answered {v1}, 0.3 answered {p3}");
    server.wait_for_output_times("mayfly: reloaded ", 2);
    assert!(
        !server.output().contains("reload refused"),
        "{}",
        server.output()
    );
}

#[tokio::test]
async fn a_0_2_only_server_refuses_a_watched_file_turned_0_3_saying_how_to_allow_it() {
    let dir = tempfile::tempdir().unwrap();
    // Only 0.2 components, no `--wasi-03`: a 0.2-only engine.
    let server = watched(dir.path(), "", &[]);
    assert_eq!(get(server.addr, "/").await.text(), V1);
    replace(
        &dir.path().join("web.wasm"),
        &std::fs::read(guests::PROBE_P3).unwrap(),
    );
    let output =
        server.wait_for_output("it is a WASI 0.3 component, and this server runs WASI 0.2 only");
    let line = output
        .lines()
        .find(|line| line.contains("this server runs WASI 0.2 only"))
        .unwrap();
    assert!(
        line.contains("reload refused; still serving the previous version")
            && line.contains("restart it with `--wasi-03`, or with a 0.3 component in the app"),
        "{line}"
    );
    assert_eq!(get(server.addr, "/").await.text(), V1);
    drop(server);

    // Started with `--wasi-03`, the same app takes the same file.
    let dir = tempfile::tempdir().unwrap();
    let server = watched(dir.path(), "", &["--wasi-03"]);
    assert_eq!(get(server.addr, "/").await.text(), V1);
    replace(
        &dir.path().join("web.wasm"),
        &std::fs::read(guests::PROBE_P3).unwrap(),
    );
    wait_for_body(&server, |body| body.starts_with(FRESH)).await;
    server.wait_for_output("mayfly: reloaded ");
}
