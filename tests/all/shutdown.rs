//! SIGTERM and SIGINT: stop accepting, finish what is in flight, exit 0.

use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;

use crate::guests;
use crate::harness::{PATIENCE, Server, test_app};

#[tokio::test]
async fn sigterm_lets_an_in_flight_slow_request_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&test_app(dir.path()));
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("/slow?ms=1500&head_first=1")
        .header("host", server.addr.to_string())
        .body(crate::harness::full(""))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    // The head has arrived, so the guest is running: now ask the server to stop.
    let signalled = Instant::now();
    server.signal("TERM");

    let body = tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await
        .expect("the in-flight request hung")
        .expect("the in-flight request was cut off by the shutdown")
        .to_bytes();
    assert_eq!(&body[..], b"sleeping\nslept 1500 ms\n");

    let status = server.wait_exit(PATIENCE).expect("server did not exit");
    assert!(status.success(), "exit status {status:?}");
    // It waited for the guest rather than exiting at once.
    assert!(signalled.elapsed() >= Duration::from_millis(1000));
    let output = server.output();
    assert!(output.contains("shutting down"), "{output}");
    assert!(output.contains("mayfly: stopped\n"), "{output}");
    assert!(guests::SLOW.ends_with("slow.wasm"));
}

#[tokio::test]
async fn sigint_on_an_idle_server_exits_0_promptly_and_stops_accepting() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&test_app(dir.path()));
    assert_eq!(crate::harness::get(server.addr, "/").await.status, 200);
    let addr = server.addr;
    server.signal("INT");
    let status = server.wait_exit(PATIENCE).expect("server did not exit");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after exit"
    );
}
