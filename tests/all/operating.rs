//! Operating Mayfly: rolling updates under load with no failed request,
//! `--watch`, the admin API's token, Prometheus metrics and health checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::Request;

use crate::guests;
use crate::harness::{
    Client, Load, PATIENCE, Reply, Server, World, for_both_worlds, full, get, write_file,
};

const TOKEN: &str = "test-admin-token-0123456789";
const V1: &str = "Hello from Mayfly!\n";

/// `web` (hello) at `/`, `trap` and `slow` beside it, with the admin API on.
fn start(dir: &Path, extra: &[&str]) -> (Server, PathBuf) {
    start_app(dir, "500ms", extra)
}

/// [`start`], with `slow`'s requests limited to `slow_timeout`.
fn start_app(dir: &Path, slow_timeout: &str, extra: &[&str]) -> (Server, PathBuf) {
    std::fs::copy(guests::HELLO, dir.join("web.wasm")).unwrap();
    let manifest = format!(
        r#"
[component.web]
source = "web.wasm"
[component.trap]
source = {trap:?}
[component.slow]
source = {slow:?}
[component.slow.limits]
timeout = "{slow_timeout}"

[[route]]
path = "/"
component = "web"
[[route]]
path = "/trap/..."
component = "trap"
[[route]]
path = "/slow"
component = "slow"
"#,
        trap = guests::TRAP,
        slow = guests::SLOW,
    );
    let app = write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", format!("{TOKEN}\n"));
    let mut args = vec![
        app.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = Server::start_with(&args);
    assert!(
        server.admin.is_some(),
        "no admin address in:\n{}",
        server.output()
    );
    (server, app)
}

async fn admin(
    server: &Server,
    method: http::Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut client = Client::connect(server.admin.unwrap()).await;
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    client
        .send(request.body(full(body)).unwrap())
        .await
        .unwrap()
}

async fn deploy(server: &Server, component: &str, bytes: Vec<u8>) -> Reply {
    admin(
        server,
        http::Method::PUT,
        &format!("/v1/components/{component}"),
        Some(TOKEN),
        bytes,
    )
    .await
}

/// Requests answered in each phase of the rolling update.
const PHASE_REQUESTS: usize = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_updates_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    // With WASI 0.3 on from the start: v2 is a 0.3 component.
    let (server, _) = start(dir.path(), &["--wasi-03"]);
    let load = Load::start(server.addr, "/", 8);
    // Each phase lasts at least this long and this many requests.
    let phase = || load.more_answers(PHASE_REQUESTS, Duration::from_millis(700));

    phase().await;
    // v1 -> v2: the probe guest, whose answer is easy to tell apart, as a
    // WASI 0.3 component (v1 is a 0.2 one): a swap between worlds and back.
    let v2_sent = Instant::now();
    let reply = deploy(&server, "web", std::fs::read(guests::PROBE_P3).unwrap()).await;
    let v2_acked = Instant::now();
    assert_eq!(reply.text(), r#"{"component":"web","version":2}"#);

    phase().await;
    // A broken v3 is refused, and v2 keeps serving.
    let reply = deploy(&server, "web", b"this is not WebAssembly".to_vec()).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.text().contains("not a WebAssembly file"),
        "{}",
        reply.text()
    );

    phase().await;
    // Roll back: v1 again.
    let back_sent = Instant::now();
    let reply = admin(
        &server,
        http::Method::POST,
        "/v1/components/web/rollback",
        Some(TOKEN),
        vec![],
    )
    .await;
    let back_acked = Instant::now();
    assert_eq!(reply.text(), r#"{"component":"web","version":1}"#);

    phase().await;
    let seen = load.stop().await;

    assert!(
        seen.len() >= 4 * PHASE_REQUESTS,
        "only {} requests under load",
        seen.len()
    );
    let (mut v1, mut v2) = (0, 0);
    for s in &seen {
        assert_eq!(s.status, 200, "a request failed: {}", s.body);
        if s.body == V1 {
            // v1 was live before v2's deploy was acknowledged, and again
            // from when the rollback was sent.
            assert!(
                s.started <= v2_acked || s.ended >= back_sent,
                "v1 answered a request that ran entirely while v2 was live"
            );
            v1 += 1;
        } else {
            assert!(
                s.body.starts_with("count=1 "),
                "unexpected answer {:?}",
                s.body
            );
            // v2 was live from (after) its deploy was sent until the
            // rollback was acknowledged.
            assert!(
                s.ended >= v2_sent && s.started <= back_acked,
                "v2 answered a request outside its time"
            );
            v2 += 1;
        }
    }
    assert!(v1 > 0 && v2 > 0, "v1 answered {v1}, v2 answered {v2}");
    eprintln!(
        "{} requests, none failed: {v1} from v1, {v2} from v2",
        seen.len()
    );

    // The history: version 1 live again, version 2 kept.
    assert_eq!(versions_of(&server, "web").await, (vec![1, 2], 1));
    let web = listing_of(&server, "web").await;
    assert_eq!(web["versions"][1]["origin"], "deployed");
    server.wait_for_output("mayfly: component `web`: deploy refused: component `web`");
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_checks_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path(), &[]);
    for token in [None, Some("wrong-token-wrong-token"), Some("")] {
        let reply = admin(&server, http::Method::GET, "/v1/components", token, vec![]).await;
        assert_eq!(reply.status, 401, "{token:?}");
        assert_eq!(reply.header("www-authenticate"), "Bearer");
        let reply = deploy_with(&server, token, b"x".to_vec()).await;
        assert_eq!(reply.status, 401);
    }
    // Unknown component, nothing to roll back.
    let reply = deploy(&server, "nope", std::fs::read(guests::HELLO).unwrap()).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (404, r#"{"error":"no component named `nope`"}"#)
    );
    let reply = admin(
        &server,
        http::Method::POST,
        "/v1/components/web/rollback",
        Some(TOKEN),
        vec![],
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (
            409,
            r#"{"error":"component `web` has no earlier version to roll back to"}"#
        )
    );
    // A component of another world is refused like any broken one.
    let reply = deploy(&server, "web", std::fs::read(guests::CLI).unwrap()).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.text().contains(
            "exports neither `wasi:http/incoming-handler@0.2` nor `wasi:http/handler@0.3`"
        ),
        "{}",
        reply.text()
    );
    assert_eq!(get(server.addr, "/").await.text(), V1);
    // A WASI 0.3 component, on a server that started with 0.2 ones only
    // (and no `--wasi-03`): refused, saying how to allow it.
    let reply = deploy(&server, "web", std::fs::read(guests::PROBE_P3).unwrap()).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply
            .text()
            .contains("it is a WASI 0.3 component, and this server runs WASI 0.2 only"),
        "{}",
        reply.text()
    );
    assert_eq!(get(server.addr, "/").await.text(), V1);
}

async fn deploy_with(server: &Server, token: Option<&str>, bytes: Vec<u8>) -> Reply {
    admin(
        server,
        http::Method::PUT,
        "/v1/components/web",
        token,
        bytes,
    )
    .await
}

/// The value of the sample `name` (with its labels) in a scrape.
fn sample(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample `{name}` in:\n{scrape}"))
}

/// `web` (hello) at `/` and `hostile` (limited to 1 s and 32 MiB) at
/// `/hostile`, of `world`, and `other`, the other world's hello, at
/// `/other`; with the admin API on.
fn start_worlds(dir: &Path, world: World) -> Server {
    let manifest = format!(
        r#"
[component.web]
source = {web:?}
[component.hostile]
source = {hostile:?}
[component.hostile.limits]
timeout = "1s"
memory = "32MiB"
[component.other]
source = {other:?}

[[route]]
path = "/"
component = "web"
[[route]]
path = "/hostile"
component = "hostile"
[[route]]
path = "/other"
component = "other"
"#,
        web = world.hello(),
        hostile = world.hostile(),
        other = world.other().hello(),
    );
    let app = write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", format!("{TOKEN}\n"));
    Server::start_with(&[
        app.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ])
}

for_both_worlds! {
    async fn metrics_count_requests_traps_limits_and_instantiations(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = start_worlds(dir.path(), world);
        let scrape = || async { admin(&server, http::Method::GET, "/metrics", None, vec![]).await };
        for _ in 0..5 {
            assert_eq!(get(server.addr, "/").await.status, 200);
        }
        for _ in 0..2 {
            let reply = get(server.addr, "/hostile?attack=panic").await;
            assert_eq!(reply.status, 500);
        }
        assert_eq!(get(server.addr, "/hostile?attack=memory").await.status, 500);
        assert_eq!(get(server.addr, "/hostile?attack=sleep").await.status, 504);
        assert_eq!(get(server.addr, "/nowhere/at/all").await.status, 404);

        let reply = scrape().await;
        assert_eq!(
            reply.header("content-type"),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let text = reply.text();
        for (name, value) in [
            ("mayfly_requests_total{component=\"web\",status=\"200\"}", 5.0),
            ("mayfly_requests_total{component=\"hostile\",status=\"500\"}", 3.0),
            ("mayfly_requests_total{component=\"hostile\",status=\"504\"}", 1.0),
            ("mayfly_traps_total{component=\"hostile\"}", 3.0),
            ("mayfly_limit_hits_total{component=\"hostile\",kind=\"memory\"}", 1.0),
            ("mayfly_limit_hits_total{component=\"hostile\",kind=\"deadline\"}", 1.0),
            ("mayfly_unrouted_requests_total", 1.0),
            ("mayfly_request_duration_seconds_count{component=\"web\"}", 5.0),
            (
                "mayfly_request_duration_seconds_bucket{le=\"+Inf\",component=\"web\"}",
                5.0,
            ),
            ("mayfly_instantiation_duration_seconds_count{component=\"web\"}", 5.0),
            ("mayfly_instantiation_duration_seconds_count{component=\"hostile\"}", 4.0),
            ("mayfly_instances_in_flight{component=\"web\"}", 0.0),
            ("mayfly_queue_length{component=\"web\"}", 0.0),
            // The other world's component beside them: untouched.
            ("mayfly_instantiation_duration_seconds_count{component=\"other\"}", 0.0),
            ("mayfly_traps_total{component=\"other\"}", 0.0),
        ] {
            assert_eq!(sample(&text, name), value, "{name}");
        }
        server
            .wait_metric("mayfly_instances_in_flight{component=\"hostile\"}", 0.0)
            .await;

        // The counters move on, and carry across a new version.
        deploy(&server, "web", std::fs::read(world.probe()).unwrap()).await;
        get(server.addr, "/").await;
        let text = scrape().await.text();
        assert_eq!(
            sample(
                &text,
                "mayfly_requests_total{component=\"web\",status=\"200\"}"
            ),
            6.0
        );
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = start_app(dir.path(), "60s", &["--shutdown-grace", "30"]);
    let reply = admin(&server, http::Method::GET, "/healthz", None, vec![]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "ok\n")
    );
    let reply = admin(&server, http::Method::GET, "/readyz", None, vec![]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "ready\n")
    );

    // While draining, not ready (a slow request, running once its head is
    // in, keeps the server draining).
    let response = crate::harness::in_flight(server.addr, "/slow?ms=5000&head_first=1").await;
    let slow = crate::harness::rest_of_body(response);
    server.signal("TERM");
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(
            !slow.is_finished(),
            "the slow request ended before the server reported draining"
        );
        let reply = admin(&server, http::Method::GET, "/readyz", None, vec![]).await;
        if reply.status == 503 {
            assert_eq!(reply.text(), "draining\n");
            break;
        }
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "ready\n")
        );
        assert!(Instant::now() < deadline, "never reported draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(&slow.await.unwrap()[..], b"sleeping\nslept 5000 ms\n");
    assert!(server.wait_exit(PATIENCE).is_some_and(|s| s.success()));
}

#[tokio::test]
async fn watch_reloads_changed_files_and_refuses_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (server, app) = start(dir.path(), &["--watch"]);
    assert_eq!(get(server.addr, "/").await.text(), V1);

    // A new component file: picked up.
    replace(
        &dir.path().join("web.wasm"),
        &std::fs::read(guests::PROBE).unwrap(),
    );
    wait_for_body(&server, |body| body.starts_with("count=1 ")).await;
    server.wait_for_output("mayfly: reloaded ");

    // A broken one: refused, and the last good version keeps serving.
    replace(&dir.path().join("web.wasm"), b"broken");
    server.wait_for_output("reload refused; still serving the previous version");
    assert!(get(server.addr, "/").await.text().starts_with("count=1 "));

    // A manifest change (a new route) is picked up too.
    replace(
        &dir.path().join("web.wasm"),
        &std::fs::read(guests::HELLO).unwrap(),
    );
    wait_for_body(&server, |body| body == V1).await;
    let manifest = std::fs::read_to_string(&app).unwrap();
    replace(
        &app,
        format!("{manifest}\n[[route]]\npath = \"/also\"\ncomponent = \"web\"\n").as_bytes(),
    );
    wait_for_body(&server, |body| body == V1).await;
    let deadline = Instant::now() + PATIENCE;
    while get(server.addr, "/also").await.status != 200 {
        assert!(Instant::now() < deadline, "the new route never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A component whose file is not there yet: refused, but its file is
    // watched from then on, and picked up when it appears.
    let manifest = std::fs::read_to_string(&app).unwrap();
    replace(
        &app,
        format!(
            "{manifest}\n[component.late]\nsource = \"late.wasm\"\n\
             [[route]]\npath = \"/late\"\ncomponent = \"late\"\n"
        )
        .as_bytes(),
    );
    let refusals = |output: &str| output.matches("reload refused").count();
    let deadline = Instant::now() + PATIENCE;
    while refusals(&server.output()) < 2 {
        assert!(
            Instant::now() < deadline,
            "the missing file was not refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.output().contains("late.wasm"), "{}", server.output());
    replace(
        &dir.path().join("late.wasm"),
        &std::fs::read(guests::HELLO).unwrap(),
    );
    while get(server.addr, "/late").await.text() != V1 {
        assert!(Instant::now() < deadline, "the late file was never loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaces `path` atomically (as editors and deploy tools do).
fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

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

#[test]
fn the_admin_api_stays_on_loopback_and_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::harness::test_app(dir.path());
    let token = write_file(dir.path(), "token", TOKEN);
    let run = |args: &[&str]| {
        let mut all = vec!["serve", app.to_str().unwrap(), "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut command = std::process::Command::new(crate::harness::MAYFLY);
        command.args(&all).env_remove("MAYFLY_ADMIN_TOKEN");
        let output = crate::harness::run_bounded(command);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[
        "--admin-listen",
        "0.0.0.0:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("the admin API listens on loopback only"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--admin-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--admin-listen needs a token"), "{stderr}");
    let short = write_file(dir.path(), "short", "abc");
    let (code, stderr) = run(&[
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        short.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}

#[tokio::test]
async fn a_version_swapped_in_mid_request_leaves_that_request_on_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_app(dir.path(), "60s", &[]);
    // v1 of `slow` starts a request that runs for a while...
    let mut client = Client::connect(server.addr).await;
    let running = tokio::spawn(async move {
        let request = Request::get("/slow?ms=8000&head_first=1")
            .body(full(""))
            .unwrap();
        client.send(request).await.unwrap()
    });
    // ...(its head is out once the guest runs; the in-flight gauge says so)...
    server
        .wait_metric("mayfly_instances_in_flight{component=\"slow\"}", 1.0)
        .await;
    // ...when v2 (hello) is deployed.
    let reply = deploy(&server, "slow", std::fs::read(guests::HELLO).unwrap()).await;
    assert_eq!(reply.text(), r#"{"component":"slow","version":2}"#);

    // A new request gets v2 at once, while the old one still runs on v1.
    assert_eq!(get(server.addr, "/slow").await.text(), V1);
    assert!(
        !running.is_finished(),
        "the slow request ended before the swap was over"
    );
    let reply = running.await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "sleeping\nslept 8000 ms\n")
    );
    assert_eq!(get(server.addr, "/slow").await.text(), V1);
}

/// A `mayfly serve` started with an environment of the test's choosing,
/// killed on drop.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_admin_token_can_come_from_the_environment() {
    use std::io::BufRead as _;

    let dir = tempfile::tempdir().unwrap();
    let app = crate::harness::test_app(dir.path());
    let mut child = std::process::Command::new(crate::harness::MAYFLY)
        .arg("serve")
        .arg(&app)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        // Surrounding white space is not part of the token.
        .env("MAYFLY_ADMIN_TOKEN", format!("  {TOKEN}\n"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Spawned(child);
    let (found, admin_addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line
                .strip_prefix("Admin API")
                .and_then(|rest| rest.split_once(" on http://"))
                .and_then(|(_, addr)| addr.parse::<SocketAddr>().ok())
            {
                let _ = found.send(addr);
            }
        }
    });
    let admin_addr = admin_addr
        .recv_timeout(PATIENCE)
        .expect("mayfly serve did not print the admin API's address");
    let list = |token: &'static str| async move {
        let mut client = Client::connect(admin_addr).await;
        let request = Request::get("/v1/components")
            .header("authorization", format!("Bearer {token}"))
            .body(full(""))
            .unwrap();
        client.send(request).await.unwrap()
    };
    let reply = list(TOKEN).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.text().contains(r#""component":"hello""#),
        "{}",
        reply.text()
    );
    assert_eq!(list("test-admin-token-WRONG-89").await.status, 401);
    drop(child);
}

/// Component `name`'s entry in the admin API's list of components.
async fn listing_of(server: &Server, name: &str) -> serde_json::Value {
    let list: serde_json::Value = serde_json::from_slice(
        &admin(
            server,
            http::Method::GET,
            "/v1/components",
            Some(TOKEN),
            vec![],
        )
        .await
        .body,
    )
    .unwrap();
    list["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no component `{name}` in {list}"))
}

/// Component `name`'s version numbers and its live one, from the admin API.
async fn versions_of(server: &Server, name: &str) -> (Vec<u64>, u64) {
    let component = listing_of(server, name).await;
    let numbers = component["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    (numbers, component["live"].as_u64().unwrap())
}

#[tokio::test]
async fn a_reload_leaves_unchanged_components_and_their_deploys_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (server, app) = start(dir.path(), &["--watch"]);
    let reply = deploy(&server, "web", std::fs::read(guests::PROBE).unwrap()).await;
    assert_eq!(reply.text(), r#"{"component":"web","version":2}"#);

    // A manifest change that does not touch `web`'s declaration (a new
    // route): the deployed version keeps serving, and no component gets a
    // new version.
    let manifest = std::fs::read_to_string(&app).unwrap();
    replace(
        &app,
        format!("{manifest}\n[[route]]\npath = \"/also\"\ncomponent = \"web\"\n").as_bytes(),
    );
    let deadline = Instant::now() + PATIENCE;
    while get(server.addr, "/also").await.status != 200 {
        assert!(Instant::now() < deadline, "the new route never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(get(server.addr, "/").await.text().starts_with("count=1 "));
    assert_eq!(versions_of(&server, "web").await, (vec![1, 2], 2));
    assert_eq!(versions_of(&server, "slow").await, (vec![1], 1));
    assert_eq!(versions_of(&server, "trap").await, (vec![1], 1));

    // `web`'s file changes: that is a new version of `web` only.
    replace(
        &dir.path().join("web.wasm"),
        &std::fs::read(guests::ECHO).unwrap(),
    );
    let deadline = Instant::now() + PATIENCE;
    while versions_of(&server, "web").await != (vec![1, 2, 3], 3) {
        assert!(Instant::now() < deadline, "the changed file was not loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(versions_of(&server, "slow").await, (vec![1], 1));
    assert!(
        get(server.addr, "/")
            .await
            .headers
            .contains_key("x-echo-method")
    );
}

#[tokio::test]
async fn a_multi_line_message_stays_on_its_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&crate::harness::test_app(dir.path()));
    let mut client = Client::connect(server.addr).await;
    let request = Request::get("/trap/now")
        .header("x-request-id", "one-line-1")
        .body(full(""))
        .unwrap();
    assert_eq!(client.send(request).await.unwrap().status, 500);
    // The trap message has a backtrace of many lines: in the human log they
    // are escaped onto the trap's own line, which names its component and
    // request, rather than printed as lines that name neither.
    let output = server.wait_for_output("mayfly: component `trap` request one-line-1: trapped: ");
    let line = output
        .lines()
        .find(|line| line.contains("request one-line-1: trapped: "))
        .unwrap();
    assert!(line.contains("wasm backtrace:\\n    0: "), "{line}");
    for line in output.lines() {
        assert!(
            !line.trim_start().starts_with("0: "),
            "a log line that is not an event: {line:?}\n{output}"
        );
    }
}

/// The admin API answers only requests addressed to a loopback name (a
/// DNS-rebinding page sends its own), and a wrong token waits for its 401,
/// one attempt at a time.
#[tokio::test]
async fn the_admin_api_refuses_other_hosts_and_slows_token_guessing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(dir.path(), &[]);
    let admin_addr = server.admin.expect("the admin API is on");
    let ask = |host: &'static str, authorization: Option<String>| async move {
        let mut request = Request::get("/metrics").header("host", host);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let mut client = Client::connect(admin_addr).await;
        client.send(request.body(full("")).unwrap()).await.unwrap()
    };
    let refused = ask("attacker.example:9100", None).await;
    assert_eq!(
        (refused.status.as_u16(), refused.text().as_str()),
        (
            421,
            "the admin API answers requests addressed to localhost, 127.0.0.1 or [::1] only\n"
        )
    );
    for host in ["localhost:9100", "127.0.0.1", "[::1]:9100"] {
        assert_eq!(ask(host, None).await.status, 200, "{host}");
    }

    // Three wrong tokens at once are answered one after another, each after
    // its pause: together, no sooner than three pauses.
    let started = Instant::now();
    let guesses: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(async move {
                let request = Request::get("/v1/components")
                    .header("authorization", format!("Bearer wrong-{i}"))
                    .body(full(""))
                    .unwrap();
                let mut client = Client::connect(admin_addr).await;
                client.send(request).await.unwrap().status
            })
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.await.unwrap(), 401);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "{:?}",
        started.elapsed()
    );
    // The right token is not held up by them.
    let listing = admin(
        &server,
        http::Method::GET,
        "/v1/components",
        Some(TOKEN),
        vec![],
    )
    .await;
    assert_eq!(listing.status, 200);
}
