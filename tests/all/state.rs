//! State through the standard interfaces: `wasi:keyvalue` on the embedded
//! backend and on Redis, `wasi:config`, `wasi:logging`; exact atomics under
//! concurrency, durability across SIGKILL, and two hosts sharing Redis. A
//! WASI 0.3 guest imports the same interfaces, and gets the same answers.

use std::io::{BufRead as _, BufReader, Read as _, Seek as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Request;

use crate::guests;
use crate::harness::{Client, PATIENCE, Server, World, for_both_worlds, full, get, write_file};

/// The state app: counter (store `default`), crud (store `items`), config
/// reader, and a counter with no stores, named `name`.
fn manifest(dir: &Path, name: &str) -> PathBuf {
    manifest_of(dir, name, World::P2)
}

/// [`manifest`], with the counter and the config reader of `world`.
fn manifest_of(dir: &Path, name: &str, world: World) -> PathBuf {
    write_file(
        dir,
        "secrets.toml",
        "api_token = \"from-the-secrets-file\"\n",
    );
    let manifest = format!(
        r#"
name = "{name}"
secrets = "secrets.toml"

[component.counter]
source = {counter:?}
key_value_stores = ["default"]

[component.crud]
source = {crud:?}
key_value_stores = ["items"]

[component.config]
source = {config:?}
config = {{ greeting = "hello", home = {{ env = "HOME" }}, token = {{ secret = "api_token" }} }}

[component.bare]
source = {counter:?}

[[route]]
path = "/count/..."
component = "counter"
[[route]]
path = "/items/..."
component = "crud"
[[route]]
path = "/config"
component = "config"
[[route]]
path = "/bare/..."
component = "bare"
"#,
        counter = world.counter(),
        crud = guests::CRUD,
        config = world.config_reader(),
    );
    write_file(dir, "app.toml", manifest)
}

fn serve(app: &Path, data: &Path, extra: &[&str]) -> Server {
    let mut args = vec![app.to_str().unwrap(), "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

/// `count` increments, all in flight at once: one connection each, spread
/// over `servers`, every request sent only once all are connected. Returns
/// every total the counter answered, sorted.
async fn increments(servers: &[&Server], count: usize) -> Vec<u64> {
    let replies = all_at_once(servers, count, "/count").await;
    let mut all: Vec<u64> = replies
        .iter()
        .map(|text| {
            text.strip_prefix("visits: ")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or_else(|| panic!("{text}"))
        })
        .collect();
    all.sort_unstable();
    all
}

/// `count` GETs of `path`, all in flight at once over a connection each,
/// spread over `servers`; the bodies, each checked to be a 200.
async fn all_at_once(servers: &[&Server], count: usize, path: &str) -> Vec<String> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(count));
    let mut tasks = Vec::new();
    for c in 0..count {
        let addr = servers[c % servers.len()].addr;
        let start = start.clone();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            // (If another connection failed, fail rather than wait forever.)
            tokio::time::timeout(crate::harness::PATIENCE, start.wait())
                .await
                .expect("not every connection was made");
            let reply = client.get(&path).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.text()
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.push(task.await.unwrap());
    }
    all
}

/// The conflicts `cas-add` replies say they retried, in total.
fn conflicts(replies: &[String]) -> u64 {
    replies
        .iter()
        .map(|text| {
            text.trim_end()
                .rsplit_once("conflicts: ")
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{text}"))
        })
        .sum()
}

async fn put(addr: std::net::SocketAddr, id: &str, json: &str) -> crate::harness::Reply {
    let mut client = Client::connect(addr).await;
    let request = Request::put(format!("/items/{id}"))
        .body(full(json.to_string()))
        .unwrap();
    client.send(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_are_exact_under_500_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &manifest(dir.path(), "exact"),
        &dir.path().join("data"),
        &[],
    );
    let totals = increments(&[&server], 500).await;
    // Every request saw a distinct total: no increment was lost or doubled.
    assert_eq!(totals, (1..=500).collect::<Vec<u64>>());
    assert_eq!(
        get(server.addr, "/count/peek").await.text(),
        "visits: 500\n"
    );
}

for_both_worlds! {
    async fn compare_and_swap_reports_conflicts(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(&manifest_of(dir.path(), "cas", world), &dir.path().join("data"), &[]);
        let reply = get(server.addr, "/count/cas-conflict").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (409, "conflict: the value is now 1000\n")
        );
        // Concurrent read-modify-write through CAS retries its conflicts and
        // loses nothing; released together, they do conflict.
        let replies = all_at_once(&[&server], 40, "/count/cas-add").await;
        assert_eq!(
            get(server.addr, "/count/peek").await.text(),
            "visits: 1040\n"
        );
        let conflicts = conflicts(&replies);
        assert!(conflicts > 0, "40 concurrent cas-adds never conflicted");
        eprintln!("40 concurrent cas-adds retried {conflicts} conflicts");
    }

    async fn stores_that_were_not_granted_are_denied_without_a_trap(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(&manifest_of(dir.path(), "deny", world), &dir.path().join("data"), &[]);
        let reply = get(server.addr, "/count?store=items").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (403, "cannot open store `items`: access-denied\n")
        );
        // A component with no stores at all.
        let reply = get(server.addr, "/bare/count").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (403, "cannot open store `default`: access-denied\n")
        );
        server.wait_for_output(
            "component `bare` request 2: key-value store `default` denied: not in key_value_stores",
        );
        assert_eq!(get(server.addr, "/count").await.text(), "visits: 1\n");
    }
}

#[tokio::test]
pub(crate) async fn documents_are_stored_listed_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&manifest(dir.path(), "crud"), &dir.path().join("data"), &[]);
    let addr = server.addr;
    for i in 0..250 {
        let reply = put(addr, &format!("item-{i:03}"), &format!("{{\"n\":{i}}}")).await;
        assert_eq!(reply.text(), format!("stored item-{i:03}\n"));
    }
    assert_eq!(get(addr, "/items/item-042").await.text(), "{\"n\":42}");
    // 250 keys come back over three pages of 100.
    let listed: Vec<String> = serde_json::from_slice(&get(addr, "/items").await.body).unwrap();
    let expected: Vec<String> = (0..250).map(|i| format!("item-{i:03}")).collect();
    assert_eq!(listed, expected);
    let page: serde_json::Value =
        serde_json::from_slice(&get(addr, "/items?cursor=item-248").await.body).unwrap();
    assert_eq!(
        page,
        serde_json::json!({"keys": ["item-249"], "cursor": null})
    );
    // A cursor is any string: a strange one gives a page, never a crash.
    let page: serde_json::Value = serde_json::from_slice(
        &get(addr, &format!("/items?cursor={}", "~".repeat(900)))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(page, serde_json::json!({"keys": [], "cursor": null}));

    let mut client = Client::connect(addr).await;
    let batch = client
        .send(
            Request::post("/items/batch?ids=item-001,nope")
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(batch.text(), "{\"item-001\":{\"n\":1},\"nope\":null}");
    assert_eq!(get_delete(addr, "item-001").await, "deleted item-001\n");
    assert_eq!(get(addr, "/items/item-001").await.status, 404);
    assert_eq!(put(addr, "bad", "not json").await.status, 400);

    // Size limits are the guest's errors, not traps.
    let long_key = "k".repeat(2000);
    let reply = put(addr, &long_key, "1").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (
            500,
            "set failed: other: the key is 2000 bytes long; the limit is 1024\n"
        )
    );
    let big = format!("\"{}\"", "v".repeat(1_100_000));
    let reply = put(addr, "big", &big).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (
            500,
            "set failed: other: the value is 1100002 bytes long; the limit is 1048576\n"
        )
    );
    assert_eq!(get(addr, "/items/item-002").await.text(), "{\"n\":2}");
}

/// The reply of `POST /items/batch?ids=...`.
async fn batch(addr: std::net::SocketAddr, ids: &[String]) -> crate::harness::Reply {
    let mut client = Client::connect(addr).await;
    let request = Request::post(format!("/items/batch?ids={}", ids.join(",")))
        .body(full(""))
        .unwrap();
    client.send(request).await.unwrap()
}

/// Stores documents of exactly 1 MiB, then asks for more than 16 MiB of
/// them in one get-many: once as one key listed 20 times, once as 17
/// distinct keys. Both are the guest's error; small batches still work.
async fn assert_batch_reads_are_bounded(addr: std::net::SocketAddr) {
    let document = format!("\"{}\"", "v".repeat((1 << 20) - 2));
    let big: Vec<String> = (0..17).map(|i| format!("big-{i}")).collect();
    for id in &big {
        assert_eq!(
            put(addr, id, &document).await.text(),
            format!("stored {id}\n")
        );
    }
    let too_big = "batch failed: other: get-many would return more than 16777216 bytes of \
                   values; ask for fewer keys at a time\n";
    let reply = batch(addr, &vec!["big-0".to_string(); 20]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (500, too_big)
    );
    let reply = batch(addr, &big).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (500, too_big)
    );
    // Under the cap, repeated keys are answered (and the server serves on).
    assert_eq!(put(addr, "small", "{\"n\":1}").await.status, 200);
    let reply = batch(addr, &["small".into(), "small".into(), "big-1".into()]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let object: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(object["small"], serde_json::json!({"n": 1}));
    assert_eq!(object["big-1"].as_str().map(str::len), Some((1 << 20) - 2));
}

#[tokio::test]
async fn a_batch_read_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &manifest(dir.path(), "batch"),
        &dir.path().join("data"),
        &[],
    );
    assert_batch_reads_are_bounded(server.addr).await;
    assert_eq!(get(server.addr, "/count").await.text(), "visits: 1\n");
}

#[tokio::test]
async fn compare_and_swap_handles_hold_a_bounded_number_of_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&manifest(dir.path(), "held"), &dir.path().join("data"), &[]);
    // Eight handles on a 1 MiB value fit in the 8 MiB budget; the ninth is
    // refused, and dropping them gives the budget back.
    let reply = get(server.addr, "/count/cas-hold").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (
            200,
            "held 8, then: other: compare-and-swap handles would hold more than 8388608 \
             bytes; drop some before opening more\nafter dropping them: ok\n"
        )
    );
    // The budget is per request.
    let reply = get(server.addr, "/count/cas-hold").await;
    assert!(
        reply.text().starts_with("held 8, then: "),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn a_full_handle_table_and_repeated_denials_are_bounded_guest_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &manifest(dir.path(), "handles"),
        &dir.path().join("data"),
        &[],
    );
    // Opening buckets until the resource table is full: an error, no trap.
    let reply = get(server.addr, "/count/open-loop?n=1500").await;
    let text = reply.text();
    let opened: usize = text
        .strip_prefix("opened ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((900..1000).contains(&opened), "{text}");
    assert_eq!(
        text,
        format!(
            "opened {opened}, refused {} (first: other: too many open handles \
             (resource table has no free keys))\n",
            1500 - opened
        )
    );
    // 50 denied opens in one request: 10 warnings, then one summary.
    let reply = get(server.addr, "/count/open-loop?store=items&n=50").await;
    assert_eq!(
        reply.text(),
        "opened 0, refused 50 (first: access-denied)\n"
    );
    let output = server.wait_for_output(
        "component `counter` request 2: 40 more key-value warnings suppressed (at most 10 per request)",
    );
    let denied = "component `counter` request 2: key-value store `items` denied";
    assert_eq!(output.matches(denied).count(), 10, "{output}");
    assert_eq!(get(server.addr, "/count").await.text(), "visits: 1\n");
}

#[tokio::test]
async fn guest_log_text_cannot_forge_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &manifest(dir.path(), "forge"),
        &dir.path().join("data"),
        &[],
    );
    let reply = get(
        server.addr,
        "/count/log?context=ctx%0Afake&message=one%0Amayfly%3A%20forged%1B%5B31m%E2%80%AEtxt",
    )
    .await;
    assert_eq!(reply.text(), "logged\n");
    let output = server.wait_for_output(
        "mayfly: component `counter` request 1 [warn ctx\\nfake]: \
         one\\nmayfly: forged\\u{1b}[31m\\u{202e}txt",
    );
    assert!(!output.contains("\nmayfly: forged"), "{output}");
    assert!(!output.contains(['\u{1b}', '\u{202e}']), "{output}");
    // A long context is cut.
    let reply = get(
        server.addr,
        &format!("/count/log?context={}&message=short", "c".repeat(1000)),
    )
    .await;
    assert_eq!(reply.text(), "logged\n");
    server.wait_for_output(&format!("[warn {}...]: short", "c".repeat(125)));
}

async fn get_delete(addr: std::net::SocketAddr, id: &str) -> String {
    let mut client = Client::connect(addr).await;
    let request = Request::delete(format!("/items/{id}"))
        .body(full(""))
        .unwrap();
    client.send(request).await.unwrap().text()
}

for_both_worlds! {
    async fn config_comes_from_the_manifest_the_environment_and_the_secrets_file(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(
            &manifest_of(dir.path(), "config", world),
            &dir.path().join("data"),
            &[],
        );
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            get(server.addr, "/config").await.text(),
            format!("greeting=hello\nhome={home}\ntoken=from-the-secrets-file\n")
        );
        assert_eq!(
            get(server.addr, "/config?key=token").await.text(),
            "from-the-secrets-file"
        );
        let missing = get(server.addr, "/config?key=PATH").await;
        assert_eq!(
            (missing.status.as_u16(), missing.text().as_str()),
            (404, "PATH is not set\n")
        );
    }

    async fn guest_logs_are_tagged_with_component_and_request(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(&manifest_of(dir.path(), "logs", world), &dir.path().join("data"), &[]);
        get(server.addr, "/count").await;
        get(server.addr, "/count").await;
        server.wait_for_output(
            "mayfly: component `counter` request 1 [info counter]: visit number 1",
        );
        server.wait_for_output(
            "mayfly: component `counter` request 2 [info counter]: visit number 2",
        );
    }
}

/// Runs `writers` clients against `server`, each on its own connection
/// sending `request(w, i)` for i = 0, 1, ... until the server stops
/// answering; kills the server (SIGKILL) once `before_kill` requests have
/// been answered 200, and returns `acknowledge(w, i, reply)` for every
/// request that was.
async fn write_until_killed<T: Send + 'static>(
    server: Server,
    writers: usize,
    before_kill: usize,
    request: impl Fn(usize, usize) -> Request<crate::harness::Body> + Send + Sync + 'static,
    acknowledge: impl Fn(usize, usize, &crate::harness::Reply) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let addr = server.addr;
    let request = Arc::new(request);
    let acknowledge = Arc::new(acknowledge);
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (acked, request, acknowledge) = (acked.clone(), request.clone(), acknowledge.clone());
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let Some(mut client) = Client::connect_or_none(addr).await else {
                return acknowledged;
            };
            for i in 0.. {
                match client.try_send(request(w, i)).await {
                    Some(reply) if reply.status == 200 => {
                        acknowledged.push(acknowledge(w, i, &reply));
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    // Kill it once some writes are acknowledged, however slow the disk.
    let deadline = Instant::now() + PATIENCE;
    while acked.load(Ordering::SeqCst) < before_kill {
        assert!(
            !tasks.iter().all(|task| task.is_finished()),
            "every writer stopped after {} acknowledged writes, before the kill",
            acked.load(Ordering::SeqCst)
        );
        assert!(
            Instant::now() < deadline,
            "only {} writes acknowledged within {PATIENCE:?}",
            acked.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("KILL");
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), "durable");
    let data = dir.path().join("data");
    let acknowledged = write_until_killed(
        serve(&app, &data, &[]),
        8,
        8,
        |w, i| {
            Request::put(format!("/items/w{w}-{i}"))
                .body(full(format!("{{\"w\":{w},\"i\":{i}}}")))
                .unwrap()
        },
        |w, i, _| format!("w{w}-{i}"),
    )
    .await;
    assert!(
        acknowledged.len() >= 8,
        "only {} writes before the kill",
        acknowledged.len()
    );

    let restarted = serve(&app, &data, &[]);
    let mut client = Client::connect(restarted.addr).await;
    for id in &acknowledged {
        let reply = client.get(&format!("/items/{id}")).await;
        assert_eq!(reply.status, 200, "acknowledged write {id} was lost");
    }
    eprintln!(
        "{} acknowledged writes all survived SIGKILL",
        acknowledged.len()
    );
}

/// The total in a counter's `visits: N` answer.
fn visits(reply: &crate::harness::Reply) -> u64 {
    reply
        .text()
        .trim()
        .strip_prefix("visits: ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", reply.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_increments_under_load_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), "durable-counter");
    let data = dir.path().join("data");
    // Sixteen writers increment one counter until the server dies under
    // them: their writes are committed in shared groups.
    let acknowledged = write_until_killed(
        serve(&app, &data, &[]),
        16,
        64,
        |_, _| Request::get("/count").body(full("")).unwrap(),
        |_, _, reply| visits(reply),
    )
    .await;
    // Exact: no two increments answered the same total.
    let mut distinct = acknowledged.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        acknowledged.len(),
        "two increments answered one total"
    );

    let restarted = serve(&app, &data, &[]);
    let total = visits(&get(restarted.addr, "/count/peek").await);
    // Every acknowledged increment is there; at most the sixteen in flight
    // at the kill may have made it too, unacknowledged.
    let highest = *distinct.last().unwrap();
    assert!(
        total >= highest && total <= highest + 16,
        "{} acknowledged increments up to {highest}, but the counter is {total} after SIGKILL",
        acknowledged.len()
    );
}

/// A Redis server for a test: the one `.ci/run` started
/// (`MAYFLY_TEST_REDIS_URL`), or one started here from `redis-server` on
/// PATH. `None` (the test is skipped, loudly) only when neither exists and
/// `MAYFLY_REQUIRE_REDIS` is unset.
fn redis_url() -> Option<(String, Option<RedisServer>)> {
    if let Ok(url) = std::env::var("MAYFLY_TEST_REDIS_URL") {
        return Some((url, None));
    }
    match RedisServer::start() {
        Some(server) => Some((server.url(), Some(server))),
        None if std::env::var_os("MAYFLY_REQUIRE_REDIS").is_some() => {
            panic!("MAYFLY_REQUIRE_REDIS is set, but there is no Redis: install redis-server")
        }
        None => {
            eprintln!("SKIPPED: no redis-server on PATH and no MAYFLY_TEST_REDIS_URL");
            None
        }
    }
}

/// A private `redis-server`, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port; `None` if there is no `redis-server`.
    fn start() -> Option<Self> {
        const ATTEMPTS: usize = 5;
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            // The port is free now, but something else may take it before
            // Redis binds it: then Redis exits, and another port is tried.
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free loopback port")
                .port();
            let mut log = tempfile::tempfile().unwrap();
            let mut child = match Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log.try_clone().unwrap()))
                .spawn()
            {
                Ok(child) => child,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
                Err(err) => panic!("cannot start redis-server: {err}"),
            };
            let deadline = Instant::now() + PATIENCE;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut printed = String::new();
                    let _ = log.rewind();
                    let _ = log.read_to_string(&mut printed);
                    failures.push(format!("port {port}: exited ({status}):\n{printed}"));
                    break;
                }
                // Ready only when it answers, and it is this one answering
                // (not another Redis that got the port first).
                if redis_answers(port, child.id()) {
                    return Some(Self { child, port });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("redis-server on port {port} did not answer within {PATIENCE:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "redis-server did not start in {ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the Redis on `port` answers PING with PONG, and is process `pid`.
fn redis_answers(port: u16, pid: u32) -> bool {
    let exchange = || -> std::io::Result<bool> {
        let stream = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(1),
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        writer.write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line != "+PONG\r\n" {
            return Ok(false);
        }
        writer.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;
        line.clear();
        reader.read_line(&mut line)?;
        let Some(len) = line
            .strip_prefix('$')
            .and_then(|len| len.trim_end().parse::<usize>().ok())
        else {
            return Ok(false);
        };
        let mut info = vec![0; len];
        reader.read_exact(&mut info)?;
        let info = String::from_utf8_lossy(&info);
        Ok(info
            .lines()
            .any(|l| l.trim_end() == format!("process_id:{pid}")))
    };
    exchange().unwrap_or(false)
}

fn redis_config(dir: &Path, url: &str) -> PathBuf {
    write_file(
        dir,
        "runtime.toml",
        format!("[key_value]\nbackend = \"redis\"\nurl = \"{url}\"\n"),
    )
}

/// A fresh app name, so tests sharing one Redis do not share keys.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_state_through_redis() {
    let Some((url, _redis)) = redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), &unique("shared"));
    let config = redis_config(dir.path(), &url);
    let config = config.to_str().unwrap();
    let a = serve(&app, &dir.path().join("a"), &["--runtime-config", config]);
    let b = serve(&app, &dir.path().join("b"), &["--runtime-config", config]);

    assert_eq!(put(a.addr, "doc", "{\"from\":\"a\"}").await.status, 200);
    assert_eq!(get(b.addr, "/items/doc").await.text(), "{\"from\":\"a\"}");
    assert_eq!(get_delete(b.addr, "doc").await, "deleted doc\n");
    assert_eq!(get(a.addr, "/items/doc").await.status, 404);

    // 500 increments split over both hosts: exact.
    let totals = increments(&[&a, &b], 500).await;
    assert_eq!(totals, (1..=500).collect::<Vec<u64>>());
    assert_eq!(get(b.addr, "/count/peek").await.text(), "visits: 500\n");
    let reply = get(a.addr, "/count/cas-conflict").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (409, "conflict: the value is now 1000\n")
    );
    // 100 compare-and-swap loops at once over both hosts: exact, and they
    // did conflict.
    let replies = all_at_once(&[&a, &b], 100, "/count/cas-add").await;
    assert_eq!(get(a.addr, "/count/peek").await.text(), "visits: 1100\n");
    let conflicts = conflicts(&replies);
    assert!(conflicts > 0, "100 concurrent cas-adds never conflicted");
    eprintln!("100 concurrent cas-adds over two hosts retried {conflicts} conflicts");

    // Listing pages through Redis's cursor; a cursor it did not give is
    // refused as the guest's error.
    for i in 0..150 {
        assert_eq!(put(a.addr, &format!("k{i}"), "1").await.status, 200);
    }
    let listed: Vec<String> = serde_json::from_slice(&get(b.addr, "/items").await.body).unwrap();
    assert_eq!(listed.len(), 150);
    let reply = get(b.addr, "/items?cursor=not-a-cursor").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (500, "list failed: other: invalid cursor `not-a-cursor`\n")
    );
    // The guest's mistake, not a backend failure: no warning for it. (A
    // line logged after it marks how far the output has been read.)
    assert_eq!(
        get(b.addr, "/count/log?context=fence&message=fence")
            .await
            .text(),
        "logged\n"
    );
    let output = b.wait_for_output("[warn fence]: fence");
    assert!(!output.contains("invalid cursor"), "{output}");

    // A batch read that would add up to more than 16 MiB is refused in
    // Redis, before the values are sent.
    assert_batch_reads_are_bounded(a.addr).await;
    assert_eq!(get(b.addr, "/items/big-0").await.body.len(), 1 << 20);
}

#[tokio::test]
async fn a_backend_failure_is_the_guests_error_and_the_host_keeps_serving() {
    // Needs a Redis of its own, to stop it.
    let redis = match RedisServer::start() {
        Some(redis) => redis,
        None if std::env::var_os("MAYFLY_REQUIRE_REDIS").is_some() => {
            panic!("MAYFLY_REQUIRE_REDIS is set, but redis-server cannot be started")
        }
        None => {
            eprintln!("SKIPPED: no redis-server on PATH");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), &unique("down"));
    let config = redis_config(dir.path(), &redis.url());
    let server = serve(
        &app,
        &dir.path().join("data"),
        &["--runtime-config", config.to_str().unwrap()],
    );
    assert_eq!(get(server.addr, "/count").await.text(), "visits: 1\n");
    drop(redis);
    let reply = get(server.addr, "/count").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().starts_with("increment failed: other: redis: "),
        "{}",
        reply.text()
    );
    server.wait_for_output("key-value store `default`: redis: ");
    // Everything without the backend goes on.
    assert_eq!(
        get(server.addr, "/config?key=greeting").await.text(),
        "hello"
    );
}

#[test]
fn a_bad_runtime_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), "badconfig");
    let config = write_file(
        dir.path(),
        "runtime.toml",
        "[key_value]\nbackend = \"redis\"\n",
    );
    let output = crate::harness::run_mayfly(&[
        std::ffi::OsStr::new("serve"),
        app.as_os_str(),
        std::ffi::OsStr::new("--runtime-config"),
        config.as_os_str(),
        std::ffi::OsStr::new("--listen"),
        std::ffi::OsStr::new("127.0.0.1:0"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("field `key_value.url`: the `redis` backend needs a URL"),
        "{stderr}"
    );
}

/// The data directory and the database files Mayfly makes are this user's
/// alone.
#[tokio::test]
async fn the_data_directory_and_its_database_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), "private");
    let data = dir.path().join("data").join("nested");
    let server = serve(&app, &data, &[]);
    let reply = get(server.addr, "/count").await;
    assert_eq!(reply.text(), "visits: 1\n");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&data.join("private.redb")), 0o600);
}

/// A data directory that is there already is made private as well, and
/// one that others could write to (and so plant files in) is refused.
#[tokio::test]
async fn an_existing_data_directory_is_made_private_or_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let app = manifest(dir.path(), "existing");
    let data = dir.path().join("data");
    let set = |mode| std::fs::set_permissions(&data, std::fs::Permissions::from_mode(mode));
    std::fs::create_dir(&data).unwrap();
    set(0o755).unwrap();
    let server = serve(&app, &data, &[]);
    assert_eq!(get(server.addr, "/count").await.text(), "visits: 1\n");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    drop(server);

    set(0o777).unwrap();
    let output = crate::harness::run_mayfly(&[
        "serve".as_ref(),
        app.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "data directory {0} is writable by group or others (mode 0777), so its data cannot \
             be trusted; fix with `chmod 700 {0}`",
            data.display()
        )),
        "{stderr}"
    );
}
