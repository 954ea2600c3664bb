//! What guests hold on the host beyond their memory: open files and
//! outbound connections (descriptors) and header maps (host memory). Each
//! instance has its own share, all guests of a server share half its
//! descriptor limit, and a guest over either is refused in the call that
//! wanted more, while everything else keeps being served. A guest of
//! either world is held to the same budget.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use crate::guests;
use crate::harness::{Held, Server, for_both_worlds, get, write_file};

/// `files` may open `data/f.txt` (as `/data/f.txt`), `calls` may call
/// `upstream`, `hello` answers; `limits` goes into `[limits]`.
fn app(dir: &Path, upstream: SocketAddr, limits: &str) -> std::path::PathBuf {
    app_of(dir, upstream, limits, guests::HOSTILE)
}

/// [`app`], with `hostile` (the 0.2 guest or its 0.3 twin) as the attacker.
fn app_of(dir: &Path, upstream: SocketAddr, limits: &str, hostile: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    write_file(&dir.join("data"), "f.txt", "contents");
    let manifest = format!(
        r#"
[limits]
{limits}

[component.files]
source = {hostile:?}
files = [{{ host = "data", guest = "/data" }}]

[component.calls]
source = {hostile:?}
allowed_outbound_hosts = ["http://{upstream}"]

[component.hello]
source = {hello:?}

[[route]]
path = "/files"
component = "files"
[[route]]
path = "/calls"
component = "calls"
[[route]]
path = "/hello"
component = "hello"
"#,
        hello = guests::HELLO,
    );
    write_file(dir, "app.toml", manifest)
}

async fn hello_answers(server: &Server) {
    let reply = get(server.addr, "/hello").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

for_both_worlds! {
    async fn an_instance_holds_at_most_its_share_of_open_files(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let manifest = app_of(
            dir.path(),
            upstream.local_addr().unwrap(),
            "descriptors = 16",
            world.hostile(),
        );
        let server = Server::start(&manifest);

        let mut held = Held::start(server.addr, "/files?attack=files&path=/data/f.txt").await;
        let line = held.line().await;
        // (Its granted directory holds one of the sixteen.)
        assert!(line.starts_with("opened 15: "), "{line}");
        server.wait_for_output("open refused: the instance holds 16 open files and connections");
        // While it holds them, everything else is served, its own component
        // included.
        hello_answers(&server).await;
        let mut other = Held::start(server.addr, "/files?attack=files&path=/data/f.txt").await;
        assert!(other.line().await.starts_with("opened 15: "));
        held.release().await;
        other.release().await;
        // What they held was given back: a new instance gets its whole share.
        let mut again = Held::start(server.addr, "/files?attack=files&path=/data/f.txt").await;
        assert!(again.line().await.starts_with("opened 15: "));
        again.release().await;
    }
}

#[tokio::test]
async fn guests_together_hold_at_most_half_the_servers_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    // A listener that accepts connections (the kernel's backlog does) and
    // never answers: each call the guest makes holds a socket.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let manifest = app(
        dir.path(),
        upstream.local_addr().unwrap(),
        "descriptors = 128",
    );
    // 400 descriptors: guests may hold 200 between them.
    let server = Server::start_with_fd_limit(&[manifest.to_str().unwrap()], 400, 400);

    // Each instance's granted directory holds one descriptor too.
    let mut first = Held::start(server.addr, "/files?attack=files&path=/data/f.txt").await;
    assert!(first.line().await.starts_with("opened 127: "));
    let mut second = Held::start(server.addr, "/files?attack=files&path=/data/f.txt").await;
    let line = second.line().await;
    assert!(line.starts_with("opened 71: "), "{line}");
    server.wait_for_output("open refused: the guests of this server hold 200 open files");
    // An instance whose granted directory finds no descriptor is not
    // started: the server is busy, and says so.
    let reply = get(server.addr, "/files?attack=none").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(
        reply.text(),
        "the server holds all the files it may open for guests; retry shortly\n"
    );

    // No descriptor is left for guests: an outbound call is refused in the
    // guest, with `connection-limit-reached`...
    let upstream_addr = upstream.local_addr().unwrap();
    let mut calls = Held::start(
        server.addr,
        &format!("/calls?attack=connections&count=3&url=http://{upstream_addr}/"),
    )
    .await;
    let mut line = calls.line().await;
    while !line.starts_with("refused 3 ") {
        line = calls.line().await;
    }
    server.wait_for_output("outbound request to http://");
    // ...while the listener, the other routes and the host itself keep
    // their descriptors.
    for _ in 0..20 {
        hello_answers(&server).await;
    }
    first.release().await;
    second.release().await;
    // Given back: the next instance gets its whole share again.
    let mut again = Held::start(server.addr, "/files?attack=files&path=/data/f.txt").await;
    assert!(again.line().await.starts_with("opened 127: "));
    again.release().await;
    let output = server.output();
    assert!(!output.contains("accept failed"), "{output}");
}

#[tokio::test]
async fn outbound_connections_count_against_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let manifest = app(dir.path(), upstream_addr, "descriptors = 8");
    let server = Server::start(&manifest);

    let mut calls = Held::start(
        server.addr,
        &format!("/calls?attack=connections&count=20&url=http://{upstream_addr}/"),
    )
    .await;
    // Twelve are refused at once; eight connect and wait for an answer.
    let mut line = calls.line().await;
    while !line.starts_with("refused 12 ") {
        line = calls.line().await;
    }
    let mut accepted = Vec::new();
    while accepted.len() < 8 {
        accepted.push(upstream.accept().unwrap().0);
    }
    hello_answers(&server).await;
    // The upstream hangs up: the eight fail, and nothing more was tried.
    drop(accepted);
    let mut line = calls.line().await;
    while !line.starts_with("refused 12 failed 8 answered 0") {
        line = calls.line().await;
    }
    upstream.set_nonblocking(true).unwrap();
    assert!(upstream.accept().is_err(), "a refused call still connected");
}

for_both_worlds! {
    async fn header_maps_built_on_the_host_are_capped_per_instance(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let manifest = app_of(dir.path(), upstream.local_addr().unwrap(), "", world.hostile());
        let server = Server::start(&manifest);
        // Each clone-and-change copies a 64 KiB map: without the cap, the
        // resource table (1000 handles) would let it take 64 MiB.
        let reply = get(server.addr, "/files?attack=fields").await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert!(
            reply
                .text()
                .contains("the instance reached its limit of 1048576 bytes of host memory"),
            "{}",
            reply.text()
        );
        hello_answers(&server).await;
        let reply = get(server.addr, "/files?attack=none").await;
        assert_eq!(reply.status, 200);
    }
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let manifest = app(dir.path(), upstream.local_addr().unwrap(), "");
    let server = Server::start_with_fd_limit(&[manifest.to_str().unwrap()], 256, 4096);
    assert_eq!(server.fd_limits(), (4096, 4096));
    // Guests' share was sized from the raised limit: 2048, not 128.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut files = Held::start(server.addr, "/files?attack=files&path=/data/f.txt").await;
        assert!(files.line().await.starts_with("opened 127: "));
        held.push(files);
    }
    for files in held {
        files.release().await;
    }
}
