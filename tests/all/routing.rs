//! Routes, 404s, keep-alive, and single-component mode.

use crate::guests;
use crate::harness::{Client, Server, get, test_app};

#[tokio::test]
async fn routes_pick_the_most_specific_match_and_unmatched_paths_get_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&test_app(dir.path()));
    let mut client = Client::connect(server.addr).await;

    let hello = client.get("/").await;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "Hello from Mayfly!\n");
    assert_eq!(hello.header("content-type"), "text/plain; charset=utf-8");

    // Same keep-alive connection: the prefix route, then an exact route that
    // sits inside the prefix and must win over it.
    let echo = client.get("/echo/a/b?x=1&y=2").await;
    assert_eq!(echo.status, 200);
    assert_eq!(echo.header("x-echo-path"), "/echo/a/b");
    assert_eq!(echo.header("x-echo-query"), "x=1&y=2");
    let prefix_root = client.get("/echo").await;
    assert_eq!(prefix_root.header("x-echo-path"), "/echo");
    let special = client.get("/echo/special").await;
    assert_eq!(special.text(), "Hello from Mayfly!\n");

    for path in ["/nothing", "/echoes", "/probe/extra", "/hello"] {
        let missing = client.get(path).await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(missing.text(), "no route matches this path\n");
    }
}

#[tokio::test]
async fn serve_prints_the_bound_address_and_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&test_app(dir.path()));
    let output = server.output();
    assert!(
        output.contains(&format!("Serving app `test-app` on http://{}", server.addr)),
        "{output}"
    );
    for route in [
        "/echo/...",
        "-> echo",
        "/echo/special",
        "/trap/...",
        "-> slow",
    ] {
        assert!(output.contains(route), "banner lacks `{route}`:\n{output}");
    }
}

#[tokio::test]
async fn a_single_component_serves_every_path() {
    let server = Server::start_with(&[guests::HELLO]);
    for path in ["/", "/anything", "/deep/path?q=1"] {
        let reply = get(server.addr, path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.text(), "Hello from Mayfly!\n");
    }
    assert!(server.output().contains("/...  "), "{}", server.output());
}

#[tokio::test]
async fn the_built_in_demo_app_serves_without_arguments() {
    let server = Server::start_with(&[]);
    assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
    let probe = get(server.addr, "/probe").await;
    assert!(probe.text().starts_with("count=1 "), "{}", probe.text());
    assert_eq!(
        get(server.addr, "/echo/x").await.header("x-echo-path"),
        "/echo/x"
    );
    // The stateful part runs on the embedded store, in the data directory.
    assert_eq!(get(server.addr, "/count").await.text(), "visits: 1\n");
    assert_eq!(get(server.addr, "/count").await.text(), "visits: 2\n");
    assert_eq!(get(server.addr, "/items").await.text(), "[]");
}

#[tokio::test]
async fn a_request_with_two_host_headers_is_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&test_app(dir.path()));
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(crate::harness::PATIENCE, stream.read(&mut answer))
        .await
        .expect("no answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.ends_with("more than one Host header\n"), "{answer}");
    // One is served.
    let reply = get(server.addr, "/").await;
    assert_eq!(reply.status, 200);
}
