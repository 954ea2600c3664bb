//! Host memory a guest makes the host keep, through `wasi:http` of either
//! world: a request's method and scheme are bounded, its authority and
//! path charged, and every body buffer leased while it lives, all against
//! the instance's `host_memory`. No attack may take the server's resident
//! memory, at its peak, 64 MiB above where it was.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;

use crate::harness::{Held, Server, World, for_both_worlds, get, write_file};

/// What each attack may add to the server's resident memory, in KiB.
const MAX_GROWTH_KIB: u64 = 64 << 10;

/// The host-memory refusal, as guests and the log see it.
const REFUSAL: &str = "the instance reached its limit of 1048576 bytes of host memory \
                       (headers, request targets and body buffers)";

/// `hostile` of `world` on `/`, with `limits` and outbound calls to
/// `upstream` allowed.
fn app(dir: &Path, world: World, limits: &str, upstream: &str) -> std::path::PathBuf {
    let manifest = format!(
        r#"
[component.hostile]
source = {hostile:?}
allowed_outbound_hosts = ["http://{upstream}"]

[component.hostile.limits]
{limits}

[[route]]
path = "/..."
component = "hostile"
"#,
        hostile = world.hostile(),
    );
    write_file(dir, "app.toml", manifest)
}

/// The server's resident memory after a request that does nothing, in
/// KiB, with its peak started over from there.
async fn settled_rss(server: &Server) -> u64 {
    let reply = get(server.addr, "/?attack=none").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    server.reset_peak_rss();
    server.rss_kib().0
}

fn assert_grew_less_than_the_bound(server: &Server, before: u64, what: &str) {
    let (_, peak) = server.rss_kib();
    assert!(
        peak < before + MAX_GROWTH_KIB,
        "{what}: the server grew from {before} KiB to {peak} KiB at its peak"
    );
}

for_both_worlds! {
    /// 32 requests, each given a method of its own of 16 MiB (then 64
    /// MiB): every one is refused (the guest sees the error), and nothing
    /// is kept. (The guest's own copy is in its memory, and the host reads
    /// each one once, to refuse it: 32 MiB at most at any time.)
    async fn a_methods_length_is_bounded(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&app(dir.path(), world, r#"memory = "128MiB""#, "127.0.0.1:9"));
        let before = settled_rss(&server).await;
        let reply = get(server.addr, "/?attack=method&size=16777216").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "method refused 32 of 32\n");
        assert_grew_less_than_the_bound(&server, before, "16 MiB methods");
        let reply = get(server.addr, "/?attack=method").await;
        assert_eq!(reply.text(), "method refused 32 of 32\n");
        // A method of a sane length is still taken.
        let reply = get(server.addr, "/?attack=method&count=4&size=64").await;
        assert_eq!(reply.text(), "method refused 0 of 4\n");
        let reply = get(server.addr, "/?attack=method&count=4&size=65").await;
        assert_eq!(reply.text(), "method refused 4 of 4\n");
    }

    /// Paths of 60,000 bytes each (about the longest a path may be) are
    /// charged: the seventeenth or so reaches the instance's 1 MiB, and the
    /// guest is stopped with the reason.
    async fn request_targets_are_charged_to_host_memory(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&app(dir.path(), world, "", "127.0.0.1:9"));
        let reply = get(server.addr, "/?attack=target&size=60000&count=64").await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert!(reply.text().contains(REFUSAL), "{}", reply.text());
        // Sixteen fit, and are kept (with the answer's body buffer).
        let reply = get(server.addr, "/?attack=target&size=60000&count=16").await;
        assert_eq!(reply.text(), "targets set 16 of 16\n");
        let output = server.wait_for_output("request path refused: ");
        assert!(output.contains(REFUSAL), "{output}");
    }
}

/// 300 requests that are never sent, each with its body filled as far as
/// the host takes it: each body's buffer is leased from the instance's
/// 1 MiB, so the guest is stopped after a few, and the server keeps
/// nothing.
#[tokio::test]
async fn filled_bodies_that_are_never_sent_are_charged_while_held() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&app(dir.path(), World::P2, "", "127.0.0.1:9"));
    let before = settled_rss(&server).await;
    let reply = get(server.addr, "/?attack=bodies").await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(reply.text().contains(REFUSAL), "{}", reply.text());
    assert_grew_less_than_the_bound(&server, before, "300 filled bodies");
    // A body held within the budget still fills: two writes of 32 KiB.
    let reply = get(server.addr, "/?attack=bodies&count=4").await;
    assert_eq!(reply.text(), "filled 4 bodies with 262144 bytes\n");
    let output = server.wait_for_output("body refused: ");
    assert!(output.contains(REFUSAL), "{output}");
}

/// WASI 0.3 bodies reach the host only when they are sent: 100 POSTs to
/// an upstream that answers at once and never reads, each with a body its
/// guest keeps writing. The few whose buffers fit in the instance's 1 MiB
/// go out; the others are refused, inside the guest, with the reason.
#[tokio::test]
async fn sent_bodies_nobody_reads_are_charged_while_held() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = upstream.local_addr().unwrap();
    // Answers every request as soon as its head is in, then holds the
    // connection without reading another byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in upstream.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&app(dir.path(), World::P3, "", &address.to_string()));
    let before = settled_rss(&server).await;
    let path = format!("/?attack=bodies&url=http://{address}/");
    let mut bodies = Held::start(server.addr, &path).await;
    let first = bodies.line().await;
    let (sent, refused) = counts(&first);
    assert!((1..=16).contains(&sent), "{first}");
    assert_eq!(sent + refused, 100, "{first}");
    assert!(first.contains(REFUSAL), "{first}");
    let mut line = bodies.line().await;
    while line != "settled" {
        assert!(line.starts_with("accepted "), "{line}");
        line = bodies.line().await;
    }
    assert_grew_less_than_the_bound(&server, before, "100 bodies nobody reads");
    bodies.release().await;
}

/// `sent S refused R ...` as (S, R).
fn counts(line: &str) -> (u32, u32) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((words[0], words[2]), ("sent", "refused"), "{line}");
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}
