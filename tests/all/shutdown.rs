//! SIGTERM and SIGINT: stop accepting, finish what is in flight, exit 0.

use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;

use crate::harness::{PATIENCE, Server, in_flight, test_app};

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
    let request = http::Request::get("/slow?ms=3000&head_first=1")
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
    assert_eq!(&body[..], b"sleeping\nslept 3000 ms\n");

    let status = server.wait_exit(PATIENCE).expect("server did not exit");
    assert!(status.success(), "exit status {status:?}");
    // It waited for the guest rather than exiting at once.
    assert!(signalled.elapsed() >= Duration::from_millis(1000));
    // (The output is read by another thread: it may lag the exit.)
    let output = server.wait_for_output("mayfly: stopped\n");
    assert!(output.contains("shutting down"), "{output}");
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

#[tokio::test]
async fn new_connections_are_refused_as_soon_as_shutdown_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&test_app(dir.path()));
    let addr = server.addr;
    let response = in_flight(addr, "/slow?ms=6000&head_first=1").await;
    let body = crate::harness::rest_of_body(response);
    server.signal("TERM");

    // While the slow request is still running, the port stops taking
    // connections: nobody would serve them.
    let refused = loop {
        assert!(
            !body.is_finished(),
            "new connections were still accepted while the server drained"
        );
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => drop(stream),
            Err(err) => break err,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A connection that raced the close of the listener is reset rather than
    // refused; once the listener is gone every attempt is refused.
    assert!(
        matches!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
        ),
        "unexpected connect error: {refused}"
    );
    let again = tokio::net::TcpStream::connect(addr)
        .await
        .expect_err("a connection was accepted after the listener closed");
    assert_eq!(again.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        !body.is_finished(),
        "the slow request finished before new connections were refused"
    );

    let body = body.await.unwrap();
    assert_eq!(&body[..], b"sleeping\nslept 6000 ms\n");
    let status = server.wait_exit(PATIENCE).expect("server did not exit");
    assert!(status.success(), "exit status {status:?}");
    // (The output is read by another thread: it may lag the exit.)
    server.wait_for_output("mayfly: stopped\n");
}

#[tokio::test]
async fn the_grace_period_bounds_the_wait_for_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(dir.path());
    let mut server = Server::start_with(&[app.to_str().unwrap(), "--shutdown-grace", "1"]);
    // A request that would run for 30 s.
    let response = in_flight(server.addr, "/slow?ms=30000&head_first=1").await;
    let signalled = Instant::now();
    server.signal("TERM");
    // Well before the request could have finished, but not before the
    // grace period was up.
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server waited past its grace period");
    assert!(status.success(), "exit status {status:?}");
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "exited after {waited:?}, before its 1 s grace period"
    );
    server.wait_for_output("mayfly: stopped; the grace period ended with requests in flight\n");
    // The request was cut off, not completed.
    let body = tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await
        .expect("the cut-off request hung");
    assert!(body.is_err(), "the request completed: {body:?}");
}
