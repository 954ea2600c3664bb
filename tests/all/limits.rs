//! Limits: each one, when hit, gives the client its status and a short
//! reason, and the server goes on serving.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::guests;
use crate::harness::{Body, Client, MAYFLY, Reply, Server, full, get, write_file};

const BOUND: Duration = Duration::from_secs(30);

/// An app with `echo`, `slow` and `hostile`, each with `limits` (TOML lines
/// for its `[component.NAME.limits]` table).
fn app(dir: &Path, echo: &str, slow: &str, hostile: &str, args: &[&str]) -> Server {
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
        hello = guests::HELLO,
        echo_wasm = guests::ECHO,
        slow_wasm = guests::SLOW,
        hostile_wasm = guests::HOSTILE,
    );
    let manifest = write_file(dir, "app.toml", manifest);
    let mut all = vec![manifest.to_str().unwrap()];
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

#[tokio::test]
async fn a_request_body_over_the_limit_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path(), "request_body = \"1MiB\"", "", "", &[]);
    let too_large = "request body exceeds component `echo`'s limit of 1048576 bytes\n";

    // Declared up front: refused before any instance is made.
    let reply = post(&server, "/echo/x?count", full(vec![b'x'; 2 << 20]))
        .await
        .unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (413, too_large)
    );

    // Streamed without a length: cut off when it crosses the limit.
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
    assert_eq!(reply.text(), "1048576 bytes\n");
    let reply = post(&server, "/echo/x?count", full(vec![b'x'; 1 << 20]))
        .await
        .unwrap();
    assert_eq!(reply.text(), "1048576 bytes\n");
    still_serves(&server).await;
}

/// POSTs `len` bytes with chunked encoding over a raw socket, ignoring
/// write errors, and returns whatever the server answered.
async fn raw_chunked_post(server: &Server, path: &str, len: usize) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!("POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..len / chunk.len() {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
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

/// A request head of about `bytes` bytes to `/echo/x`, sent raw.
async fn raw_request_with_header(server: &Server, bytes: usize) -> String {
    raw_get_with_header(server, "/echo/x", bytes).await
}

/// A request head of about `bytes` bytes to `path`, sent raw.
async fn raw_get_with_header(server: &Server, path: &str, bytes: usize) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(bytes)
    );
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(BOUND, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn request_headers_over_the_limit_get_431() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path(), "", "", "", &["--max-header-bytes", "16KiB"]);
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

    // The default is 64 KiB.
    let default = app(dir.path(), "", "", "", &[]);
    let answer = raw_request_with_header(&default, 32 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
    let answer = raw_request_with_header(&default, 100 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:.300}");
}

#[tokio::test]
async fn a_component_can_accept_smaller_request_heads_than_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path(), r#"request_headers = "4KiB""#, "", "", &[]);
    let answer = raw_get_with_header(&server, "/echo/x", 2 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
    let answer = raw_get_with_header(&server, "/echo/x", 8 << 10).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer:.300}"
    );
    assert!(
        answer.contains("the request head exceeds component `echo`'s limit of 4096 bytes\n"),
        "{answer:.500}"
    );
    // The other components keep the server's 64 KiB.
    let answer = raw_get_with_header(&server, "/", 8 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:.300}");
    assert!(answer.contains("Hello from Mayfly!\n"), "{answer:.300}");
    still_serves(&server).await;
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

#[tokio::test]
async fn too_many_response_headers_get_502() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_file(dir.path(), "token", "a token of sixteen or more");
    let server = app(
        dir.path(),
        "",
        "",
        "response_headers = 50",
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-file",
            token.to_str().unwrap(),
        ],
    );
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

    // More than fits in a header block is refused while the guest builds it.
    let reply = get(server.addr, "/hostile?attack=headers&count=100000").await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.text(),
        "component `hostile` failed: host error: total size of fields exceeds limit\n"
    );
    // A 502 (or 413, 431) the guest chose is its answer, not a limit hit:
    // the metrics count the two refusals above and nothing else.
    for status in ["502", "413", "431"] {
        let reply = get(
            server.addr,
            &format!("/hostile?attack=none&status={status}"),
        )
        .await;
        assert_eq!(reply.status.as_str(), status);
    }
    for (kind, hits) in [
        ("response_headers", 2.0),
        ("request_body", 0.0),
        ("request_headers", 0.0),
    ] {
        let sample = format!("mayfly_limit_hits_total{{component=\"hostile\",kind=\"{kind}\"}}");
        assert_eq!(server.metric(&sample).await, hits, "{sample}");
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn the_resource_table_fills_up_and_the_guest_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path(), "", "", "resources = 64", &[]);
    for _ in 0..3 {
        let reply = get(server.addr, "/hostile?attack=resources").await;
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.text(),
            "component `hostile` failed: host error: [new_fields] pushing fields: \
             resource table has no free keys\n"
        );
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn fuel_runs_out_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(
        dir.path(),
        "",
        "",
        "fuel = 50_000_000\ntimeout = \"10m\"",
        &[],
    );
    let started = Instant::now();
    let reply = tokio::time::timeout(BOUND, get(server.addr, "/hostile?attack=loop"))
        .await
        .expect("the loop did not run out of fuel");
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.text(),
        "component `hostile` failed: wasm trap: all fuel consumed by WebAssembly\n"
    );
    assert!(started.elapsed() < BOUND);
    // Components without a fuel limit run unmetered on the same engine.
    still_serves(&server).await;
}

#[tokio::test]
async fn time_spent_queueing_counts_against_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path(), "", "instances = 1\ntimeout = \"6s\"", "", &[]);
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
