//! What only a WASI 0.3 guest can do, all of it component-model async: a
//! body is a stream that ends with trailers (or with an error, which the
//! client sees as a body cut short), a task may outlive its response, and
//! stream and future handles are resources of their own. Each is bounded
//! as the rest of a guest is: by its deadline, its fuel and its tables.
//! (Everything a 0.3 guest shares with its 0.2 twin is tested for both, in
//! the module of its concern.)

use std::path::Path;
use std::time::{Duration, Instant};

use crate::guests;
use crate::harness::{Server, get, get_streamed, raw, write_file};

/// Generous for a loaded 2-core machine, far below the attacks' own
/// durations (forever, or ten minutes).
const BOUND: Duration = Duration::from_secs(30);

const FRESH: &str = "count=1 heap_items=1 pages_at_start=";

const TOKEN: &str = "wasi03-test-admin-token-0123";

/// 0.2 `hello` at `/`, the 0.3 guests under `/p3/...`, `hostile-p3`
/// limited to 1 s and 32 MiB; `extra` is more of the manifest, `args` more
/// of `mayfly serve`'s; the admin API on, for `/metrics`.
fn app(dir: &Path, extra: &str, args: &[&str]) -> Server {
    let manifest = format!(
        r#"
[component.hello]
source = {hello:?}
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
async fn bodies_stream_with_trailers_and_a_guest_error_cuts_them_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path(), "", &[]);
    // Trailers, on the wire.
    let answer = raw::exchange(
        server.addr,
        "POST /p3/echo/t HTTP/1.1\r\nhost: x\r\nte: trailers\r\ncontent-length: 9\r\n\
         connection: close\r\n\r\nping body",
        Vec::new(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("ping body\r\n0\r\nx-echoed-bytes: 9\r\n"),
        "no trailer: {answer}"
    );

    // A guest error mid-body cuts the response visibly: what was sent
    // arrives, and the body never ends as a whole one does.
    let answer = raw::exchange(
        server.addr,
        "POST /p3/echo/x?fail-after=3 HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\
         connection: close\r\n\r\nabcdefgh",
        Vec::new(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nabc\r\n"), "{answer}");
    assert!(
        !answer.ends_with("0\r\n\r\n"),
        "the cut body ended cleanly: {answer}"
    );
    assert!(!answer.contains("defgh"), "{answer}");
    server.wait_for_output("component `echo-p3` request");
    // A head sent first, then lines one by one: it streams.
    let started = Instant::now();
    let dripped = get_streamed(server.addr, "/p3/slow?drip=5").await;
    assert_eq!(dripped.status, 200);
    assert!(dripped.error.is_none());
    assert!(started.elapsed() >= Duration::from_millis(400));
    everything_still_serves(&server).await;
}

#[tokio::test]
async fn tasks_streams_and_randomness_are_contained() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path(), "", &[]);

    // Streams, futures and tasks are component-model handles, bounded per
    // store too.
    let (reply, _) = attack(&server, "streams").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("store handle limit exceeded"),
        "{}",
        reply.text()
    );

    // Random bytes cost the guest's own memory, nothing of the host's.
    let (reply, _) = attack(&server, "random").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("memory limit of 32MiB reached"),
        "{}",
        reply.text()
    );

    // Tasks left running after the response: the response is whole, and
    // the deadline still ends them (logged like any other overrun).
    for how in ["spin", "yield", "sleep"] {
        let (reply, took) = attack(&server, &format!("tasks&how={how}")).await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "task spawned\n"),
            "{how}"
        );
        assert!(took < Duration::from_millis(900), "{how}: {took:?}");
    }
    server.wait_for_output_times("request deadline of 1s exceeded", 3);
    server
        .wait_metric("mayfly_instances_in_flight{component=\"hostile-p3\"}", 0.0)
        .await;
    everything_still_serves(&server).await;
}

/// A task left spinning after a whole response runs out of fuel, long
/// before its ten-minute deadline. (With fuel for about a second of
/// spinning, so that the response is out first.)
#[tokio::test]
async fn a_task_left_spinning_runs_out_of_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[component.metered-task]
source = {hostile_p3:?}
[component.metered-task.limits]
fuel = 2_000_000_000
timeout = "10m"

[[route]]
path = "/p3/metered-task"
component = "metered-task"
"#,
        hostile_p3 = guests::HOSTILE_P3,
    );
    let server = app(dir.path(), &extra, &[]);
    let reply = get(server.addr, "/p3/metered-task?attack=tasks&how=spin").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "task spawned\n")
    );
    server
        .wait_metric(
            "mayfly_limit_hits_total{component=\"metered-task\",kind=\"fuel\"}",
            1.0,
        )
        .await;
    server
        .wait_metric(
            "mayfly_instances_in_flight{component=\"metered-task\"}",
            0.0,
        )
        .await;
    let output = server.wait_for_output("all fuel consumed by WebAssembly");
    let trapped: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("all fuel consumed by WebAssembly"))
        .collect();
    assert_eq!(trapped.len(), 1, "{output}");
    assert!(
        trapped[0].starts_with("mayfly: component `metered-task` request ")
            && trapped[0].contains(": trapped: "),
        "{}",
        trapped[0]
    );
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
    everything_still_serves(&server).await;
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
    let server = app(dir.path(), &extra, &[]);
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
