//! Service chaining: components call each other at
//! `http://NAME.mayfly.internal`, in process, each hop a fresh instance
//! with its own grants; calls need a grant; a hop limit stops loops.

use std::path::Path;

use http::Request;

use crate::guests;
use crate::harness::{Client, Server, full, get, write_file};

/// `front` may call `middle` and `trap`, `middle` may call `back` (hello);
/// `looper` may call itself; `bare` may call nothing.
fn app(dir: &Path) -> Server {
    let manifest = format!(
        r#"
[component.front]
source = {caps:?}
allowed_outbound_hosts = ["http://middle.mayfly.internal", "http://trap.mayfly.internal"]

[component.middle]
source = {caps:?}
allowed_outbound_hosts = ["http://back.mayfly.internal"]
env = {{ WHO = "middle" }}

[component.back]
source = {hello:?}

[component.trap]
source = {trap:?}

[component.looper]
source = {caps:?}
allowed_outbound_hosts = ["http://looper.mayfly.internal", "http://nobody.mayfly.internal"]

[component.bare]
source = {caps:?}

[component.wild]
source = {caps:?}
allowed_outbound_hosts = ["http://*", "http://*.internal", "http://*.mayfly.internal"]

[[route]]
path = "/front"
component = "front"
[[route]]
path = "/looper"
component = "looper"
[[route]]
path = "/bare"
component = "bare"
[[route]]
path = "/wild"
component = "wild"
"#,
        caps = guests::CAPABILITIES,
        hello = guests::HELLO,
        trap = guests::TRAP,
    );
    Server::start(&write_file(dir, "app.toml", manifest))
}

/// Percent-encodes a URL for a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks front to fetch from `middle` (a host name) what middle fetches from
/// `back`: front's status and body.
async fn front_middle_back(server: &Server, middle: &str, back: &str) -> (u16, String) {
    let inner = format!("http://{back}/");
    let middle = format!("http://{middle}/m?op=fetch&url={}", encode(&inner));
    let reply = get(
        server.addr,
        &format!("/front?op=fetch&url={}", encode(&middle)),
    )
    .await;
    (reply.status.as_u16(), reply.text())
}

#[tokio::test]
async fn a_three_component_chain_runs_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    // front got middle's answer (200), which is back's answer (200 hello).
    assert_eq!(
        front_middle_back(&server, "middle.mayfly.internal", "back.mayfly.internal").await,
        (200, "200 200 Hello from Mayfly!\n".to_string())
    );
    // Each hop is its own instance with its own grants: middle's variable
    // is not front's.
    let env = "http://middle.mayfly.internal/m?op=getenv&name=WHO";
    let reply = get(server.addr, &format!("/front?op=fetch&url={}", encode(env))).await;
    assert_eq!(reply.text(), "200 middle");
    let reply = get(server.addr, "/front?op=getenv&name=WHO").await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn calls_need_a_grant() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    // bare has no grant; front may call middle but not back directly;
    // wild's wildcards reach every host but the app's components.
    for (component, url) in [
        ("bare", "http://back.mayfly.internal/"),
        ("front", "http://back.mayfly.internal/"),
        ("wild", "http://back.mayfly.internal/"),
        ("wild", "http://middle.mayfly.internal/m?op=getenv&name=WHO"),
    ] {
        let reply = get(
            server.addr,
            &format!("/{component}?op=fetch&url={}", encode(url)),
        )
        .await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (403, "denied: ErrorCode::HttpRequestDenied"),
            "{component} -> {url}"
        );
    }
    // A granted name with no component behind it.
    let reply = get(
        server.addr,
        &format!(
            "/looper?op=fetch&url={}",
            encode("http://nobody.mayfly.internal/")
        ),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (502, "denied: ErrorCode::DestinationNotFound")
    );
    server.wait_for_output("internal call to `nobody` failed: the app has no such component");
}

#[tokio::test]
async fn a_loop_stops_at_the_hop_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    // A request that asks to be forwarded to itself 12 times.
    let mut url = "http://looper.mayfly.internal/looper?op=getenv&name=X".to_string();
    for _ in 0..12 {
        url = format!(
            "http://looper.mayfly.internal/looper?op=fetch&url={}",
            encode(&url)
        );
    }
    let path = url.strip_prefix("http://looper.mayfly.internal").unwrap();
    let reply = get(server.addr, path).await;
    assert_eq!(reply.status, 200);
    // Eight hops went through; the ninth was refused as a loop.
    assert_eq!(
        reply.text(),
        format!(
            "{}denied: ErrorCode::LoopDetected",
            "200 ".repeat(7) + "502 "
        )
    );
    server.wait_for_output("internal call to `looper` failed: more than 8 hops (a loop?)");
}

#[tokio::test]
async fn internal_names_are_case_insensitive_and_never_go_to_dns() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    // The grant matches without regard to case; so must the dispatch, or
    // the call would leave the host for a DNS lookup of the name.
    assert_eq!(
        front_middle_back(&server, "Middle.MAYFLY.Internal", "BACK.mayfly.internal").await,
        (200, "200 200 Hello from Mayfly!\n".to_string())
    );
}

#[tokio::test]
async fn a_hop_goes_by_the_request_id_of_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    let mut client = Client::connect(server.addr).await;
    // front calls trap without an `x-request-id` of its own: the hop runs
    // under front's id, given here by the client.
    let request = Request::get(format!(
        "/front?op=fetch&url={}",
        encode("http://trap.mayfly.internal/now")
    ))
    .header("x-request-id", "chain-7f3a")
    .body(full(""))
    .unwrap();
    let reply = client.send(request).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), "chain-7f3a");
    assert!(reply.text().starts_with("500 "), "{}", reply.text());
    server.wait_for_output("mayfly: component `trap` request chain-7f3a: trapped: ");

    // Without an id from the client, the host makes one for front, and the
    // hop gets the same one.
    let request = Request::get(format!(
        "/front?op=fetch&url={}",
        encode("http://trap.mayfly.internal/now")
    ))
    .body(full(""))
    .unwrap();
    let reply = client.send(request).await.unwrap();
    let id = reply.header("x-request-id").to_string();
    server.wait_for_output(&format!("mayfly: component `trap` request {id}: trapped: "));
}

#[tokio::test]
async fn a_hop_ends_with_the_request_it_is_part_of() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[component.hasty]
source = {caps:?}
allowed_outbound_hosts = ["http://sleeper.mayfly.internal"]
limits = {{ timeout = "400ms" }}

[component.sleeper]
source = {slow:?}
limits = {{ timeout = "60s" }}

[[route]]
path = "/hasty"
component = "hasty"
"#,
        caps = guests::CAPABILITIES,
        slow = guests::SLOW,
    );
    let server = Server::start(&write_file(dir.path(), "app.toml", manifest));
    let started = std::time::Instant::now();
    let reply = get(
        server.addr,
        &format!(
            "/hasty?op=fetch&url={}",
            encode("http://sleeper.mayfly.internal/slow?ms=20000")
        ),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (
            504,
            "component `hasty` exceeded its request deadline of 400ms\n"
        )
    );
    // The hop it was waiting for is stopped at the same deadline, not at
    // its own 60 s (nor after the 20 s it asked to sleep).
    let stopped = loop {
        let output = server.output();
        if let Some(line) = output.lines().find(|line| {
            line.contains("component `sleeper` request ")
                && line.contains(": request deadline of ")
                && line.ends_with(" exceeded")
        }) {
            break line.to_string();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "the hop was not stopped with its caller; the server printed:\n{output}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Its budget was what was left of the caller's 400 ms (printed in ms),
    // not its own 60 s.
    assert!(stopped.ends_with("ms exceeded"), "{stopped}");
}
