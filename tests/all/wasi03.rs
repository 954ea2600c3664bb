//! WASI 0.3 components (`wasi:http/service@0.3`, `wasi:cli@0.3`) next to
//! WASI 0.2 ones, with the same isolation: a fresh instance per request,
//! the same limits, grants and errors. The guests are the `*-p3` twins of
//! the 0.2 guests and answer the same way.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use http::Request;

use crate::guests;
use crate::harness::{Client, PATIENCE, Server, full, get, get_streamed, run_mayfly, write_file};

/// Generous for a loaded 2-core machine, far below the attacks' own
/// durations (forever, or ten minutes).
const BOUND: Duration = Duration::from_secs(30);

const FRESH: &str = "count=1 heap_items=1 pages_at_start=";

const TOKEN: &str = "wasi03-test-admin-token-0123";

/// An app of both worlds: 0.2 `hello` at `/` and `probe` at `/probe`,
/// 0.3 twins under `/p3/...`, and `hostile-p3` limited to 1 s and 32 MiB;
/// `extra` is more of the manifest.
fn both_worlds(dir: &Path, extra: &str) -> Server {
    both_worlds_with(dir, extra, &[])
}

/// [`both_worlds`], with the admin API on (for `/metrics`) and `args` for
/// `mayfly serve`.
fn both_worlds_with(dir: &Path, extra: &str, args: &[&str]) -> Server {
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
[component.echo-p3]
source = {echo_p3:?}
[component.slow-p3]
source = {slow_p3:?}
[component.hostile-p3]
source = {hostile_p3:?}
[component.hostile-p3.limits]
timeout = "1s"
memory = "32MiB"

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
[[route]]
path = "/p3/echo/..."
component = "echo-p3"
[[route]]
path = "/p3/slow"
component = "slow-p3"
[[route]]
path = "/p3/hostile"
component = "hostile-p3"
{extra}
"#,
        hello = guests::HELLO,
        probe = guests::PROBE,
        hello_p3 = guests::HELLO_P3,
        probe_p3 = guests::PROBE_P3,
        echo_p3 = guests::ECHO_P3,
        slow_p3 = guests::SLOW_P3,
        hostile_p3 = guests::HOSTILE_P3,
    );
    let app = write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", TOKEN);
    let mut all = vec![
        app.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    Server::start_with(&all)
}

/// Both worlds still answer, 0.3 with fresh instances.
async fn everything_still_serves(server: &Server) {
    assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
    assert_eq!(
        get(server.addr, "/p3/hello").await.text(),
        "Hello from Mayfly!\n"
    );
    assert!(
        get(server.addr, "/p3/probe")
            .await
            .text()
            .starts_with(FRESH)
    );
    let reply = get(server.addr, "/p3/hostile?attack=none").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "ok\n")
    );
}

#[tokio::test]
async fn a_0_3_component_gets_a_fresh_instance_for_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds(dir.path(), "");
    let mut client = Client::connect(server.addr).await;
    let first = client.get("/p3/probe").await.text();
    assert!(first.starts_with(FRESH), "{first}");
    for i in 0..40 {
        // Odd requests grow memory; the next must start at the original size.
        let path = if i % 2 == 1 {
            "/p3/probe?grow=64"
        } else {
            "/p3/probe"
        };
        assert_eq!(client.get(path).await.text(), first, "request {i}");
    }
    // In parallel, next to 0.2 requests.
    let addr = server.addr;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            tokio::spawn(async move {
                let path = if i % 2 == 0 { "/p3/probe" } else { "/probe" };
                let reply = get(addr, path).await;
                assert_eq!(reply.status, 200);
                assert!(reply.text().starts_with(FRESH), "{}", reply.text());
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
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
async fn request_and_response_bodies_stream_with_trailers() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds(dir.path(), "");
    // 4 MiB in, the same 4 MiB out.
    let body: Vec<u8> = (0..4u32 << 20)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let mut client = Client::connect(server.addr).await;
    let reply = client
        .send(
            Request::post("/p3/echo/big")
                .body(full(body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-echo-path"), "/p3/echo/big");
    assert!(reply.body == body, "the echoed body differs");

    // Trailers, on the wire.
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        stream,
        "POST /p3/echo/t HTTP/1.1\r\nhost: x\r\nte: trailers\r\ncontent-length: 9\r\nconnection: close\r\n\r\nping body"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.contains("ping body\r\n0\r\nx-echoed-bytes: 9\r\n"),
        "no trailer: {raw}"
    );

    // A guest error mid-body cuts the response visibly: what was sent
    // arrives, and the body never ends as a whole one does.
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        stream,
        "POST /p3/echo/x?fail-after=3 HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\nconnection: close\r\n\r\nabcdefgh"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("\r\nabc\r\n"), "{raw}");
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "the cut body ended cleanly: {raw}"
    );
    assert!(!raw.contains("defgh"), "{raw}");
    server.wait_for_output("component `echo-p3` request");
    // A head sent first, then lines one by one: it streams.
    let started = Instant::now();
    let dripped = get_streamed(server.addr, "/p3/slow?drip=5").await;
    assert_eq!(dripped.status, 200);
    assert!(dripped.error.is_none());
    assert!(started.elapsed() >= Duration::from_millis(400));
    everything_still_serves(&server).await;
}

/// Runs one attack on `hostile-p3` and returns the reply and how long it
/// took.
async fn attack(server: &Server, name: &str) -> (crate::harness::Reply, Duration) {
    let started = Instant::now();
    let reply = tokio::time::timeout(
        BOUND,
        get(server.addr, &format!("/p3/hostile?attack={name}")),
    )
    .await
    .unwrap_or_else(|_| panic!("attack `{name}` was not stopped within {BOUND:?}"));
    (reply, started.elapsed())
}

#[tokio::test]
async fn every_hostile_class_is_contained_in_a_0_3_guest() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds(dir.path(), "");
    let deadline = "component `hostile-p3` exceeded its request deadline of 1s\n";

    for name in ["loop", "sleep"] {
        let (reply, took) = attack(&server, name).await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (504, deadline),
            "{name}"
        );
        assert!(took >= Duration::from_millis(900), "{name} took {took:?}");
        everything_still_serves(&server).await;
    }

    let (reply, _) = attack(&server, "memory").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("memory limit of 32MiB reached"),
        "{}",
        reply.text()
    );

    let (reply, _) = attack(&server, "recursion").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("call stack exhausted"),
        "{}",
        reply.text()
    );

    let (reply, _) = attack(&server, "headers").await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.text().contains("response headers; the limit is 200"),
        "{}",
        reply.text()
    );

    let (reply, _) = attack(&server, "resources").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("resource table has no free keys"),
        "{}",
        reply.text()
    );

    // Streams, futures and tasks are component-model handles, bounded per
    // store too.
    let (reply, _) = attack(&server, "streams").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("store handle limit exceeded"),
        "{}",
        reply.text()
    );

    // Headers built through wasi:http/types@0.3 are charged to the
    // instance's host memory as 0.2 ones are.
    let (reply, _) = attack(&server, "fields").await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("the instance reached its limit of 1048576 bytes of host memory"),
        "{}",
        reply.text()
    );

    let (reply, _) = attack(&server, "panic").await;
    assert_eq!(reply.status, 500);
    server.wait_for_output("hostile guest: panicking on purpose");

    // Random bytes cost the guest's own memory, nothing of the host's.
    let (reply, _) = attack(&server, "random").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("memory limit of 32MiB reached"),
        "{}",
        reply.text()
    );

    // Output floods are captured and capped, the request still answers.
    for name in ["print", "newlines"] {
        let (reply, _) = attack(&server, name).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
    }

    // A body that never ends is cut at the deadline.
    let started = Instant::now();
    let endless = get_streamed(server.addr, "/p3/hostile?attack=endless-body").await;
    assert_eq!(endless.status, 200);
    assert!(endless.error.is_some(), "the endless body ended cleanly");
    assert!(started.elapsed() < BOUND);

    // Tasks left running after the response: the response is whole, and
    // the deadline still ends them (logged like any other overrun).
    for how in ["spin", "yield", "sleep"] {
        let (reply, took) = attack(&server, &format!("tasks&how={how}")).await;
        assert_eq!(reply.status, 200, "{how}: {}", reply.text());
        assert!(took < Duration::from_millis(900), "{how}: {took:?}");
    }
    server.wait_for_output_times("request deadline of 1s exceeded", 5);
    everything_still_serves(&server).await;
}

#[tokio::test]
async fn a_0_3_guest_reaches_only_what_it_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "granted text").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
    let extra = format!(
        r#"
[component.granted]
source = {hostile_p3:?}
env = {{ GREETING = "hi there" }}
files = [{{ host = {data:?}, guest = "/data" }}]

[[route]]
path = "/p3/granted"
component = "granted"
"#,
        hostile_p3 = guests::HOSTILE_P3,
        data = data.display().to_string(),
    );
    let server = both_worlds(dir.path(), &extra);

    // Ungranted: no variables, no directories, no outbound calls.
    assert_eq!(attack(&server, "env").await.0.text(), "");
    let escape = attack(&server, "escape").await.0.text();
    assert!(escape.contains("no preopened directories"), "{escape}");
    assert!(!escape.contains("ESCAPED"), "{escape}");
    let outbound = attack(&server, "outbound&url=http://example.com/").await.0;
    assert_eq!(outbound.status, 403);
    assert_eq!(outbound.text(), "denied: ErrorCode::HttpRequestDenied");
    server.wait_for_output("outbound request to http://example.com/ denied");

    // Granted: exactly the variable and the directory.
    let env = get(server.addr, "/p3/granted?attack=env").await.text();
    assert_eq!(env, "GREETING=hi there\n");
    let read = get(server.addr, "/p3/granted?attack=escape&path=/data/note.txt")
        .await
        .text();
    assert!(read.contains("granted text"), "{read}");
    let escape = get(server.addr, "/p3/granted?attack=escape").await.text();
    assert!(!escape.contains("ESCAPED"), "{escape}");
    assert!(!escape.contains("outside"), "{escape}");
    // Read-only by default.
    let write = get(
        server.addr,
        "/p3/granted?attack=escape&path=/data/new.txt&write=1",
    )
    .await
    .text();
    assert!(write.contains("denied"), "{write}");
    assert!(!data.join("new.txt").exists());
}

#[tokio::test]
async fn internal_calls_go_both_ways_between_worlds() {
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

#[tokio::test]
async fn a_0_3_guest_keeps_state_and_reads_config() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.counter-p3]
source = {counter_p3:?}
key_value_stores = ["default"]
config = {{ greeting = "hello from config" }}

[[route]]
path = "/count/..."
component = "counter-p3"
[[route]]
path = "/config"
component = "counter-p3"
"#,
        counter_p3 = guests::COUNTER_P3,
    );
    let server = both_worlds(dir.path(), &extra);
    let first = get(server.addr, "/count").await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = get(server.addr, "/count").await.text();
    let peek = get(server.addr, "/count/peek").await.text();
    assert_eq!(second, peek);
    assert_ne!(first.text(), second);
    let config = get(server.addr, "/config?key=greeting").await;
    assert_eq!(config.status, 200);
    assert!(
        config.text().contains("hello from config"),
        "{}",
        config.text()
    );
    server.wait_for_output("component `counter-p3` request");
}

#[test]
fn a_0_3_component_importing_what_the_host_lacks_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let component = wat::parse_str(
        r#"(component
             (import "acme:billing/invoices@0.3.0" (instance (export "charge" (func))))
             (instance $handler)
             (export "wasi:http/handler@0.3.0" (instance $handler)))"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("needs-billing.wasm"), component).unwrap();
    let output = run_mayfly(&[
        "check".as_ref(),
        dir.path().join("needs-billing.wasm").as_os_str(),
        "--no-cache".as_ref(),
    ]);
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success());
    assert!(stderr.contains("component `needs-billing`"), "{stderr}");
    assert!(stderr.contains("it cannot be linked"), "{stderr}");
    assert!(stderr.contains("acme:billing/invoices@0.3.0"), "{stderr}");
}

#[test]
fn mayfly_run_runs_a_wasi_0_3_command_with_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "from a file").unwrap();
    let run = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = vec!["run".as_ref()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        run_mayfly(&all)
    };
    let output = run(&[guests::CLI_P3, "--", "args", "a", "b c"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "a\nb c\n");

    let output = run(&[guests::CLI_P3, "--", "exit", "7"]);
    assert_eq!(output.status.code(), Some(7));

    let output = run(&[guests::CLI_P3, "--", "env", "MODE"]);
    assert_eq!(output.status.code(), Some(3), "not granted, not seen");
    let output = run(&["--env", "MODE=fast", guests::CLI_P3, "--", "env", "MODE"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "fast\n");

    let dir_grant = format!("{}::/in", dir.path().display());
    let output = run(&[
        "--dir",
        &dir_grant,
        guests::CLI_P3,
        "--",
        "cat",
        "/in/in.txt",
    ]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "from a file");
    let output = run(&[guests::CLI_P3, "--", "cat", "/etc/passwd"]);
    assert_eq!(output.status.code(), Some(4));

    let output = run(&["--timeout", "1s", guests::CLI_P3, "--", "loop"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("exceeded its deadline of 1s"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Requests to `component` answered with `status`, as `/metrics` counts
/// them.
fn requests(component: &str, status: u16) -> String {
    format!("mayfly_requests_total{{component=\"{component}\",status=\"{status}\"}}")
}

/// Times `component` hit its limit of `kind`, as `/metrics` counts them.
fn limit_hits(component: &str, kind: &str) -> String {
    format!("mayfly_limit_hits_total{{component=\"{component}\",kind=\"{kind}\"}}")
}

/// The most table elements any core module of the component at `wasm`
/// starts with: an instance of it needs a table that large.
fn initial_table_elements(wasm: &str) -> u64 {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).concurrency_support(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let component = wasmtime::component::Component::from_file(&engine, wasm).unwrap();
    component
        .resources_required()
        .and_then(|required| required.max_initial_table_size)
        .unwrap_or_else(|| panic!("{wasm} has no table, or imports a module"))
}

/// A Rust guest cannot grow a table, but it starts with one: a limit below
/// that refuses every instance, as a limit the guest grows past would.
#[tokio::test]
async fn a_0_3_guest_beyond_its_table_limit_fails_with_its_reason() {
    let size = initial_table_elements(guests::HOSTILE_P3);
    let below = size - 1;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.tight]
source = {hostile_p3:?}
[component.tight.limits]
table_elements = {below}
[component.roomy]
source = {hostile_p3:?}
[component.roomy.limits]
table_elements = {size}

[[route]]
path = "/p3/tight"
component = "tight"
[[route]]
path = "/p3/roomy"
component = "roomy"
"#,
        hostile_p3 = guests::HOSTILE_P3,
    );
    let server = both_worlds_with(dir.path(), &extra, &[]);
    for _ in 0..2 {
        let started = Instant::now();
        let reply = get(server.addr, "/p3/tight?attack=none").await;
        assert!(started.elapsed() < BOUND);
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (
                500,
                format!(
                    "component `tight` failed: table limit of {below} elements reached \
                     (host error: table minimum size of {size} elements exceeds table limits)\n"
                )
            )
        );
        // The next request is served, by every component.
        everything_still_serves(&server).await;
    }
    server.wait_for_output(&format!(
        "mayfly: component `tight` request 1: trapped: table minimum size of {size} elements"
    ));
    // A limit of exactly its table: it serves.
    let reply = get(server.addr, "/p3/roomy?attack=none").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "ok\n")
    );
    for (component, hits) in [("tight", 2.0), ("roomy", 0.0)] {
        let sample = limit_hits(component, "table_elements");
        assert_eq!(server.metric(&sample).await, hits, "{sample}");
    }
    assert_eq!(server.metric(&requests("tight", 500)).await, 2.0);
}

#[tokio::test]
async fn fuel_runs_out_deterministically_in_a_0_3_guest() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.metered]
source = {hostile_p3:?}
[component.metered.limits]
fuel = 50_000_000
timeout = "10m"
[component.metered-task]
source = {hostile_p3:?}
[component.metered-task.limits]
fuel = 2_000_000_000
timeout = "10m"

[[route]]
path = "/p3/metered"
component = "metered"
[[route]]
path = "/p3/metered-task"
component = "metered-task"
"#,
        hostile_p3 = guests::HOSTILE_P3,
    );
    let server = both_worlds_with(dir.path(), &extra, &[]);
    let out_of_fuel = "component `metered` failed: wasm trap: all fuel consumed by WebAssembly\n";
    for _ in 0..2 {
        let reply = tokio::time::timeout(BOUND, get(server.addr, "/p3/metered?attack=loop"))
            .await
            .expect("the loop did not run out of fuel");
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (500, out_of_fuel)
        );
    }
    // The fuel is plenty for a request that does its work...
    let reply = get(server.addr, "/p3/metered?attack=none").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "ok\n")
    );
    assert_eq!(server.metric(&limit_hits("metered", "fuel")).await, 2.0);
    // A task left spinning after a whole response runs out of fuel too,
    // long before its ten-minute deadline. (With fuel for about a second
    // of spinning, so that the response is out first.)
    let reply = get(server.addr, "/p3/metered-task?attack=tasks&how=spin").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "task spawned\n")
    );
    server
        .wait_metric(&limit_hits("metered-task", "fuel"), 1.0)
        .await;
    server
        .wait_metric(
            "mayfly_instances_in_flight{component=\"metered-task\"}",
            0.0,
        )
        .await;
    let output = server.wait_for_output_times("all fuel consumed by WebAssembly", 3);
    let trapped: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("all fuel consumed by WebAssembly"))
        .collect();
    assert_eq!(trapped.len(), 3, "{output}");
    for (line, component) in trapped.iter().zip(["metered", "metered", "metered-task"]) {
        assert!(
            line.starts_with(&format!("mayfly: component `{component}` request "))
                && line.contains(": trapped: "),
            "{line}"
        );
    }
    // A component without fuel runs unmetered on the same engine: its loop
    // ends at its deadline.
    let (reply, _) = attack(&server, "loop").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (
            504,
            "component `hostile-p3` exceeded its request deadline of 1s\n"
        )
    );
    assert_eq!(server.metric(&limit_hits("hostile-p3", "fuel")).await, 0.0);
    everything_still_serves(&server).await;
}

/// A body of `len` bytes sent in 64 KiB chunks, with no Content-Length.
fn chunked(len: usize) -> crate::harness::Body {
    use http_body_util::BodyExt as _;
    let chunks = (0..len).step_by(64 << 10).map(move |start| {
        let n = (64 << 10).min(len - start);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
            bytes::Bytes::from(vec![b'x'; n]),
        ))
    });
    http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed()
}

/// POSTs `body` to `path` on a new connection.
async fn post(server: &Server, path: &str, body: crate::harness::Body) -> crate::harness::Reply {
    let mut client = Client::connect(server.addr).await;
    client
        .send(Request::post(path).body(body).unwrap())
        .await
        .unwrap()
}

/// Sends `request` raw, then `chunks` one by one (write errors ignored: the
/// server may answer and close first), and returns whatever the server
/// answered until it closed.
async fn raw_exchange(server: &Server, request: String, chunks: Vec<Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(request.as_bytes()).await?;
        for chunk in chunks {
            writer.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the server closes, or resets once it has answered.
    while let Ok(Ok(n)) = tokio::time::timeout(BOUND, reader.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    writing.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A GET of `path` whose head is about `bytes` bytes, answered raw.
async fn raw_get_with_header(server: &Server, path: &str, bytes: usize) -> String {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(bytes)
    );
    raw_exchange(server, head, Vec::new()).await
}

#[tokio::test]
async fn request_body_and_head_limits_hold_on_0_3_routes() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.small-echo]
source = {echo_p3:?}
[component.small-echo.limits]
request_body = "1MiB"
request_headers = "4KiB"

[[route]]
path = "/p3/small/..."
component = "small-echo"
"#,
        echo_p3 = guests::ECHO_P3,
    );
    let server = both_worlds_with(dir.path(), &extra, &["--max-header-bytes", "16KiB"]);
    let too_large = "request body exceeds component `small-echo`'s limit of 1048576 bytes\n";

    // Declared up front: refused before any instance is made.
    let reply = post(&server, "/p3/small/x?count", full(vec![b'x'; 2 << 20])).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (413, too_large)
    );
    // Streamed without a length: cut off when it crosses the limit, while
    // the 0.3 guest reads it.
    let chunk = [
        format!("{:x}\r\n", 64 << 10).into_bytes(),
        vec![b'x'; 64 << 10],
        b"\r\n".to_vec(),
    ]
    .concat();
    let mut chunks = vec![chunk; 32];
    chunks.push(b"0\r\n\r\n".to_vec());
    let answer = raw_exchange(
        &server,
        "POST /p3/small/x?count HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .into(),
        chunks,
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{answer:.300}"
    );
    assert!(answer.ends_with(too_large), "{answer:.300}");
    // Up to the limit is fine, either way.
    let reply = post(&server, "/p3/small/x?count", chunked(1 << 20)).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "1048576 bytes\n")
    );
    let reply = post(&server, "/p3/small/x?count", full(vec![b'x'; 1 << 20])).await;
    assert_eq!(reply.text(), "1048576 bytes\n");

    // The component's own limit on the request head...
    let answer = raw_get_with_header(&server, "/p3/small/x", 2 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
    let answer = raw_get_with_header(&server, "/p3/small/x", 8 << 10).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer:.300}"
    );
    assert!(
        answer.ends_with("the request head exceeds component `small-echo`'s limit of 4096 bytes\n"),
        "{answer:.500}"
    );
    // ...and the server's, for the other 0.3 components.
    let answer = raw_get_with_header(&server, "/p3/echo/x", 8 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
    assert!(
        answer.contains("x-echo-header-x-big: hhhh"),
        "{answer:.300}"
    );
    let answer = raw_get_with_header(&server, "/p3/echo/x", 32 << 10).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer:.300}"
    );

    for (kind, hits) in [("request_body", 2.0), ("request_headers", 1.0)] {
        let sample = limit_hits("small-echo", kind);
        assert_eq!(server.metric(&sample).await, hits, "{sample}");
    }
    everything_still_serves(&server).await;
}

#[tokio::test]
async fn beyond_its_instances_a_0_3_component_queues_then_refuses_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.queued]
source = {slow_p3:?}
[component.queued.limits]
instances = 1
queue = 1
timeout = "50s"

[[route]]
path = "/p3/queued"
component = "queued"
"#,
        slow_p3 = guests::SLOW_P3,
    );
    let server = both_worlds_with(dir.path(), &extra, &[]);
    let addr = server.addr;
    let gauge = |name: &str| format!("{name}{{component=\"queued\"}}");
    // The first runs, the second waits in the queue...
    let first = tokio::spawn(async move { get(addr, "/p3/queued?ms=6000").await });
    server
        .wait_metric(&gauge("mayfly_instances_in_flight"), 1.0)
        .await;
    let second = tokio::spawn(async move { get(addr, "/p3/queued?ms=10").await });
    server.wait_metric(&gauge("mayfly_queue_length"), 1.0).await;
    // ...and the third finds the queue full, and is told so at once.
    let third = get(server.addr, "/p3/queued?ms=10").await;
    assert!(
        !first.is_finished(),
        "the 503 waited for the running request"
    );
    assert_eq!(third.status, 503);
    assert_eq!(third.header("retry-after"), "1");
    assert_eq!(
        third.text(),
        "component `queued` is at its limit of 1 concurrent requests; retry shortly\n"
    );
    assert_eq!(first.await.unwrap().text(), "slept 6000 ms\n");
    assert_eq!(second.await.unwrap().text(), "slept 10 ms\n");
    server.wait_metric(&gauge("mayfly_queue_length"), 0.0).await;
    server
        .wait_metric(&gauge("mayfly_instances_in_flight"), 0.0)
        .await;
    assert_eq!(
        server.metric(&limit_hits("queued", "concurrency")).await,
        1.0
    );
    assert_eq!(server.metric(&requests("queued", 503)).await, 1.0);
}

#[tokio::test]
async fn time_a_0_3_request_spends_queued_counts_against_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.single]
source = {slow_p3:?}
[component.single.limits]
instances = 1
timeout = "6s"

[[route]]
path = "/p3/single"
component = "single"
"#,
        slow_p3 = guests::SLOW_P3,
    );
    let server = both_worlds_with(dir.path(), &extra, &[]);
    // The first holds the only instance for 4.5 s (its head is in once it
    // runs)...
    let first = crate::harness::in_flight(server.addr, "/p3/single?ms=4500&head_first=1").await;
    let first = crate::harness::rest_of_body(first);
    // ...so the second, which needs 4 s, gets the instance with at most
    // about 1.5 s of its 6 s left.
    let second = get(server.addr, "/p3/single?ms=4000").await;
    assert_eq!(
        (second.status.as_u16(), second.text().as_str()),
        (
            504,
            "component `single` exceeded its request deadline of 6s\n"
        )
    );
    assert_eq!(&first.await.unwrap()[..], b"sleeping\nslept 4500 ms\n");
    assert_eq!(
        get(server.addr, "/p3/single?ms=1500").await.text(),
        "slept 1500 ms\n"
    );
    assert_eq!(server.metric(&limit_hits("single", "deadline")).await, 1.0);
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    // A 0.3 component in the app: the server runs both worlds, with no
    // `--wasi-03`.
    let extra = format!(
        "[component.hello-p3]\nsource = {:?}\n\n[[route]]\npath = \"/p3/hello\"\ncomponent = \"hello-p3\"\n",
        guests::HELLO_P3
    );
    let server = watched(dir.path(), &extra, &[]);
    assert_eq!(get(server.addr, "/").await.text(), V1);

    // Load on `/` all along, on four connections.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, answered, addr) = (stop.clone(), answered.clone(), server.addr);
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let request = Request::get("/").body(full("")).unwrap();
                    seen.push(match client.send(request).await {
                        Ok(reply) => (reply.status.as_u16(), reply.text()),
                        Err(err) => (0, format!("request failed: {err}")),
                    });
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                seen
            })
        })
        .collect();
    // Each version answers a few hundred requests of the load.
    let more_answers = || async {
        let target = answered.load(Ordering::Relaxed) + 300;
        let deadline = Instant::now() + PATIENCE;
        while answered.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
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
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }
    let (mut v1, mut p3) = (0, 0);
    for (status, body) in &seen {
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

#[tokio::test]
async fn metrics_count_0_3_requests_traps_limits_and_instantiations() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds_with(dir.path(), "", &[]);
    for _ in 0..5 {
        assert_eq!(get(server.addr, "/p3/hello").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(attack(&server, "panic").await.0.status, 500);
    }
    assert_eq!(attack(&server, "memory").await.0.status, 500);
    assert_eq!(attack(&server, "sleep").await.0.status, 504);

    for (sample, value) in [
        (requests("hello-p3", 200), 5.0),
        (
            "mayfly_request_duration_seconds_count{component=\"hello-p3\"}".to_string(),
            5.0,
        ),
        (
            "mayfly_instantiation_duration_seconds_count{component=\"hello-p3\"}".to_string(),
            5.0,
        ),
        (requests("hostile-p3", 500), 3.0),
        (requests("hostile-p3", 504), 1.0),
        (
            "mayfly_traps_total{component=\"hostile-p3\"}".to_string(),
            3.0,
        ),
        (limit_hits("hostile-p3", "memory"), 1.0),
        (limit_hits("hostile-p3", "deadline"), 1.0),
        (
            "mayfly_instantiation_duration_seconds_count{component=\"hostile-p3\"}".to_string(),
            4.0,
        ),
        // The 0.2 component beside them: untouched.
        (
            "mayfly_instantiation_duration_seconds_count{component=\"hello\"}".to_string(),
            0.0,
        ),
        ("mayfly_traps_total{component=\"hello\"}".to_string(), 0.0),
    ] {
        assert_eq!(server.metric(&sample).await, value, "{sample}");
    }
    for component in ["hello-p3", "hostile-p3"] {
        server
            .wait_metric(
                &format!("mayfly_instances_in_flight{{component=\"{component}\"}}"),
                0.0,
            )
            .await;
    }
}

#[tokio::test]
async fn output_and_traps_of_0_3_requests_carry_component_and_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds(dir.path(), "");
    let mut client = Client::connect(server.addr).await;

    // An id from upstream is kept, answered, and used in the log: the
    // trap's line, and the guest's own stderr.
    let request = Request::get("/p3/hostile?attack=panic")
        .header("x-request-id", "p3-lb-0001")
        .body(full(""))
        .unwrap();
    let reply = client.send(request).await.unwrap();
    assert_eq!(reply.status, 500);
    assert_eq!(reply.header("x-request-id"), "p3-lb-0001");
    let output = server.wait_for_output(
        "mayfly: component `hostile-p3` request p3-lb-0001 stderr: \
         hostile guest: panicking on purpose",
    );
    assert!(
        output.contains("mayfly: component `hostile-p3` request p3-lb-0001: trapped: "),
        "{output}"
    );

    // Its stdout, line by line, capped per request.
    let request = Request::get("/p3/hostile?attack=print")
        .header("x-request-id", "p3-print-1")
        .body(full(""))
        .unwrap();
    let reply = client.send(request).await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "survived\n")
    );
    let dropped = "more bytes of output dropped (cap 16384 bytes per request)";
    let output = server.wait_for_output(dropped);
    let of_request: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("p3-print-1"))
        .collect();
    let stdout = format!(
        "mayfly: component `hostile-p3` request p3-print-1 stdout: {}",
        "p".repeat(1023)
    );
    let printed = of_request.iter().filter(|line| **line == stdout).count();
    assert!(
        (1..=16).contains(&printed),
        "{printed} lines of stdout:\n{output:.3000}"
    );
    assert!(
        of_request.iter().any(|line| line
            .starts_with("mayfly: component `hostile-p3` request p3-print-1: ")
            && line.ends_with(dropped)),
        "{output:.3000}"
    );
    assert_eq!(of_request.len(), printed + 1, "{of_request:#?}");

    // Without an id, the host makes one up, answers it, and shows it to
    // the 0.3 guest (echo-p3 returns the headers it saw).
    let reply = client.get("/p3/echo/x").await;
    let id = reply.header("x-request-id").to_string();
    assert!(!id.is_empty());
    assert_eq!(reply.header("x-echo-header-x-request-id"), id);
    let reply = client.get("/p3/echo/x").await;
    assert_ne!(reply.header("x-request-id"), id, "two requests, one id");
    // An id with characters a log line should not carry is replaced, for
    // the guest and in the answer.
    let request = Request::get("/p3/echo/x")
        .header("x-request-id", "forged\tcomponent `other` request 1")
        .body(full(""))
        .unwrap();
    let reply = client.send(request).await.unwrap();
    let replaced = reply.header("x-request-id").to_string();
    assert!(
        !replaced.is_empty() && replaced.bytes().all(|b| b.is_ascii_digit()),
        "{replaced:?}"
    );
    assert_eq!(reply.header("x-echo-header-x-request-id"), replaced);
}

#[tokio::test]
async fn json_logs_of_a_0_3_request_carry_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds_with(dir.path(), "", &["--log-format", "json"]);
    let mut client = Client::connect(server.addr).await;
    let request = Request::get("/p3/hostile?attack=panic")
        .header("x-request-id", "p3-json-0001")
        .body(full(""))
        .unwrap();
    assert_eq!(client.send(request).await.unwrap().status, 500);
    let output = server.wait_for_output("hostile guest: panicking on purpose");
    let event = |needle: &str| -> serde_json::Value {
        let line = output
            .lines()
            .find(|line| line.contains("p3-json-0001") && line.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` line in:\n{output}"));
        serde_json::from_str(line).unwrap()
    };
    let trapped = event("trapped");
    assert_eq!(trapped["component"], "hostile-p3");
    assert_eq!(trapped["request_id"], "p3-json-0001");
    assert_eq!(trapped["level"], "WARN");
    assert!(
        trapped["message"]
            .as_str()
            .unwrap()
            .starts_with("trapped: "),
        "{trapped}"
    );
    let stderr = event("hostile guest: panicking on purpose");
    assert_eq!(stderr["component"], "hostile-p3");
    assert_eq!(stderr["request_id"], "p3-json-0001");
    assert_eq!(stderr["stream"], "stderr");
}

/// Starts `attack=panic-mid-body` on `/p3/cut` with a request body it
/// waits for, reads the response until `partial\n` has come, then ends the
/// request body (and so makes the guest trap); returns everything the
/// server sent until it closed the connection.
async fn cut_mid_body(server: &Server) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /p3/cut?attack=panic-mid-body HTTP/1.1\r\nhost: x\r\n\
              transfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("partial\n") {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("the start of the body never came")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    // (A reset, rather than a close, also ends it.)
    let _ = tokio::time::timeout(BOUND, stream.read_to_end(&mut received))
        .await
        .expect("the connection was left open after the body was cut");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_0_3_guest_trapping_mid_body_cuts_the_response_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[component.cut]\nsource = {:?}\n\n[[route]]\npath = \"/p3/cut\"\ncomponent = \"cut\"\n",
        guests::HOSTILE_P3
    );
    let server = both_worlds_with(dir.path(), &extra, &[]);
    for _ in 0..2 {
        // The head and what was sent, then the connection ends without the
        // last chunk that a whole body ends with.
        let answer = cut_mid_body(&server).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n8\r\npartial\n\r\n"), "{answer}");
    }
    // Counted and logged as the trap it is, against its component and
    // request.
    server
        .wait_metric("mayfly_traps_total{component=\"cut\"}", 2.0)
        .await;
    let output =
        server.wait_for_output_times(" stderr: hostile guest: panicking mid-body on purpose", 2);
    for line in output
        .lines()
        .filter(|line| line.contains("panicking mid-body"))
    {
        assert!(
            line.starts_with("mayfly: component `cut` request "),
            "{line}"
        );
    }
    let trapped = output
        .lines()
        .filter(|line| {
            line.starts_with("mayfly: component `cut` request ")
                && line.contains(": trapped: wasm trap: wasm `unreachable` instruction executed")
        })
        .count();
    assert_eq!(trapped, 2, "{output}");
    everything_still_serves(&server).await;
}

/// A response the guest finished (body ended, trailers sent) is whole,
/// whatever the instance does after it.
#[tokio::test]
async fn a_0_3_guest_trapping_after_its_whole_response_leaves_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = both_worlds_with(dir.path(), "", &[]);
    for _ in 0..3 {
        let streamed = get_streamed(server.addr, "/p3/hostile?attack=panic-after-body").await;
        assert_eq!(streamed.status, 200);
        assert_eq!(streamed.received, "whole\n".len(), "{streamed:?}");
        assert!(
            streamed.error.is_none(),
            "a finished body was cut: {streamed:?}"
        );
    }
    // The trap is still counted and logged.
    server
        .wait_metric("mayfly_traps_total{component=\"hostile-p3\"}", 3.0)
        .await;
    server.wait_for_output_times(
        " stderr: hostile guest: panicking after the body on purpose",
        3,
    );
    everything_still_serves(&server).await;
}

#[tokio::test]
async fn a_0_3_guest_reading_a_stalled_body_gets_408_and_a_dripped_one_streams() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    // Pauses of 200 ms against a 3 s timeout: room for a loaded machine.
    // The dripped body takes 4 s in all: the timeout is on each pause, not
    // on the whole body.
    let server = both_worlds_with(dir.path(), "", &["--body-timeout", "3s"]);

    // Ten bytes of a hundred, then nothing.
    let answer = raw_exchange(
        &server,
        "POST /p3/echo/x?count HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n".into(),
        vec![vec![b'x'; 10]],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.ends_with("the request body paused for more than 3s\n"),
        "{answer}"
    );
    server.wait_for_output("the client paused its request body for more than 3s");
    server
        .wait_metric("mayfly_client_timeouts_total{kind=\"body\"}", 1.0)
        .await;

    // A body that keeps coming, a little at a time, is echoed as it comes:
    // each piece is back before the next is sent.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /p3/echo/drip HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\
              transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    for piece in ('a'..='t').map(String::from) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream
            .write_all(format!("1\r\n{piece}\r\n").as_bytes())
            .await
            .unwrap();
        let echoed = format!("\r\n1\r\n{piece}\r\n");
        while !String::from_utf8_lossy(&received).contains(&echoed) {
            let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("`{piece}` was not echoed while the body went on"))
                .unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buf[..n]);
        }
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut received))
        .await
        .expect("the echo never ended")
        .unwrap();
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.ends_with("\r\n1\r\nt\r\n0\r\nx-echoed-bytes: 20\r\n\r\n"),
        "{answer}"
    );
    everything_still_serves(&server).await;
}

#[tokio::test]
async fn a_client_that_never_reads_a_0_3_body_is_cut_off() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    // A deadline far beyond the write timeout: only the latter can end the
    // response.
    let extra = format!(
        r#"
[component.endless]
source = {hostile_p3:?}
[component.endless.limits]
timeout = "5s"

[[route]]
path = "/p3/endless"
component = "endless"
"#,
        hostile_p3 = guests::HOSTILE_P3,
    );
    let server = both_worlds_with(dir.path(), &extra, &["--write-timeout", "1s"]);
    // The body never ends; the client reads none of it.
    let mut deaf = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    deaf.write_all(b"GET /p3/endless?attack=endless-body HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    server
        .wait_metric("mayfly_client_timeouts_total{kind=\"write\"}", 1.0)
        .await;
    // The connection is closed: what was sent before it, then the end.
    let mut received = Vec::new();
    {
        use tokio::io::AsyncReadExt as _;
        tokio::time::timeout(BOUND, deaf.read_to_end(&mut received))
            .await
            .expect("the server never closed the connection")
            .unwrap();
    }
    assert!(
        received.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&received[..64.min(received.len())])
    );
    server.wait_metric("mayfly_open_connections", 0.0).await;
    // The guest, left writing to nobody, is ended at its deadline.
    server
        .wait_metric("mayfly_instances_in_flight{component=\"endless\"}", 0.0)
        .await;
    server.wait_for_output("component `endless` request 1: request deadline of 5s exceeded");
    everything_still_serves(&server).await;
}
