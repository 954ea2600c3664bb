//! A guest that traps costs its own request and nothing else.

use std::time::{Duration, Instant};

use crate::harness::{Client, PATIENCE, Server, get, test_app};

#[tokio::test]
pub(crate) async fn a_trap_before_the_response_gives_500_and_the_next_request_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&test_app(dir.path()));
    let mut client = Client::connect(server.addr).await;
    for _ in 0..3 {
        let reply = client.get("/trap/now").await;
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.text(),
            "component `trap` failed: wasm trap: wasm `unreachable` instruction executed\n"
        );
        // The same connection keeps working, and so does everything else.
        assert_eq!(client.get("/").await.text(), "Hello from Mayfly!\n");
        assert_eq!(
            client.get("/echo/after").await.header("x-echo-path"),
            "/echo/after"
        );
        let probe = client.get("/probe").await;
        assert_eq!(probe.status, 200);
        assert!(probe.text().starts_with("count=1 "), "{}", probe.text());
        assert_eq!(client.get("/slow?ms=1").await.text(), "slept 1 ms\n");
    }
    // The host log has the trap and the guest's own panic message, both
    // tagged with the component and the request.
    let output = server.wait_for_output("request 1 stderr: trap guest");
    assert!(
        output.contains("mayfly: component `trap` request 1: trapped: "),
        "{output}"
    );
    assert!(
        output.contains(
            "mayfly: component `trap` request 1 stderr: trap guest: panicking before the response on purpose"
        ),
        "{output}"
    );
}

#[tokio::test]
async fn a_trap_mid_body_cuts_the_response_short_and_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&test_app(dir.path()));
    let mut client = Client::connect(server.addr).await;
    let request = http::Request::get("/trap/mid?when=mid-body")
        .body(crate::harness::full(""))
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), client.send(request)).await;
    let outcome = outcome.expect("the connection hung after the guest trapped");
    let err = outcome.expect_err("a body cut short by a trap must not look complete");
    assert!(
        err.is_incomplete_message()
            || err.is_body_write_aborted()
            || err.to_string().contains("body"),
        "{err}"
    );
    // A new connection is served normally, by every component.
    assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
    probe_and_slow_still_serve(server.addr).await;
}

#[tokio::test]
async fn requests_beyond_the_instance_limit_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(dir.path());
    let server = Server::start_with(&[app.to_str().unwrap(), "--max-instances", "1"]);

    // Hold the only instance: once the head is in, the guest is running
    // (and sleeping) in the only slot.
    let response = crate::harness::in_flight(server.addr, "/slow?ms=3000&head_first=1").await;
    let held = crate::harness::rest_of_body(response);
    let refused = get(server.addr, "/").await;
    assert!(
        !held.is_finished(),
        "the slow request finished before the limit was checked"
    );
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(
        refused.text(),
        "the server is at its instance limit; retry shortly\n"
    );

    let slow = held.await.unwrap();
    assert_eq!(&slow[..], b"sleeping\nslept 3000 ms\n");
    // The slot is free again, for every component (once the finished
    // instance has been torn down, which may lag the end of its body).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = get(server.addr, "/").await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    probe_and_slow_still_serve(server.addr).await;
}

/// A fresh probe instance and the slow component both answer normally.
async fn probe_and_slow_still_serve(addr: std::net::SocketAddr) {
    assert!(get(addr, "/probe").await.text().starts_with("count=1 "));
    assert_eq!(get(addr, "/slow?ms=1").await.text(), "slept 1 ms\n");
}
