//! Every request gets a fresh instance: nothing survives from one request to
//! the next, sequentially or in parallel.

use http::Request;

use crate::harness::{Client, Server, for_both_worlds, full, get, test_app, write_file};

const FRESH: &str = "count=1 heap_items=1 pages_at_start=";

for_both_worlds! {
    /// The probe of `world` at `/probe`, its twin of the other world at
    /// `/other/probe`: sequentially, with memory grown in between, and in
    /// parallel, next to requests to the other world.
    async fn the_probe_never_sees_state_from_another_request(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            r#"
[component.probe]
source = {probe:?}
[component.other]
source = {other:?}

[[route]]
path = "/probe"
component = "probe"
[[route]]
path = "/other/probe"
component = "other"
"#,
            probe = world.probe(),
            other = world.other().probe(),
        );
        let server = Server::start(&write_file(dir.path(), "app.toml", manifest));
        let mut client = Client::connect(server.addr).await;

        let first = client.get("/probe").await.text();
        assert!(first.starts_with(FRESH), "{first}");
        for i in 0..50 {
            // Odd requests grow memory by 64 pages; the next one must still
            // start with the original size.
            let path = if i % 2 == 1 {
                "/probe?grow=64"
            } else {
                "/probe"
            };
            let reply = client.get(path).await;
            assert_eq!(reply.status, 200);
            assert_eq!(
                reply.text(),
                first,
                "request {i} saw state from an earlier one"
            );
        }
        // In parallel, next to the other world's requests.
        let addr = server.addr;
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                tokio::spawn(async move {
                    let path = if i % 2 == 0 { "/probe" } else { "/other/probe" };
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
}

for_both_worlds! {
    /// A reused slot's memory is reset in place however scattered the
    /// guest's writes were (`vendor/wasmtime`'s fix: wasmtime 48 reset only
    /// the first 32 dirty runs and decommitted the rest, which the next
    /// instance faulted back in): the probe writes to 256 separate pages a
    /// request, and on the next request through the same slot takes almost
    /// no page faults and finds every page zero again.
    async fn scattered_writes_are_reset_in_place_and_never_survive(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            r#"
[component.probe]
source = {probe:?}
limits = {{ instances = 1 }}

[[route]]
path = "/probe"
component = "probe"
"#,
            probe = world.probe(),
        );
        let server = Server::start(&write_file(dir.path(), "app.toml", manifest));
        let mut client = Client::connect(server.addr).await;
        let fresh = |text: &str| text.starts_with(FRESH) && text.ends_with(" dirty=256 stale=0\n");

        // The first requests fault the slot's pages in, once.
        for _ in 0..5 {
            let reply = client.get("/probe?dirty=256").await;
            assert_eq!(reply.status, 200);
            assert!(fresh(&reply.text()), "{}", reply.text());
        }
        let requests = 20;
        let before = server.minor_faults();
        for i in 0..requests {
            let reply = client.get("/probe?dirty=256").await;
            assert_eq!(reply.status, 200);
            assert!(fresh(&reply.text()), "request {i}: {}", reply.text());
        }
        let faults = server.minor_faults() - before;
        // Without the fix: a read and a write fault for each of the 224
        // pages past the first 32 runs, every request. With it: the host's
        // own odd fault.
        assert!(
            faults < 64 * requests,
            "{faults} minor faults in {requests} requests, {} per request",
            faults / requests
        );
    }
}

#[tokio::test]
async fn two_hundred_parallel_requests_all_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&test_app(dir.path()));
    let addr = server.addr;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                match i % 3 {
                    0 => {
                        let body = format!("request number {i}");
                        let request = Request::post(format!("/echo/{i}"))
                            .body(full(body.clone()))
                            .unwrap();
                        let reply = client.send(request).await.unwrap();
                        assert_eq!(reply.status, 200);
                        assert_eq!(reply.header("x-echo-path"), format!("/echo/{i}"));
                        assert_eq!(reply.text(), body);
                    }
                    1 => {
                        let reply = client.get("/probe").await;
                        assert_eq!(reply.status, 200);
                        assert!(reply.text().starts_with(FRESH), "{}", reply.text());
                    }
                    _ => {
                        let reply = client.get("/").await;
                        assert_eq!(reply.status, 200);
                        assert_eq!(reply.text(), "Hello from Mayfly!\n");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
