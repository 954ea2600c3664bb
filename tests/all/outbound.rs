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

/// A name other than `localhost` that resolves to a loopback address on
/// this machine (its own host name, as a rule), if there is one.
fn loopback_name() -> Option<String> {
    use std::net::ToSocketAddrs as _;
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let names = hosts
        .lines()
        .filter(|line| line.trim_start().starts_with("127."))
        .flat_map(|line| line.split_whitespace().skip(1).map(str::to_string))
        .take_while(|name| !name.starts_with('#'));
    names
        .filter(|name| !name.eq_ignore_ascii_case("localhost"))
        .find(|name| {
            (name.as_str(), 80)
                .to_socket_addrs()
                .is_ok_and(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
        })
}

#[tokio::test]
async fn names_resolving_to_loopback_reach_it_only_when_granted_so() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Server::start(Path::new(guests::HELLO));
    let port = upstream.addr.port();
    let name = loopback_name();
    let named = name.as_deref().unwrap_or("localhost");
    let manifest = format!(
        r#"
[component.wild]
source = {caps:?}
allowed_outbound_hosts = ["http://*:{port}"]

[component.named]
source = {caps:?}
allowed_outbound_hosts = ["http://{named}:{port}"]

[component.opened]
source = {caps:?}
allowed_outbound_hosts = ["http://*:{port}"]
allow_private_networks = true

[component.local]
source = {caps:?}
allowed_outbound_hosts = ["http://localhost:{port}"]

[[route]]
path = "/wild"
component = "wild"
[[route]]
path = "/named"
component = "named"
[[route]]
path = "/opened"
component = "opened"
[[route]]
path = "/local"
component = "local"
"#,
        caps = guests::CAPABILITIES,
    );
    let server = Server::start(&write_file(dir.path(), "app.toml", manifest));
    let hello = (200, "200 Hello from Mayfly!\n".to_string());
    let prohibited = (
        502,
        "denied: ErrorCode::DestinationIpProhibited".to_string(),
    );
    let outcome = |reply: crate::harness::Reply| (reply.status.as_u16(), reply.text());

    // A wildcard matches `localhost`, but grants only public addresses.
    let url = format!("http://localhost:{port}/");
    assert_eq!(outcome(fetch(&server, "wild", &url).await), prohibited);
    server.wait_for_output(&format!(
        "outbound request to {url} refused: `localhost` resolves to 127.0.0.1, a loopback \
         address, which only a grant naming it reaches"
    ));
    // So does a name granted by name that resolves to 127.0.0.1.
    if let Some(name) = &name {
        let url = format!("http://{name}:{port}/");
        assert_eq!(outcome(fetch(&server, "named", &url).await), prohibited);
        server.wait_for_output(&format!("`{name}` resolves to 127."));
        assert_eq!(outcome(fetch(&server, "opened", &url).await), hello);
    } else {
        eprintln!("no name but localhost resolves to loopback here: the named case is skipped");
    }
    // `allow_private_networks` opens them; `localhost` and IP literals,
    // named in the grant, reach themselves.
    assert_eq!(outcome(fetch(&server, "opened", &url).await), hello);
    assert_eq!(outcome(fetch(&server, "local", &url).await), hello);
    assert_eq!(
        outcome(fetch(&server, "wild", &format!("http://127.0.0.1:{port}/")).await),
        prohibited
    );
}
