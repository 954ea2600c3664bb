//! Starting the real server, talking HTTP to it, and reading what it printed.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// Path of the `mayfly` binary under test.
pub const MAYFLY: &str = env!("CARGO_BIN_EXE_mayfly");

/// Generous bound for anything that should be quick, on a loaded 2-core box.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running `mayfly serve`, killed on drop. If the test failed, what the
/// server printed is shown.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The admin API's address, when it is on.
    pub admin: Option<SocketAddr>,
    /// The health checks' own address (`--health-listen`), when it is on.
    pub health: Option<SocketAddr>,
    output: Arc<Mutex<String>>,
    _cache: tempfile::TempDir,
}

impl Server {
    /// `mayfly serve APP` on a free loopback port, with a private cache.
    pub fn start(app: &Path) -> Self {
        Self::start_with(&[app.as_os_str().to_str().unwrap()])
    }

    /// `mayfly serve ARGS...` on a free loopback port, with a private cache.
    pub fn start_with(args: &[&str]) -> Self {
        Self::launch(Command::new(MAYFLY), args)
    }

    /// [`Server::start_with`], in a process started with `soft` and `hard`
    /// limits on open files.
    pub fn start_with_fd_limit(args: &[&str], soft: u32, hard: u32) -> Self {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(MAYFLY);
        Self::launch(command, args)
    }

    /// The server's limit on open files now: (soft, hard).
    pub fn fd_limits(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .unwrap();
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        (numbers[0], numbers[1])
    }

    fn launch(mut command: Command, args: &[&str]) -> Self {
        let cache = tempfile::tempdir().unwrap();
        command
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"]);
        if !args.contains(&"--cache-dir") {
            command.arg("--cache-dir").arg(cache.path());
        }
        if !args.contains(&"--data-dir") {
            command.arg("--data-dir").arg(cache.path().join("data"));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mayfly");
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        let admin = Arc::new(Mutex::new(None));
        let admin_out = admin.clone();
        let health = Arc::new(Mutex::new(None));
        let health_out = health.clone();
        std::thread::spawn(move || {
            for_each_line(stdout, |line| {
                let line = line.trim_end_matches(['\n', '\r']);
                lock(&out).push_str(&format!("{line}\n"));
                let addr = |prefix: &str| {
                    line.strip_prefix(prefix)?
                        .split_once(" on http://")
                        .and_then(|(_, addr)| addr.parse::<SocketAddr>().ok())
                };
                if let Some(admin) = addr("Admin API") {
                    *lock(&admin_out) = Some(admin);
                }
                if let Some(health) = addr("Health checks") {
                    *lock(&health_out) = Some(health);
                }
                if let Some(addr) = addr("Serving app") {
                    let _ = addr_tx.send(addr);
                }
            });
        });
        // Whole lines only, so that a needle found by `wait_for_output` is
        // on a line that has been read to its end.
        let stderr = child.stderr.take().unwrap();
        let err = output.clone();
        std::thread::spawn(move || {
            for_each_line(stderr, |line| lock(&err).push_str(line));
        });
        let addr = match addr_rx.recv_timeout(PATIENCE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let printed = lock(&output).clone();
                panic!("mayfly serve did not print its address; it printed:\n{printed}");
            }
        };
        let admin = *lock(&admin);
        let health = *lock(&health);
        Self {
            child,
            addr,
            admin,
            health,
            output,
            _cache: cache,
        }
    }

    /// Everything the server has printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// Waits up to [`PATIENCE`] for `needle` to appear in the server's
    /// output, and returns the output.
    pub fn wait_for_output(&self, needle: &str) -> String {
        self.wait_for_output_times(needle, 1)
    }

    /// Waits up to [`PATIENCE`] for `needle` to appear `times` times in the
    /// server's output, and returns the output.
    pub fn wait_for_output_times(&self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let output = self.output();
            if output.matches(needle).count() >= times {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "the server never printed `{needle}` {times} times; it printed:\n{output:.4000}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The value of `sample` (a metric's name and labels, as the admin
    /// API's `/metrics` prints them).
    pub async fn metric(&self, sample: &str) -> f64 {
        let scrape = get(self.admin.expect("the admin API is off"), "/metrics")
            .await
            .text();
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample `{sample}` in:\n{scrape}"))
    }

    /// Waits up to [`PATIENCE`] until `sample` reads `value`.
    pub async fn wait_metric(&self, sample: &str, value: f64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.metric(sample).await;
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sample} stayed at {now}, never {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// CPU time (user and system) the server's worker threads have used
    /// so far, from /proc, to the kernel's tick (usually 10 ms).
    pub fn workers_cpu(&self) -> Duration {
        let tick = 100; // USER_HZ, the unit of /proc's times on Linux.
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut ticks = 0;
        for task in std::fs::read_dir(tasks).unwrap() {
            let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
                continue; // (a thread that has just exited)
            };
            // `PID (COMM) STATE ...`: the fields after the name, from the
            // state on; utime and stime are the 14th and 15th of the line.
            let Some((name, rest)) = stat.split_once(") ") else {
                continue;
            };
            if !name.contains("(mayfly-worker") {
                continue;
            }
            let fields: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .map(|field| field.parse().unwrap())
                .collect();
            ticks += fields.iter().sum::<u64>();
        }
        Duration::from_millis(ticks * 1000 / tick)
    }

    /// Starts the server's peak resident memory over from its current one
    /// (Linux's `clear_refs`, value 5).
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    /// The server's resident memory, from /proc (kB): (current, peak).
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- mayfly output ----\n{}", self.output());
        }
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
    }
}

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A keep-alive HTTP/1.1 connection to the server.
pub struct Client {
    sender: http1::SendRequest<Body>,
    addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        Self { sender, addr }
    }

    /// Sends a request; the Host header is filled in unless it has one.
    /// Panics if the whole exchange takes longer than [`PATIENCE`]: no
    /// request may hang.
    pub async fn send(&mut self, mut request: Request<Body>) -> Result<Reply, hyper::Error> {
        request
            .headers_mut()
            .entry(http::header::HOST)
            .or_insert(self.addr.to_string().parse().unwrap());
        let what = format!("{} {}", request.method(), request.uri());
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .unwrap_or_else(|_| panic!("{what} got no complete answer within {PATIENCE:?}"))
    }

    /// A connection, or `None` if the server is not there.
    pub async fn connect_or_none(addr: SocketAddr) -> Option<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(connection);
        Some(Self { sender, addr })
    }

    /// Sends a request; `None` if the connection failed (the server died).
    pub async fn try_send(&mut self, request: Request<Body>) -> Option<Reply> {
        self.send(request).await.ok()
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let request = Request::get(path).body(full("")).unwrap();
        self.send(request).await.unwrap()
    }
}

/// One GET on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    Client::connect(addr).await.get(path).await
}

/// Writes `text` into `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The manifest of the test app: every guest, each on its own routes.
pub fn test_app(dir: &Path) -> PathBuf {
    use crate::guests;
    let manifest = format!(
        r#"
name = "test-app"

[component.hello]
source = {hello:?}
[component.echo]
source = {echo:?}
[component.probe]
source = {probe:?}
[component.trap]
source = {trap:?}
[component.slow]
source = {slow:?}

[[route]]
path = "/"
component = "hello"
[[route]]
path = "/echo/..."
component = "echo"
[[route]]
path = "/echo/special"
component = "hello"
[[route]]
path = "/probe"
component = "probe"
[[route]]
path = "/trap/..."
component = "trap"
[[route]]
path = "/slow"
component = "slow"
"#,
        hello = guests::HELLO,
        echo = guests::ECHO,
        probe = guests::PROBE,
        trap = guests::TRAP,
        slow = guests::SLOW,
    );
    write_file(dir, "app.toml", manifest)
}

/// Runs `mayfly ARGS...` to completion (see [`run_bounded`]).
pub fn run_mayfly(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut command = Command::new(MAYFLY);
    command.args(args);
    run_bounded(command)
}

/// Runs `command` to completion, its output captured; killed (and the test
/// failed) if it takes longer than [`PATIENCE`].
pub fn run_bounded(command: Command) -> Output {
    run_bounded_for(command, PATIENCE)
}

/// Runs `command` to completion, its output captured; killed (and the test
/// failed, showing what it printed) if it takes longer than `timeout`.
///
/// Both pipes are drained while it runs, so a command that prints more than
/// a pipe holds does not block and look hung.
pub fn run_bounded_for(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    let (stdout, stdout_done) = drain(child.stdout.take().unwrap());
    let (stderr, stderr_done) = drain(child.stderr.take().unwrap());
    let printed = || {
        format!(
            "---- stdout ----\n{}\n---- stderr ----\n{}",
            tail(&lock(&stdout)),
            tail(&lock(&stderr))
        )
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            // A moment for what is still in the pipes, unless something
            // the command started holds them open.
            let grace = Instant::now() + Duration::from_secs(2);
            while !(stdout_done.is_finished() && stderr_done.is_finished())
                && Instant::now() < grace
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!(
                "{command:?} did not finish within {timeout:?}; it printed:\n{}",
                printed()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // It has exited; the pipes end once everything it printed is read (or
    // never, if something it started still holds them).
    let grace = deadline.max(Instant::now() + Duration::from_secs(10));
    while !(stdout_done.is_finished() && stderr_done.is_finished()) {
        assert!(
            Instant::now() < grace,
            "{command:?} exited ({status}), but its output never ended \
             (a process it started still holds it?); it printed:\n{}",
            printed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stdout_done.join();
    let _ = stderr_done.join();
    let stdout = std::mem::take(&mut *lock(&stdout));
    let stderr = std::mem::take(&mut *lock(&stderr));
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads `pipe` to its end on a thread of its own, into a shared buffer that
/// can be looked at while it is being filled.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => lock(&sink).extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    (buffer, reader)
}

/// Calls `f` with each line read from `pipe`, its line end included, decoded
/// whole (so no character is split); the last line too, if the pipe ends
/// without a line end.
fn for_each_line(pipe: impl Read, mut f: impl FnMut(&str)) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        let result = reader.read_until(b'\n', &mut line);
        // On an error, `line` holds what was read before it.
        if !line.is_empty() {
            f(&String::from_utf8_lossy(&line));
        }
        if !matches!(result, Ok(n) if n > 0) {
            break;
        }
    }
}

/// The end of a command's output, at most 16 KiB of it, as text.
fn tail(bytes: &[u8]) -> String {
    const MAX: usize = 16 * 1024;
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(MAX)..]);
    if bytes.len() > MAX {
        format!("[... {} bytes before this ...]\n{text}", bytes.len() - MAX)
    } else {
        text.into_owned()
    }
}

/// A request whose body stays open until the returned sender is dropped,
/// and the response it gets, read line by line.
pub struct Held {
    body: Option<tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>>,
    response: Incoming,
    pending: String,
}

impl Held {
    pub async fn start(addr: SocketAddr, path: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let (body_sender, mut frames) = tokio::sync::mpsc::channel(1);
        let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            frames.poll_recv(cx)
        }));
        let request = Request::post(path)
            .header("host", addr.to_string())
            .body(body)
            .unwrap();
        let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
            .await
            .unwrap_or_else(|_| panic!("{path}: no response head"))
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        Self {
            body: Some(body_sender),
            response: response.into_body(),
            pending: String::new(),
        }
    }

    /// The next line of the response body.
    pub async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.pending.find('\n') {
                let line = self.pending[..end].to_string();
                self.pending.drain(..=end);
                return line;
            }
            let frame = tokio::time::timeout(PATIENCE, self.response.frame())
                .await
                .expect("no line within PATIENCE")
                .expect("the body ended before a line")
                .expect("the body failed");
            if let Some(data) = frame.data_ref() {
                self.pending.push_str(&String::from_utf8_lossy(data));
            }
        }
    }

    /// Ends the request body; the guest lets go of what it held and says
    /// so.
    pub async fn release(mut self) {
        self.body = None;
        assert_eq!(self.line().await, "released");
    }
}

/// Locks `mutex`, also after a thread panicked holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A response read frame by frame: its head, and how its body ended.
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    /// Body bytes received before the body ended.
    pub received: usize,
    /// Why the body ended early, or `None` if it ended cleanly.
    pub error: Option<hyper::Error>,
    /// From sending the request to the end of the body.
    pub took: Duration,
}

/// One GET on a fresh connection, reading the body as it streams, so that a
/// body cut off halfway still tells its status and how much came. Panics if
/// the head does not arrive, or the body does not end, within [`PATIENCE`].
pub async fn get_streamed(addr: SocketAddr, path: &str) -> Streamed {
    let started = Instant::now();
    let mut client = Client::connect(addr).await;
    let mut request = Request::get(path).body(full("")).unwrap();
    request
        .headers_mut()
        .insert(http::header::HOST, addr.to_string().parse().unwrap());
    let exchange = async {
        client.sender.ready().await.unwrap();
        let response = client.sender.send_request(request).await.unwrap();
        let status = response.status();
        let mut body = response.into_body();
        let mut received = 0;
        let error = loop {
            match body.frame().await {
                None => break None,
                Some(Err(err)) => break Some(err),
                Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            }
        };
        Streamed {
            status,
            received,
            error,
            took: started.elapsed(),
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} did not end within {PATIENCE:?}"))
}

/// Sends `path` (a `/slow?...&head_first=1` request) and returns once the
/// response head is in, with the body still to come.
pub async fn in_flight(
    addr: std::net::SocketAddr,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(crate::harness::full(""))
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("no response head")
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Reads the rest of an [`in_flight`] response's body in the background.
/// The task panics if the body hangs past [`PATIENCE`] or is cut off.
pub fn rest_of_body(
    response: http::Response<hyper::body::Incoming>,
) -> tokio::task::JoinHandle<bytes::Bytes> {
    tokio::spawn(async move {
        use http_body_util::BodyExt as _;
        tokio::time::timeout(PATIENCE, response.into_body().collect())
            .await
            .expect("the in-flight request hung")
            .expect("the in-flight request was cut off")
            .to_bytes()
    })
}

/// The two worlds a served component can be of: the same test runs for a
/// WASI 0.2 guest and for its 0.3 twin (see [`for_both_worlds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// WASI 0.2, `wasi:http/proxy`.
    P2,
    /// WASI 0.3, `wasi:http/service`.
    P3,
}

impl World {
    /// The hostile guest of this world.
    pub fn hostile(self) -> &'static str {
        match self {
            World::P2 => crate::guests::HOSTILE,
            World::P3 => crate::guests::HOSTILE_P3,
        }
    }
}

/// Defines each `async fn NAME(world: World) { ... }` as a module `NAME`
/// with two tests, `wasi_02` and `wasi_03`, that run the one body for each
/// world.
macro_rules! for_both_worlds {
    ($($(#[$meta:meta])* async fn $name:ident($world:ident: World) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                async fn wasi_02() {
                    run($crate::harness::World::P2).await
                }

                #[tokio::test]
                async fn wasi_03() {
                    run($crate::harness::World::P3).await
                }

                async fn run($world: $crate::harness::World) $body
            }
        )*
    };
}
pub(crate) use for_both_worlds;
