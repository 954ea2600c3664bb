//! Limits: each one, when hit, gives the client its status and a short
//! reason, and the server goes on serving, whichever world the component
//! is of.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::guests;
use crate::harness::{
    Body, Client, MAYFLY, Reply, Server, World, for_both_worlds, full, get, raw, write_file,
};

const BOUND: Duration = Duration::from_secs(30);

/// An app with `hello`, `echo`, `slow` and `hostile` of `world`, the last
/// three each with `limits` (TOML lines for its `[component.NAME.limits]`
/// table); the admin API on, for `/metrics`.
fn app(dir: &Path, world: World, echo: &str, slow: &str, hostile: &str, args: &[&str]) -> Server {
    let manifest = format!(
        r#"
[component.hello]
source = {hello:?}
[component.echo]
source = {echo_wasm:?}
[component.echo.limits]
{echo}
[component.slow]
source = {slow_wasm:?}
[component.slow.limits]
{slow}
[component.hostile]
source = {hostile_wasm:?}
[component.hostile.limits]
{hostile}

[[route]]
path = "/"
component = "hello"
[[route]]
path = "/echo/..."
component = "echo"
[[route]]
path = "/slow"
component = "slow"
[[route]]
path = "/hostile"
component = "hostile"
"#,
        hello = world.hello(),
        echo_wasm = world.echo(),
        slow_wasm = world.slow(),
        hostile_wasm = world.hostile(),
    );
    let manifest = write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", "a token of sixteen or more");
    let mut all = vec![
        manifest.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    Server::start_with(&all)
}

/// Every component of the app still answers normally.
async fn still_serves(server: &Server) {
    assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
    let mut client = Client::connect(server.addr).await;
    let request = Request::post("/echo/x?count").body(full("abc")).unwrap();
    assert_eq!(client.send(request).await.unwrap().text(), "3 bytes\n");
    assert_eq!(get(server.addr, "/slow?ms=1").await.text(), "slept 1 ms\n");
    let reply = get(server.addr, "/hostile?attack=none").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "ok\n")
    );
}

/// Times `component` hit its limit of `kind`, as `/metrics` counts them.
fn limit_hits(component: &str, kind: &str) -> String {
    format!("mayfly_limit_hits_total{{component=\"{component}\",kind=\"{kind}\"}}")
}

/// A body of `len` bytes sent in 64 KiB chunks, with no Content-Length.
fn chunked(len: usize) -> Body {
    let chunks = (0..len).step_by(64 << 10).map(move |start| {
        let n = (64 << 10).min(len - start);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(vec![b'x'; n])))
    });
    StreamBody::new(futures_util::stream::iter(chunks)).boxed()
}

async fn post(server: &Server, path: &str, body: Body) -> Result<Reply, hyper::Error> {
    let mut client = Client::connect(server.addr).await;
    let request = Request::post(path).body(body).unwrap();
    tokio::time::timeout(BOUND, client.send(request))
        .await
        .unwrap_or_else(|_| panic!("POST {path} took longer than {BOUND:?}"))
}

/// POSTs `len` bytes with chunked encoding over a raw socket, ignoring
/// write errors, and returns whatever the server answered.
async fn raw_chunked_post(server: &Server, path: &str, len: usize) -> String {
    let head = format!("POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = [
        format!("{:x}\r\n", 64 << 10).into_bytes(),
        vec![b'x'; 64 << 10],
        b"\r\n".to_vec(),
    ]
    .concat();
    let mut chunks = vec![chunk; len / (64 << 10)];
    chunks.push(b"0\r\n\r\n".to_vec());
    raw::exchange(server.addr, head, chunks).await
}

/// A request head of about `bytes` bytes to `/echo/x`, sent raw.
async fn raw_request_with_header(server: &Server, bytes: usize) -> String {
    raw_get_with_header(server, "/echo/x", bytes).await
}

/// A request head of about `bytes` bytes to `path`, sent raw.
async fn raw_get_with_header(server: &Server, path: &str, bytes: usize) -> String {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(bytes)
    );
    raw::exchange(server.addr, head, Vec::new()).await
}

for_both_worlds! {
    async fn a_request_body_over_the_limit_gets_413(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app(dir.path(), world, "request_body = \"1MiB\"", "", "", &[]);
        let too_large = "request body exceeds component `echo`'s limit of 1048576 bytes\n";

        // Declared up front: refused before any instance is made.
        let reply = post(&server, "/echo/x?count", full(vec![b'x'; 2 << 20]))
            .await
            .unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (413, too_large)
        );

        // Streamed without a length: cut off when it crosses the limit,
        // while the guest reads it.
        let answer = raw_chunked_post(&server, "/echo/x?count", 2 << 20).await;
        assert!(
            answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
            "{answer:.300}"
        );
        assert!(answer.ends_with(too_large), "{answer:.300}");

        // Up to the limit is fine, either way.
        let reply = post(&server, "/echo/x?count", chunked(1 << 20))
            .await
            .unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "1048576 bytes\n")
        );
        let reply = post(&server, "/echo/x?count", full(vec![b'x'; 1 << 20]))
            .await
            .unwrap();
        assert_eq!(reply.text(), "1048576 bytes\n");
        let sample = limit_hits("echo", "request_body");
        assert_eq!(server.metric(&sample).await, 2.0, "{sample}");
        still_serves(&server).await;
    }

    async fn request_headers_over_the_limit_get_431(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app(dir.path(), world, "", "", "", &["--max-header-bytes", "16KiB"]);
        let answer = raw_request_with_header(&server, 8 << 10).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
        assert!(
            answer.contains("x-echo-header-x-big: hhhh"),
            "{answer:.300}"
        );

        let answer = raw_request_with_header(&server, 32 << 10).await;
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer:.300}"
        );
        still_serves(&server).await;
        drop(server);

        // The default is 64 KiB.
        let default = app(dir.path(), world, "", "", "", &[]);
        let answer = raw_request_with_header(&default, 32 << 10).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
        let answer = raw_request_with_header(&default, 100 << 10).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:.300}");
    }

    async fn a_component_can_accept_smaller_request_heads_than_the_server(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app(dir.path(), world, r#"request_headers = "4KiB""#, "", "", &[]);
        let answer = raw_get_with_header(&server, "/echo/x", 2 << 10).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
        let answer = raw_get_with_header(&server, "/echo/x", 8 << 10).await;
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer:.300}"
        );
        assert!(
            answer.ends_with("the request head exceeds component `echo`'s limit of 4096 bytes\n"),
            "{answer:.500}"
        );
        // The other components keep the server's 64 KiB.
        let answer = raw_get_with_header(&server, "/", 8 << 10).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
        assert!(answer.contains("Hello from Mayfly!\n"), "{answer:.300}");
        for (kind, hits) in [("request_headers", 1.0), ("request_body", 0.0)] {
            let sample = limit_hits("echo", kind);
            assert_eq!(server.metric(&sample).await, hits, "{sample}");
        }
        still_serves(&server).await;
    }
}

#[tokio::test]
async fn a_bad_max_header_bytes_flag_is_refused() {
    let output = std::process::Command::new(MAYFLY)
        .args(["serve", "--max-header-bytes", "1KiB"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "invalid value '1KiB' for '--max-header-bytes <SIZE>': must be between 8KiB and 16MiB"
        ),
        "{stderr}"
    );
}

for_both_worlds! {
    async fn too_many_response_headers_get_502(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app(dir.path(), world, "", "", "response_headers = 50", &[]);
        let reply = get(server.addr, "/hostile?attack=headers&count=1000").await;
        assert_eq!(reply.status, 502);
        assert_eq!(
            reply.text(),
            "component `hostile` sent 1000 response headers; the limit is 50\n"
        );
        // (The test client reads at most 100 headers.)
        let reply = get(server.addr, "/hostile?attack=headers&count=50").await;
        assert_eq!(reply.status, 200);
        // Theirs, and the host's `x-request-id`, `transfer-encoding` and `date`.
        assert_eq!(reply.headers.len(), 50 + 3, "{:?}", reply.headers.keys());
        assert_eq!(reply.header("x-flood-49"), "1");
        let reply = get(server.addr, "/hostile?attack=headers&count=51").await;
        assert_eq!(reply.status, 502);

        // More than fits in a header block is refused while the guest builds
        // it: WASI 0.2 traps the guest; 0.3 tells it, and it sends what fit.
        let reply = get(server.addr, "/hostile?attack=headers&count=100000").await;
        let text = reply.text();
        match world {
            World::P2 => assert_eq!(
                (reply.status.as_u16(), text.as_str()),
                (
                    500,
                    "component `hostile` failed: host error: total size of fields exceeds limit\n"
                )
            ),
            World::P3 => {
                assert_eq!(reply.status, 502, "{text}");
                assert!(
                    text.starts_with("component `hostile` sent ")
                        && text.ends_with(" response headers; the limit is 50\n"),
                    "{text}"
                );
            }
        }
        // A 502 (or 413, 431) the guest chose is its answer, not a limit
        // hit: the metrics count the refusals above and nothing else.
        for status in ["502", "413", "431"] {
            let reply = get(
                server.addr,
                &format!("/hostile?attack=none&status={status}"),
            )
            .await;
            assert_eq!(reply.status.as_str(), status);
        }
        let refused = match world {
            World::P2 => 2.0,
            World::P3 => 3.0,
        };
        for (kind, hits) in [
            ("response_headers", refused),
            ("request_body", 0.0),
            ("request_headers", 0.0),
        ] {
            let sample = limit_hits("hostile", kind);
            assert_eq!(server.metric(&sample).await, hits, "{sample}");
        }
        still_serves(&server).await;
    }

    async fn the_resource_table_fills_up_and_the_guest_is_stopped(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app(dir.path(), world, "", "", "resources = 64", &[]);
        // (Each world's `wasi:http` says where it was refused.)
        let refused = match world {
            World::P2 => "[new_fields] pushing fields",
            World::P3 => "failed to push fields to table",
        };
        for _ in 0..3 {
            let reply = get(server.addr, "/hostile?attack=resources").await;
            assert_eq!(reply.status, 500);
            assert_eq!(
                reply.text(),
                format!(
                    "component `hostile` failed: host error: {refused}: \
                     resource table has no free keys\n"
                )
            );
        }
        still_serves(&server).await;
    }

    async fn fuel_runs_out_deterministically(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app(
            dir.path(),
            world,
            "",
            "",
            "fuel = 50_000_000\ntimeout = \"10m\"",
            &[],
        );
        let out_of_fuel =
            "component `hostile` failed: wasm trap: all fuel consumed by WebAssembly\n";
        for _ in 0..2 {
            let started = Instant::now();
            let reply = tokio::time::timeout(BOUND, get(server.addr, "/hostile?attack=loop"))
                .await
                .expect("the loop did not run out of fuel");
            assert_eq!(
                (reply.status.as_u16(), reply.text().as_str()),
                (500, out_of_fuel)
            );
            assert!(started.elapsed() < BOUND);
        }
        // The fuel is plenty for a request that does its work.
        let reply = get(server.addr, "/hostile?attack=none").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "ok\n")
        );
        assert_eq!(server.metric(&limit_hits("hostile", "fuel")).await, 2.0);
        let output = server.wait_for_output_times("all fuel consumed by WebAssembly", 2);
        for line in output
            .lines()
            .filter(|line| line.contains("all fuel consumed by WebAssembly"))
        {
            assert!(
                line.starts_with("mayfly: component `hostile` request ")
                    && line.contains(": trapped: "),
                "{line}"
            );
        }
        // Components without a fuel limit run unmetered on the same engine.
        still_serves(&server).await;
        assert_eq!(server.metric(&limit_hits("slow", "fuel")).await, 0.0);
    }

    async fn time_spent_queueing_counts_against_the_deadline(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app(dir.path(), world, "", "instances = 1\ntimeout = \"6s\"", "", &[]);
        // The first holds the only instance for 4.5 s (its head is in once it
        // runs)...
        let first = crate::harness::in_flight(server.addr, "/slow?ms=4500&head_first=1").await;
        let first = crate::harness::rest_of_body(first);
        // ...so the second, which needs 4 s, gets the instance with at most
        // about 1.5 s of its 6 s left.
        let second = get(server.addr, "/slow?ms=4000").await;
        assert_eq!(second.status, 504);
        assert_eq!(
            second.text(),
            "component `slow` exceeded its request deadline of 6s\n"
        );
        assert_eq!(&first.await.unwrap()[..], b"sleeping\nslept 4500 ms\n");
        assert_eq!(
            get(server.addr, "/slow?ms=1500").await.text(),
            "slept 1500 ms\n"
        );
        assert_eq!(server.metric(&limit_hits("slow", "deadline")).await, 1.0);
    }

    /// A Rust guest cannot grow a table, but it starts with one: a limit
    /// below that refuses every instance, as a limit the guest grows past
    /// would.
    async fn a_guest_beyond_its_initial_table_limit_fails_with_its_reason(world: World) {
        let size = initial_table_elements(world.hostile());
        let below = size - 1;
        let dir = tempfile::tempdir().unwrap();
        let server = app(
            dir.path(),
            world,
            "",
            "",
            &format!("table_elements = {below}"),
            &[],
        );
        for _ in 0..2 {
            let started = Instant::now();
            let reply = get(server.addr, "/hostile?attack=none").await;
            assert!(started.elapsed() < BOUND);
            assert_eq!(
                (reply.status.as_u16(), reply.text()),
                (
                    500,
                    format!(
                        "component `hostile` failed: table limit of {below} elements reached \
                         (host error: table minimum size of {size} elements exceeds table limits)\n"
                    )
                )
            );
            // The next request is served, by every other component.
            assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
        }
        server.wait_for_output(&format!(
            "mayfly: component `hostile` request 1: trapped: table limit of {below} elements \
             reached: table minimum size of {size} elements"
        ));
        assert_eq!(server.metric(&limit_hits("hostile", "table_elements")).await, 2.0);
        assert_eq!(
            server
                .metric("mayfly_requests_total{component=\"hostile\",status=\"500\"}")
                .await,
            2.0
        );
        drop(server);
        // A limit of exactly its table: it serves.
        let server = app(
            dir.path(),
            world,
            "",
            "",
            &format!("table_elements = {size}"),
            &[],
        );
        still_serves(&server).await;
        assert_eq!(server.metric(&limit_hits("hostile", "table_elements")).await, 0.0);
    }
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

/// A `wasi:http/proxy` handler, in WAT, that grows a table of one element
/// by `GROWTH` elements, and traps if the growth was refused.
const TABLE_GROWER: &str = r#"(component
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $request))
  (alias export $types "response-outparam" (type $outparam))
  (core module $m
    (table $t 1 funcref)
    (func (export "handle") (param i32 i32)
      (if (i32.eq (table.grow $t (ref.null func) (i32.const GROWTH)) (i32.const -1))
        (then unreachable))
      unreachable))
  (core instance $i (instantiate $m))
  (func $handle (param "request" (own $request)) (param "response-out" (own $outparam))
    (canon lift (core func $i "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#;

#[tokio::test]
async fn table_growth_past_the_limit_fails_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (growth, file) in [("5000", "big.wasm"), ("10", "small.wasm")] {
        let wasm = wat::parse_str(TABLE_GROWER.replace("GROWTH", growth)).unwrap();
        write_file(dir.path(), file, wasm);
    }
    let manifest = format!(
        r#"
[component.big]
source = "big.wasm"
[component.big.limits]
table_elements = 1000
[component.small]
source = "small.wasm"
[component.small.limits]
table_elements = 1000
[component.hello]
source = {:?}

[[route]]
path = "/big"
component = "big"
[[route]]
path = "/small"
component = "small"
[[route]]
path = "/"
component = "hello"
"#,
        guests::HELLO
    );
    let manifest = write_file(dir.path(), "app.toml", manifest);
    let token = write_file(dir.path(), "token", "a token of sixteen or more");
    let server = Server::start_with(&[
        manifest.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ]);
    for _ in 0..2 {
        let started = Instant::now();
        let reply = get(server.addr, "/big").await;
        assert!(started.elapsed() < BOUND);
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.text(),
            "component `big` failed: table limit of 1000 elements reached \
             (wasm trap: wasm `unreachable` instruction executed)\n"
        );
    }
    // Growth within the limit succeeds (and this guest then traps anyway,
    // with no limit to blame).
    let reply = get(server.addr, "/small").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (
            500,
            "component `small` failed: wasm trap: wasm `unreachable` instruction executed\n"
        )
    );
    assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
    for (component, hits) in [("big", 2.0), ("small", 0.0)] {
        let sample =
            format!("mayfly_limit_hits_total{{component=\"{component}\",kind=\"table_elements\"}}");
        assert_eq!(server.metric(&sample).await, hits, "{sample}");
    }
}

#[tokio::test]
async fn a_component_needing_too_many_memories_is_refused_at_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let greedy = wat::parse_str(
        r#"(component
             (core module $m (memory 1))
             (core instance (instantiate $m))
             (core instance (instantiate $m))
             (core instance (instantiate $m)))"#,
    )
    .unwrap();
    let file = write_file(dir.path(), "greedy.wasm", greedy);
    let manifest = write_file(
        dir.path(),
        "app.toml",
        format!(
            "[component.hello]\nsource = {:?}\n[component.greedy]\nsource = \"greedy.wasm\"\n\n\
             [[route]]\npath = \"/\"\ncomponent = \"hello\"\n\
             [[route]]\npath = \"/greedy\"\ncomponent = \"greedy\"\n",
            guests::HELLO
        ),
    );
    let started = Instant::now();
    let output = crate::harness::run_mayfly(&[
        std::ffi::OsStr::new("serve"),
        manifest.as_os_str(),
        std::ffi::OsStr::new("--listen"),
        std::ffi::OsStr::new("127.0.0.1:0"),
        std::ffi::OsStr::new("--no-cache"),
    ]);
    assert!(started.elapsed() < BOUND);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "component `greedy` (component.greedy.source = {}): ",
        file.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains(
            "The component transitively contains 3 Wasm linear memories, which exceeds \
             the configured maximum of 2 in the pooling allocator"
        ),
        "{stderr}"
    );
}

/// A component may hold as many requests in flight as the server has
/// instance slots: `instances` is bounded by `--max-instances`, checked
/// when the app loads, not by a constant.
#[tokio::test]
async fn instances_are_bounded_by_the_servers_max_instances() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_file(
        dir.path(),
        "app.toml",
        format!(
            "[component.hello]\nsource = {:?}\n[component.hello.limits]\ninstances = 10000\n\n\
             [[route]]\npath = \"/\"\ncomponent = \"hello\"\n",
            guests::HELLO
        ),
    );
    let manifest = manifest.to_str().unwrap();

    // 10,000 of a server's 20,000 slots: it loads, and serves.
    let server = Server::start_with(&[manifest, "--max-instances", "20000"]);
    let reply = get(server.addr, "/").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "Hello from Mayfly!\n")
    );
    drop(server);

    // More than the server has: refused at start-up, naming the field and
    // both numbers, by `serve` and by `check`.
    let expected = "field `component.hello.limits.instances`: 10000 instances is more than \
                    this server's --max-instances of 1000";
    for command in ["serve", "check"] {
        let mut args = vec![command, manifest, "--no-cache"];
        if command == "serve" {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let output = crate::harness::run_mayfly(&args);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(1), "{command}: {printed}");
        assert!(printed.contains(expected), "{command}: {printed}");
    }
    // ...and `check` with the server's setting agrees that it fits.
    let args = ["check", manifest, "--no-cache", "--max-instances", "20000"];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let output = crate::harness::run_mayfly(&args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
