//! Clients that hold the server's resources by being slow: a body that
//! stalls, a response nobody reads, and thousands of idle connections.
//! Each is bounded (`--body-timeout`, `--write-timeout`,
//! `--header-timeout`, `--max-connections`), counted in
//! `mayfly_client_timeouts_total` and `mayfly_open_connections`, and the
//! server keeps answering everyone else, whichever world its components
//! are of.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::guests;
use crate::harness::{PATIENCE, Server, World, for_both_worlds, get, write_file};

/// `/echo` echoes (or counts) bodies, `/hostile` attacks, `/hello` answers,
/// with the admin API on for metrics; `flags` go to `mayfly serve`.
fn server(dir: &Path, flags: &[&str]) -> Server {
    server_of(dir, World::P2, "", flags)
}

/// [`server`], with the guests of `world`, and `extra` more of the manifest.
fn server_of(dir: &Path, world: World, extra: &str, flags: &[&str]) -> Server {
    let manifest = format!(
        r#"
[component.echo]
source = {echo:?}
[component.hostile]
source = {hostile:?}
[component.hello]
source = {hello:?}

[[route]]
path = "/echo"
component = "echo"
[[route]]
path = "/hostile"
component = "hostile"
[[route]]
path = "/hello"
component = "hello"
{extra}
"#,
        echo = world.echo(),
        hostile = world.hostile(),
        hello = world.hello(),
    );
    let manifest = write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", "a token of sixteen or more");
    let mut args = vec![
        manifest.to_str().unwrap().to_string(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--admin-token-file".into(),
        token.to_str().unwrap().to_string(),
    ];
    args.extend(flags.iter().map(|flag| flag.to_string()));
    Server::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

async fn hello_answers(server: &Server) {
    let reply = get(server.addr, "/hello").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Everything `stream` sends until it closes, within [`PATIENCE`].
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 64 << 10];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server never closed the connection");
    String::from_utf8_lossy(&received).into_owned()
}

for_both_worlds! {
    async fn a_body_that_stalls_gets_408_and_a_slow_steady_one_is_served(world: World) {
        let dir = tempfile::tempdir().unwrap();
        // Pauses of 200 ms against a 3 s timeout: room for a loaded machine.
        let server = server_of(dir.path(), world, "", &["--body-timeout", "3s"]);
        let head = |length: usize| {
            format!(
                "POST /echo?count HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
                 content-length: {length}\r\n\r\n"
            )
        };

        // Ten bytes of a hundred, then nothing.
        let mut stalled = TcpStream::connect(server.addr).await.unwrap();
        stalled.write_all(head(100).as_bytes()).await.unwrap();
        stalled.write_all(&[b'x'; 10]).await.unwrap();
        // Meanwhile, everyone else is served.
        hello_answers(&server).await;
        let answer = read_to_close(&mut stalled).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(
            answer.ends_with("the request body paused for more than 3s\n"),
            "{answer}"
        );
        server.wait_for_output("the client paused its request body for more than 3s");
        server
            .wait_metric("mayfly_client_timeouts_total{kind=\"body\"}", 1.0)
            .await;

        // A body that keeps coming, a little at a time, is never cut off,
        // however long it takes in all (here 4 s, past the 3 s timeout).
        let mut steady = TcpStream::connect(server.addr).await.unwrap();
        steady.write_all(head(20).as_bytes()).await.unwrap();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            steady.write_all(b"y").await.unwrap();
        }
        let answer = read_to_close(&mut steady).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        // (Written at once by the guest: sent whole, with its length.)
        assert!(answer.contains("\r\ncontent-length: 9\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n20 bytes\n"), "{answer}");

        // A body echoed as it comes: each piece is back before the next is
        // sent.
        let mut dripped = TcpStream::connect(server.addr).await.unwrap();
        dripped
            .write_all(
                b"POST /echo HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\
                  transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        for piece in ('a'..='t').map(String::from) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            dripped
                .write_all(format!("1\r\n{piece}\r\n").as_bytes())
                .await
                .unwrap();
            let echoed = format!("\r\n1\r\n{piece}\r\n");
            while !String::from_utf8_lossy(&received).contains(&echoed) {
                let n = tokio::time::timeout(PATIENCE, dripped.read(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("`{piece}` was not echoed while the body went on"))
                    .unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&received));
                received.extend_from_slice(&buf[..n]);
            }
        }
        dripped.write_all(b"0\r\n\r\n").await.unwrap();
        let answer = format!(
            "{}{}",
            String::from_utf8_lossy(&received),
            read_to_close(&mut dripped).await
        );
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        // (A 0.3 body ends with trailers: echo-p3 sends its count.)
        let end = match world {
            World::P2 => "\r\n1\r\nt\r\n0\r\n\r\n",
            World::P3 => "\r\n1\r\nt\r\n0\r\nx-echoed-bytes: 20\r\n\r\n",
        };
        assert!(answer.ends_with(end), "{answer}");
        hello_answers(&server).await;
    }

    async fn a_client_that_never_reads_is_cut_off(world: World) {
        let dir = tempfile::tempdir().unwrap();
        // A deadline far beyond the write timeout: only the latter can end
        // the response.
        let endless = format!(
            r#"
[component.endless]
source = {hostile:?}
[component.endless.limits]
timeout = "5s"

[[route]]
path = "/endless"
component = "endless"
"#,
            hostile = world.hostile(),
        );
        let server = server_of(dir.path(), world, &endless, &["--write-timeout", "1s"]);
        // The body never ends; the client reads none of it.
        let mut deaf = TcpStream::connect(server.addr).await.unwrap();
        deaf.write_all(b"GET /endless?attack=endless-body HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        server
            .wait_metric("mayfly_client_timeouts_total{kind=\"write\"}", 1.0)
            .await;
        // The connection is closed: what was sent before it, then the end.
        let received = read_to_close(&mut deaf).await;
        assert!(received.starts_with("HTTP/1.1 200 "), "{}", &received[..64]);
        server.wait_metric("mayfly_open_connections", 0.0).await;
        // The guest, left writing to nobody, is ended at its deadline.
        server
            .wait_metric("mayfly_instances_in_flight{component=\"endless\"}", 0.0)
            .await;
        server.wait_for_output("component `endless` request 1: request deadline of 5s exceeded");
        hello_answers(&server).await;
    }
}

#[tokio::test]
async fn thousands_of_idle_connections_do_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough to open all 2000 on a loaded machine before the first
    // is closed.
    let server = server(dir.path(), &["--header-timeout", "20s"]);
    // 2000 connections that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    server.wait_metric("mayfly_open_connections", 2000.0).await;
    for _ in 0..20 {
        hello_answers(&server).await;
    }
    // Each is closed at the head timeout.
    server.wait_metric("mayfly_open_connections", 0.0).await;
    server
        .wait_metric("mayfly_client_timeouts_total{kind=\"head\"}", 2000.0)
        .await;
    for stream in &mut idle {
        assert_eq!(read_to_close(stream).await, "");
    }
}

#[tokio::test]
async fn at_the_connection_cap_idle_connections_make_room_for_new_clients() {
    let dir = tempfile::tempdir().unwrap();
    // A head timeout far beyond the test's patience: only the cap's own
    // eviction can free a place in time.
    let server = server(
        dir.path(),
        &["--max-connections", "50", "--header-timeout", "60m"],
    );
    // One connection in the middle of a request (its guest sleeps until its
    // body ends), then 49 idle ones.
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(b"POST /echo?count HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n")
        .await
        .unwrap();
    server
        .wait_metric("mayfly_instances_in_flight{component=\"echo\"}", 1.0)
        .await;
    let mut idle = Vec::new();
    for _ in 0..49 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    server.wait_metric("mayfly_open_connections", 50.0).await;
    // At the cap, a new client gets the place of the oldest idle one.
    for _ in 0..60 {
        hello_answers(&server).await;
        assert!(server.metric("mayfly_open_connections").await <= 50.0);
    }
    // The request in flight was never cut off.
    busy.write_all(b"ok").await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, busy.read(&mut answer))
        .await
        .expect("the busy connection got no answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // The idle ones that made room were closed, without a byte.
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection was closed");
}

/// A client that sends a request head declaring `length` bytes of body,
/// then one byte every `every`, and reads whatever comes back until the
/// server closes the connection: the answer, as text.
fn drip(
    addr: std::net::SocketAddr,
    path: &str,
    length: usize,
    every: Duration,
) -> tokio::task::JoinHandle<String> {
    let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n");
    tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        writer.write_all(head.as_bytes()).await.unwrap();
        let dripping = tokio::spawn(async move {
            for _ in 0..length {
                tokio::time::sleep(every).await;
                if writer.write_all(b"x").await.is_err() {
                    return;
                }
            }
        });
        let mut answer = Vec::new();
        let read = tokio::time::timeout(PATIENCE * 2, reader.read_to_end(&mut answer)).await;
        dripping.abort();
        assert!(read.is_ok(), "a dripping client got no end of answer");
        String::from_utf8_lossy(&answer).into_owned()
    })
}

#[tokio::test]
async fn a_body_that_drips_in_below_the_minimum_rate_is_cut_with_408() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[component.echo]
source = {echo:?}
[component.echo.limits]
instances = 4
queue = 2
[[route]]
path = "/echo"
component = "echo"
"#,
        echo = guests::ECHO,
    );
    let manifest = write_file(dir.path(), "app.toml", manifest);
    let token = write_file(dir.path(), "token", "a token of sixteen or more");
    let server = Server::start_with(&[
        manifest.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
        // No pause is long enough to end these bodies: only their pace.
        "--body-timeout",
        "60s",
        "--min-body-rate",
        "100B",
        "--body-rate-grace",
        "2s",
    ]);
    // Six clients, a byte a second each: they would hold the component's
    // four instances and its queue for as long as they kept dripping.
    let drips: Vec<_> = (0..6)
        .map(|_| drip(server.addr, "/echo?count", 1000, Duration::from_secs(1)))
        .collect();
    server
        .wait_metric("mayfly_instances_in_flight{component=\"echo\"}", 4.0)
        .await;
    server
        .wait_metric("mayfly_queue_length{component=\"echo\"}", 2.0)
        .await;
    let reply = get(server.addr, "/echo").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    for drip in drips {
        let answer = drip.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(
            answer.ends_with("the request body came slower than 100 bytes per second\n"),
            "{answer}"
        );
    }
    let reply = get(server.addr, "/echo").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    server.wait_for_output_times(
        "the client sent its request body slower than 100 bytes per second",
        6,
    );
    server
        .wait_metric("mayfly_client_timeouts_total{kind=\"body\"}", 6.0)
        .await;
}

#[tokio::test]
async fn at_the_connection_cap_a_connection_stalled_on_its_body_is_evicted() {
    let dir = tempfile::tempdir().unwrap();
    // Neither a pause nor a pace ends these bodies: only the cap's need
    // for a connection does.
    let server = server(
        dir.path(),
        &[
            "--max-connections",
            "20",
            "--body-timeout",
            "60m",
            "--min-body-rate",
            "0",
        ],
    );
    let drips: Vec<_> = (0..20)
        .map(|_| drip(server.addr, "/echo?count", 1000, Duration::from_millis(500)))
        .collect();
    server
        .wait_metric("mayfly_instances_in_flight{component=\"echo\"}", 20.0)
        .await;
    // Every place is taken by a request in flight; one that keeps the
    // server waiting for its body gives way.
    let (answers, mut answered) = tokio::sync::mpsc::channel(20);
    let drips: Vec<_> = drips
        .into_iter()
        .map(|drip| {
            let answers = answers.clone();
            tokio::spawn(async move {
                if let Ok(answer) = drip.await {
                    let _ = answers.send(answer).await;
                }
            })
        })
        .collect();
    hello_answers(&server).await;
    let answer = tokio::time::timeout(PATIENCE, answered.recv())
        .await
        .expect("no dripping client was evicted")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.ends_with("the server needed this connection while the request body waited\n"),
        "{answer}"
    );
    server.wait_for_output("the connection cap evicted the client");
    for drip in drips {
        drip.abort();
    }
}

#[tokio::test]
async fn idle_connections_to_the_health_and_admin_ports_cannot_take_the_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[component.hello]
source = {hello:?}
[[route]]
path = "/hello"
component = "hello"
"#,
        hello = guests::HELLO,
    );
    let manifest = write_file(dir.path(), "app.toml", manifest);
    let token = write_file(dir.path(), "token", "a token of sixteen or more");
    let server = Server::start_with_fd_limit(
        &[
            manifest.to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-file",
            token.to_str().unwrap(),
            "--health-listen",
            "127.0.0.1:0",
        ],
        512,
        512,
    );
    assert_eq!(server.fd_limits(), (512, 512));
    let health = server.health.expect("the health checks are on");
    let admin = server.admin.expect("the admin API is on");
    for (port, check) in [(health, "/healthz"), (admin, "/metrics")] {
        // More idle connections than the process has descriptors.
        let mut idle = Vec::new();
        for _ in 0..520 {
            idle.push(TcpStream::connect(port).await.unwrap());
        }
        // The app keeps its descriptors, and so does the port itself: its
        // oldest idle connections make room.
        for _ in 0..5 {
            hello_answers(&server).await;
        }
        let reply = get(port, check).await;
        assert_eq!(reply.status, 200, "{check}: {}", reply.text());
        drop(idle);
    }
    assert!(
        !server.output().contains("Too many open files"),
        "{}",
        server.output()
    );
}
