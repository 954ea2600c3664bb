//! Request and response bodies stream through the guest, of either world.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::harness::{Body, Client, Server, for_both_worlds, test_app, write_file};

const MIB: usize = 1 << 20;

/// A body of `total` bytes sent in 64 KiB chunks with a recognisable pattern.
fn chunked_body(total: usize) -> Body {
    let chunks = (0..total.div_ceil(64 * 1024)).map(move |i| {
        let start = i * 64 * 1024;
        let end = (start + 64 * 1024).min(total);
        let chunk: Vec<u8> = (start..end).map(pattern).collect();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(chunk)))
    });
    StreamBody::new(futures_util::stream::iter(chunks)).boxed()
}

fn pattern(i: usize) -> u8 {
    u8::try_from((i * 31 + i / 4096) % 251).unwrap()
}

for_both_worlds! {
    async fn echo_streams_back_a_10_mib_chunked_body_with_request_metadata(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            "[component.echo]\nsource = {:?}\n\n\
             [[route]]\npath = \"/echo/...\"\ncomponent = \"echo\"\n",
            world.echo()
        );
        let server = Server::start(&write_file(dir.path(), "app.toml", manifest));
        let mut client = Client::connect(server.addr).await;
        let total = 10 * MIB;
        let request = Request::put("/echo/upload?name=big")
            .header("x-custom", "custom value")
            .body(chunked_body(total))
            .unwrap();
        let reply = client.send(request).await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-echo-method"), "PUT");
        assert_eq!(reply.header("x-echo-path"), "/echo/upload");
        assert_eq!(reply.header("x-echo-query"), "name=big");
        assert_eq!(reply.header("x-echo-header-x-custom"), "custom value");
        assert_eq!(reply.body.len(), total);
        let mismatch = reply
            .body
            .iter()
            .enumerate()
            .find(|(i, b)| **b != pattern(*i));
        assert_eq!(mismatch, None, "echoed body differs from what was sent");
    }
}

#[tokio::test]
async fn a_100_mib_upload_is_not_buffered_in_host_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&test_app(dir.path()));
    let mut client = Client::connect(server.addr).await;
    // Warm up so the baseline includes the server's steady-state memory.
    assert_eq!(client.get("/").await.status, 200);
    let (_, peak_before) = server.rss_kib();

    let total = 100 * MIB;
    let request = Request::post("/echo/big")
        .body(chunked_body(total))
        .unwrap();
    let reply = client.send(request).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), total);

    let (_, peak_after) = server.rss_kib();
    let growth_mib = (peak_after.saturating_sub(peak_before)) / 1024;
    assert!(
        growth_mib < 48,
        "peak RSS grew by {growth_mib} MiB while streaming 100 MiB: the body was buffered"
    );
}
