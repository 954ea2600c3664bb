//! Outbound HTTP: a component reaches only the hosts its manifest lists, a
//! refusal is an HTTP error code inside the guest (not a trap) and a log
//! line, an upstream that never answers costs only the request's deadline,
//! and raw sockets are always denied.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::guests;
use crate::harness::{Server, get, write_file};

const BOUND: Duration = Duration::from_secs(30);
const DENIED: &str = "denied: ErrorCode::HttpRequestDenied";
/// What a guest's `TcpStream::connect` fails with: `wasi:sockets` answers
/// `access-denied`, which the guest's libc reports as `EACCES`.
const SOCKET_DENIED: &str = "denied: Permission denied (os error 2)";

/// A listener that accepts connections and never answers.
struct Silent {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Silent {
    fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        Self { listener, addr }
    }

    /// Whether anybody connected since the last call.
    fn was_contacted(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

/// `caps` may call `upstream`; `stall` may call `silent` and has a 2 s
/// deadline; `bare` may call nothing.
fn app(dir: &Path, upstream: SocketAddr, silent: SocketAddr) -> Server {
    let manifest = format!(
        r#"
[component.caps]
source = {caps:?}
allowed_outbound_hosts = ["http://{upstream}"]

[component.stall]
source = {caps:?}
allowed_outbound_hosts = ["http://{silent}"]

[component.stall.limits]
timeout = "2s"

[component.bare]
source = {caps:?}

[[route]]
path = "/caps"
component = "caps"
[[route]]
path = "/stall"
component = "stall"
[[route]]
path = "/bare"
component = "bare"
"#,
        caps = guests::CAPABILITIES,
    );
    Server::start(&write_file(dir, "app.toml", manifest))
}

struct Setup {
    _dir: tempfile::TempDir,
    upstream: Server,
    silent: Silent,
    server: Server,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Server::start(Path::new(guests::HELLO));
    let silent = Silent::bind();
    let server = app(dir.path(), upstream.addr, silent.addr);
    Setup {
        _dir: dir,
        upstream,
        silent,
        server,
    }
}

async fn fetch(server: &Server, component: &str, url: &str) -> crate::harness::Reply {
    let path = format!("/{component}?op=fetch&url={url}");
    tokio::time::timeout(BOUND, get(server.addr, &path))
        .await
        .unwrap_or_else(|_| panic!("{path} took longer than {BOUND:?}"))
}

/// The allowed upstream is still reachable through `caps`, and `bare`
/// still answers.
async fn allowed_call_works(setup: &Setup) {
    let reply = get(setup.server.addr, "/bare?op=getenv&name=HOME").await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    let reply = fetch(
        &setup.server,
        "caps",
        &format!("http://{}/", setup.upstream.addr),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "200 Hello from Mayfly!\n")
    );
}

#[tokio::test]
async fn a_listed_host_is_reached() {
    let setup = setup();
    allowed_call_works(&setup).await;
    allowed_call_works(&setup).await;
}

#[tokio::test]
async fn unlisted_hosts_are_denied_inside_the_guest_and_logged() {
    let setup = setup();
    let unlisted = Silent::bind();
    let upstream = setup.upstream.addr;
    let port = upstream.port();
    for (component, url) in [
        ("caps", format!("http://{}/", unlisted.addr)),
        ("caps", format!("http://localhost:{port}/")),
        ("caps", format!("https://{upstream}/")),
        ("caps", "http://example.com/".to_string()),
        ("bare", format!("http://{upstream}/")),
    ] {
        let reply = fetch(&setup.server, component, &url).await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (403, DENIED),
            "{component} -> {url}"
        );
        let output = setup.server.wait_for_output(&format!(
            "outbound request to {url} denied: not in allowed_outbound_hosts"
        ));
        let line = output
            .lines()
            .find(|line| line.contains(&format!("outbound request to {url} denied")))
            .unwrap();
        assert!(
            line.starts_with(&format!("mayfly: component `{component}` request ")),
            "{line}"
        );
    }
    assert!(
        !unlisted.was_contacted(),
        "a denied request reached the network"
    );
    allowed_call_works(&setup).await;
}

#[tokio::test]
async fn denials_in_a_loop_cannot_flood_the_log() {
    let setup = setup();
    let unlisted = Silent::bind();
    let url = format!("http://{}/", unlisted.addr);
    let reply = get(
        setup.server.addr,
        &format!("/caps?op=fetch&url={url}&times=50"),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (403, DENIED)
    );
    // Ten lines, then one that counts the rest.
    let output = setup
        .server
        .wait_for_output("40 more outbound HTTP warnings suppressed (at most 10 per request)");
    let denied = format!("outbound request to {url} denied: not in allowed_outbound_hosts");
    assert_eq!(output.matches(&denied).count(), 10, "{output}");
    allowed_call_works(&setup).await;
}

#[tokio::test]
async fn an_upstream_that_never_answers_costs_only_the_deadline() {
    let setup = setup();
    let started = Instant::now();
    let reply = fetch(
        &setup.server,
        "stall",
        &format!("http://{}/", setup.silent.addr),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(reply.status, 504);
    assert_eq!(
        reply.text(),
        "component `stall` exceeded its request deadline of 2s\n"
    );
    assert!(
        took >= Duration::from_millis(1800),
        "cut off early: {took:?}"
    );
    assert!(
        setup.silent.was_contacted(),
        "the allowed request never left"
    );
    allowed_call_works(&setup).await;
}

#[tokio::test]
async fn raw_sockets_are_denied_even_to_allowed_hosts() {
    let setup = setup();
    for component in ["caps", "bare"] {
        let path = format!("/{component}?op=connect&addr={}", setup.upstream.addr);
        let reply = get(setup.server.addr, &path).await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (403, SOCKET_DENIED),
            "{path}"
        );
    }
    allowed_call_works(&setup).await;
}
