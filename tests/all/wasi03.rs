//! WASI 0.3 components (`wasi:http/service@0.3`, `wasi:cli@0.3`) next to
//! WASI 0.2 ones, with the same isolation: a fresh instance per request,
//! the same limits, grants and errors. The guests are the `*-p3` twins of
//! the 0.2 guests and answer the same way.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use http::Request;

use crate::guests;
use crate::harness::{Client, Server, full, get, get_streamed, run_mayfly, write_file};

/// Generous for a loaded 2-core machine, far below the attacks' own
/// durations (forever, or ten minutes).
const BOUND: Duration = Duration::from_secs(30);

const FRESH: &str = "count=1 heap_items=1 pages_at_start=";

/// An app of both worlds: 0.2 `hello` at `/` and `probe` at `/probe`,
/// 0.3 twins under `/p3/...`, and `hostile-p3` limited to 1 s and 32 MiB.
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
    Server::start(&app)
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
            .contains("the instance built 1048576 bytes of headers on the host, its limit"),
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
