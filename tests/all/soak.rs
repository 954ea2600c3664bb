//! Thousands of hostile requests: the server's resident memory levels off
//! instead of climbing with every contained attack.

use std::time::Duration;

use crate::guests;
use crate::harness::{Client, Server, write_file};

/// Attacks that end quickly (the slow ones are covered in `hostile`), with
/// the status each must get.
const ATTACKS: &[(&str, u16)] = &[
    ("/hostile?attack=memory", 500),
    ("/hostile?attack=recursion", 500),
    ("/hostile?attack=resources", 500),
    ("/hostile?attack=headers&count=1000", 502),
    ("/hostile?attack=headers", 500),
    ("/hostile?attack=print", 200),
    ("/trap/x", 500),
    ("/caps?op=fetch&url=http://example.com/", 403),
    ("/caps?op=connect&addr=127.0.0.1:1", 403),
    ("/", 200),
];

const CONNECTIONS: usize = 8;
const ROUNDS: usize = 5;
/// Requests per round, over all connections.
const PER_ROUND: usize = 500;

async fn round(server: &Server) {
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            for i in 0..PER_ROUND / CONNECTIONS {
                let (path, status) = ATTACKS[(connection + i) % ATTACKS.len()];
                let reply = client.get(path).await;
                assert_eq!(reply.status, status, "{path}: {}", reply.text());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_levels_off_under_thousands_of_hostile_requests() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[limits]
memory = "32MiB"
timeout = "10s"

[component.hello]
source = {:?}
[component.trap]
source = {:?}
[component.caps]
source = {:?}
[component.hostile]
source = {:?}

[[route]]
path = "/"
component = "hello"
[[route]]
path = "/trap/..."
component = "trap"
[[route]]
path = "/caps"
component = "caps"
[[route]]
path = "/hostile"
component = "hostile"
"#,
        guests::HELLO,
        guests::TRAP,
        guests::CAPABILITIES,
        guests::HOSTILE,
    );
    let server = Server::start(&write_file(dir.path(), "app.toml", manifest));
    // The first round warms everything up: pool slots, caches, buffers.
    round(&server).await;
    let (warm, _) = server.rss_kib();
    let mut samples = vec![warm];
    for _ in 1..ROUNDS {
        round(&server).await;
        samples.push(server.rss_kib().0);
    }
    // Let the instance pool settle before the last sample.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let last = server.rss_kib().0;
    samples.push(last);
    eprintln!("resident memory per round (KiB): {samples:?}");
    // Four more rounds of 500 requests after warm-up (one in ten a 32 MiB
    // memory bomb) may cost some allocator slack, not memory per attack:
    // their 200 bombs alone would be 6 GiB.
    assert!(
        last < warm + 64 * 1024,
        "resident memory climbed from {warm} KiB to {last} KiB: {samples:?}"
    );
}
