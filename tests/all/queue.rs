//! The admission gate of a component (`instances`, `queue`): beyond its
//! instances requests queue, beyond the queue they get 503 at once, a client
//! that gives up while queued leaves the queue, and the versions of a
//! component share one gate, so a swap never doubles the instances running.
//! A component of either world is admitted the same way.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::AsyncWriteExt as _;

use crate::guests;
use crate::harness::{Client, Reply, Server, World, for_both_worlds, full, get, write_file};

const TOKEN: &str = "queue-test-admin-token-0123";

/// `slow` at `/slow`, one instance at a time and one request in its queue;
/// the admin API on for `/metrics`.
fn start(dir: &Path) -> Server {
    start_of(dir, World::P2)
}

/// [`start`], with the `slow` guest of `world`.
fn start_of(dir: &Path, world: World) -> Server {
    let manifest = format!(
        r#"
[component.slow]
source = {slow:?}
[component.slow.limits]
instances = 1
queue = 1
timeout = "50s"

[[route]]
path = "/slow"
component = "slow"
"#,
        slow = world.slow(),
    );
    let app = write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", TOKEN);
    Server::start_with(&[
        app.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ])
}

async fn admin(server: &Server, request: http::Request<crate::harness::Body>) -> Reply {
    let mut client = Client::connect(server.admin.expect("no admin API")).await;
    client.send(request).await.unwrap()
}

/// Gauge `name` of component `slow`.
async fn gauge(server: &Server, name: &str) -> f64 {
    server
        .metric(&format!("{name}{{component=\"slow\"}}"))
        .await
}

/// Waits until gauge `name` of component `slow` reads `value`.
async fn wait_gauge(server: &Server, name: &str, value: f64) {
    server
        .wait_metric(&format!("{name}{{component=\"slow\"}}"), value)
        .await;
}

/// Holds the only instance of `slow` for `ms` milliseconds.
async fn hold(server: &Server, ms: u32) -> tokio::task::JoinHandle<Reply> {
    let addr = server.addr;
    let held = tokio::spawn(async move { get(addr, &format!("/slow?ms={ms}")).await });
    wait_gauge(server, "mayfly_instances_in_flight", 1.0).await;
    held
}

/// Sends a request and leaves it unanswered on its connection.
async fn queue_one(addr: SocketAddr) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /slow?ms=1 HTTP/1.1\r\nhost: queue\r\n\r\n")
        .await
        .unwrap();
    stream
}

#[tokio::test]
async fn clients_that_give_up_while_queued_leave_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let held = hold(&server, 15_000).await;

    // Three clients queue, then hang up before their turn.
    for _ in 0..3 {
        let stream = queue_one(server.addr).await;
        wait_gauge(&server, "mayfly_queue_length", 1.0).await;
        drop(stream);
        wait_gauge(&server, "mayfly_queue_length", 0.0).await;
    }

    // The queue has room again: the next request waits for its turn and
    // is served, rather than refused with 503.
    assert!(!held.is_finished(), "the instance was not held long enough");
    let addr = server.addr;
    let queued = tokio::spawn(async move { get(addr, "/slow?ms=1").await });
    wait_gauge(&server, "mayfly_queue_length", 1.0).await;
    let reply = queued.await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "slept 1 ms\n")
    );
    assert_eq!(held.await.unwrap().text(), "slept 15000 ms\n");
    wait_gauge(&server, "mayfly_queue_length", 0.0).await;
    wait_gauge(&server, "mayfly_instances_in_flight", 0.0).await;
}

#[tokio::test]
async fn versions_of_a_component_share_its_instances_and_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let held = hold(&server, 8_000).await;

    // A new version goes live while the old one still runs a request.
    let deploy = http::Request::put("/v1/components/slow")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(full(std::fs::read(guests::SLOW).unwrap()))
        .unwrap();
    let reply = admin(&server, deploy).await;
    assert_eq!(reply.text(), r#"{"component":"slow","version":2}"#);

    // The gauges count the old version's request...
    assert!(!held.is_finished(), "the instance was not held long enough");
    assert_eq!(gauge(&server, "mayfly_instances_in_flight").await, 1.0);
    assert_eq!(gauge(&server, "mayfly_queue_length").await, 0.0);
    // ...and the new version's first request waits for that instance
    // rather than running beside it.
    let addr = server.addr;
    let queued = tokio::spawn(async move { get(addr, "/slow?ms=1").await });
    wait_gauge(&server, "mayfly_queue_length", 1.0).await;
    assert_eq!(gauge(&server, "mayfly_instances_in_flight").await, 1.0);
    // With the queue full, one more is refused.
    let reply = get(server.addr, "/slow?ms=1").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(!held.is_finished(), "the instance was not held long enough");

    assert_eq!(queued.await.unwrap().text(), "slept 1 ms\n");
    assert_eq!(held.await.unwrap().text(), "slept 8000 ms\n");
}

for_both_worlds! {
    async fn beyond_the_instance_limit_requests_queue_then_get_503(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = start_of(dir.path(), world);
        // The first runs, the second waits in the queue...
        let first = hold(&server, 6_000).await;
        let addr = server.addr;
        let second = tokio::spawn(async move { get(addr, "/slow?ms=10").await });
        wait_gauge(&server, "mayfly_queue_length", 1.0).await;
        // ...and the third finds the queue full, and is told so at once, not
        // after the first has finished.
        let third = get(server.addr, "/slow?ms=10").await;
        assert!(
            !first.is_finished(),
            "the 503 waited for the running request"
        );
        assert_eq!(third.status, 503);
        assert_eq!(third.header("retry-after"), "1");
        assert_eq!(
            third.text(),
            "component `slow` is at its limit of 1 concurrent requests; retry shortly\n"
        );
        assert_eq!(first.await.unwrap().text(), "slept 6000 ms\n");
        assert_eq!(second.await.unwrap().text(), "slept 10 ms\n");
        wait_gauge(&server, "mayfly_queue_length", 0.0).await;
        wait_gauge(&server, "mayfly_instances_in_flight", 0.0).await;
        assert_eq!(
            server
                .metric("mayfly_limit_hits_total{component=\"slow\",kind=\"concurrency\"}")
                .await,
            1.0
        );
        assert_eq!(
            server
                .metric("mayfly_requests_total{component=\"slow\",status=\"503\"}")
                .await,
            1.0
        );
    }
}

/// A finished instance is torn down after its response is written, unless
/// its turn is the component's last free one: then first, so a client
/// that sends its next request as soon as it has the answer (on a new
/// connection, which may reach another worker) always finds the turn free.
#[tokio::test]
async fn back_to_back_requests_fit_one_instance_with_no_queue() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[component.slow]
source = {slow:?}
[component.slow.limits]
instances = 1
queue = 0

[[route]]
path = "/slow"
component = "slow"
"#,
        slow = guests::SLOW,
    );
    let app = write_file(dir.path(), "app.toml", manifest);
    let server = Server::start(&app);
    for n in 0..200 {
        let reply = get(server.addr, "/slow?ms=0").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "slept 0 ms\n"),
            "request {n}"
        );
    }
}
