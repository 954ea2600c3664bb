//! A few thousand malformed and hostile requests, over raw TCP, to a live
//! server: bad methods and request lines, broken chunked encoding,
//! pipelining, huge and duplicate headers, conflicting lengths, NUL and
//! non-UTF-8 bytes, garbage, connections closed halfway, bodies dripped in
//! at random paces, and the hostile guest's attacks on host memory with
//! random sizes (methods, request targets, filled bodies, error codes). Nothing may
//! panic, whatever answers come back are HTTP, the server still serves a
//! normal request afterwards, and its resident memory stays flat.
//!
//! The requests come from a seeded generator, so a run can be repeated.
//! By hand, for longer or other runs:
//!
//! ```sh
//! MAYFLY_FUZZ_REQUESTS=50000 MAYFLY_FUZZ_SEED=12345 \
//!     cargo test --release -p mayfly --test all network_fuzz -- --nocapture
//! ```

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::guests;
use crate::harness::{Server, get, test_app, write_file};

/// Requests per run, unless `MAYFLY_FUZZ_REQUESTS` says otherwise.
const REQUESTS: usize = 3000;
/// Requests sent before resident memory is first measured: pool slots,
/// caches and allocator arenas warm up on them.
const WARM_UP: usize = 500;
/// Connections at once.
const PARALLEL: usize = 8;
/// The seed, unless `MAYFLY_FUZZ_SEED` says otherwise.
const SEED: u64 = 0x6d61_7966_6c79_0013;
/// How long a connection may stay quiet before the test stops waiting for
/// more of an answer (a request the server is still waiting on the rest
/// of gets no answer; that is not a failure).
const QUIET: Duration = Duration::from_millis(300);
/// Longest the test reads one connection's answer.
const READ_AT_MOST: Duration = Duration::from_secs(10);
/// Growth of resident memory from after the warm-up to the end that is
/// taken as noise, not a leak (KiB).
const RSS_SLACK_KIB: u64 = 32 * 1024;
/// Instance slots: each keeps some of its last instance's memory resident,
/// and a slot is first touched when concurrency reaches it; with few
/// slots, all are warm after the warm-up (see `soak.rs`).
const MAX_INSTANCES: &str = "16";

/// xorshift64*: small, and the same on every machine.
struct Rng(u64);

impl Rng {
    /// The generator of request `index` of the run seeded with `seed`, so
    /// that each request can be remade alone.
    fn for_request(seed: u64, index: usize) -> Self {
        // splitmix64 of the two, so that neighbouring requests differ.
        let mut z = seed
            ^ u64::try_from(index)
                .unwrap()
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }

    /// A number in `range`.
    fn between(&mut self, range: std::ops::RangeInclusive<usize>) -> usize {
        range.start() + self.below(range.end() - range.start() + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    /// Random bytes, as many as a number in `len`.
    fn bytes(&mut self, len: std::ops::RangeInclusive<usize>) -> Vec<u8> {
        let len = self.between(len);
        (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

/// How the client ends a connection once its bytes are written.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Reads the answer until the server closes, or goes quiet.
    Read,
    /// Shuts its sending side, then reads the same way.
    HalfClose,
    /// Closes at once, answer unread.
    Abort,
}

/// One hostile connection: what is written (in pieces, each its own
/// write, `pause` apart) and how it ends.
struct Case {
    kind: &'static str,
    pieces: Vec<Vec<u8>>,
    pause: Duration,
    ending: Ending,
}

/// Paths that reach a guest, the router's 404, or nothing sensible.
const PATHS: &[&str] = &[
    "/",
    "/echo/x",
    "/echo/special",
    "/probe",
    "/trap/x",
    "/nope",
    "/echo/%00",
    "/echo/%ff%fe",
    "/echo/../../etc/passwd",
    "//",
    "*",
    "http://example.com/",
    "/echo/x?a=1&b",
];

/// A head of `method path`, `headers` and the usual ones.
fn head(rng: &mut Rng, method: &str, path: &str, headers: &[String]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    // Mostly: so that the server closes once it has answered.
    if rng.chance(70) {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn bad_method(rng: &mut Rng) -> Vec<u8> {
    let long = "GET".repeat(rng.between(1..=4000));
    let method = match rng.below(3) {
        0 => rng
            .pick(&[
                "GETT",
                "G ET",
                "",
                "get",
                "\0GET",
                "GET\0",
                "ÄÖÜ",
                "CONNECT",
                "TRACE",
                "PRI",
                "DELETE",
                "M-SEARCH",
                "GET\t",
                "(",
                "\u{202e}GET",
            ])
            .to_string(),
        1 => long,
        _ => String::from_utf8_lossy(&rng.bytes(1..=12)).into_owned(),
    };
    let path = rng.pick(PATHS);
    let mut bytes = head(rng, &method, path, &[]);
    if rng.chance(20) {
        // The HTTP/2 preface, to an HTTP/1 server.
        bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    }
    bytes
}

fn bad_request_line(rng: &mut Rng) -> Vec<u8> {
    let line = rng.pick(&[
        "GET",
        "GET /",
        "GET / HTTP/9.9",
        "GET / HTTP/1.1 extra",
        "GET  /  HTTP/1.1",
        "/ GET HTTP/1.1",
        "GET http://[::1 HTTP/1.1",
        "GET * HTTP/1.1",
        "GET //// HTTP/1.1",
        "",
        "HTTP/1.1 200 OK",
        "GET /%zz HTTP/1.1",
        "GET /\x7f HTTP/1.1",
        "GET /a b HTTP/1.1",
        "GET / HTTP/1.1\rX: y",
        "GET / HTTP/0.9",
        "GET / HTTP/1.0",
        "GET /\u{2028} HTTP/1.1",
        "GET ?x HTTP/1.1",
        "GET http://user:pass@host:99999/ HTTP/1.1",
    ]);
    let end = if rng.chance(30) { "\n" } else { "\r\n" };
    format!("{line}{end}Host: fuzz{end}Connection: close{end}{end}").into_bytes()
}

fn broken_chunked(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = head(
        rng,
        "POST",
        "/echo/x",
        &["Transfer-Encoding: chunked".to_string()],
    );
    for _ in 0..rng.between(1..=4) {
        let data = "x".repeat(rng.between(0..=40));
        let size = match rng.below(10) {
            0 => "zz".to_string(),
            1 => "-1".to_string(),
            2 => "FFFFFFFFFFFFFFFFFF".to_string(),
            3 => "7fffffffffffffff".to_string(),
            4 => format!("{:x};ext=\"v\"", data.len()),
            5 => format!(" {:x}", data.len()),
            6 => format!("{:x}", data.len() + rng.between(1..=10)),
            7 => format!("{:X}", data.len().saturating_sub(1)),
            _ => format!("{:x}", data.len()),
        };
        bytes.extend_from_slice(size.as_bytes());
        bytes.extend_from_slice(if rng.chance(10) { b"\n" } else { b"\r\n" });
        bytes.extend_from_slice(data.as_bytes());
        // Sometimes the data's CRLF is missing or wrong.
        match rng.below(6) {
            0 => {}
            1 => bytes.extend_from_slice(b"XX"),
            _ => bytes.extend_from_slice(b"\r\n"),
        }
    }
    match rng.below(4) {
        // No last chunk: the body never ends.
        0 => {}
        1 => bytes.extend_from_slice(b"0\r\nTrailer: x\r\nbad trailer\r\n\r\n"),
        2 => bytes.extend_from_slice(b"0\r\n"),
        _ => bytes.extend_from_slice(b"0\r\n\r\n"),
    }
    bytes
}

fn pipelined(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    let count = rng.between(2..=8);
    for i in 0..count {
        let path = rng.pick(&["/", "/echo/x", "/nope", "/probe", "/trap/x"]);
        let mut request = match rng.below(5) {
            0 => format!("POST {path} HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 5\r\n\r\nhello"),
            1 => format!(
                "POST {path} HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            ),
            // A broken one in the middle of good ones.
            2 => "GARBAGE\r\n\r\n".to_string(),
            _ => format!("GET {path} HTTP/1.1\r\nHost: fuzz\r\n\r\n"),
        };
        if i + 1 == count && rng.chance(70) {
            request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        }
        bytes.extend_from_slice(request.as_bytes());
    }
    bytes
}

fn huge_headers(rng: &mut Rng) -> Vec<u8> {
    let path = rng.pick(PATHS);
    let headers = match rng.below(5) {
        // One value past the server's 64 KiB.
        0 => vec![format!(
            "X-Big: {}",
            "h".repeat(rng.between(60_000..=200_000))
        )],
        // Many medium ones that add up past it.
        1 => (0..rng.between(10..=40))
            .map(|i| format!("X-Part-{i}: {}", "p".repeat(4000)))
            .collect(),
        // A name of 100 KiB.
        2 => vec![format!("{}: v", "n".repeat(rng.between(1000..=100_000)))],
        // Lines that are not headers, and obsolete line folding.
        3 => vec![
            "no colon here".to_string(),
            "X-Folded: first\r\n\tcontinued".to_string(),
            " X-Leading-Space: v".to_string(),
            "X Space: v".to_string(),
            ": empty name".to_string(),
        ],
        // Under the limit, but large.
        _ => vec![format!("X-Big: {}", "h".repeat(rng.between(1000..=50_000)))],
    };
    head(rng, "GET", path, &headers)
}

fn duplicate_headers(rng: &mut Rng) -> Vec<u8> {
    let path = rng.pick(&["/", "/echo/x", "/nope"]);
    let headers: Vec<String> = match rng.below(4) {
        0 => (0..rng.between(1000..=6000))
            .map(|i| format!("x-dup: {i}"))
            .collect(),
        1 => vec!["Host: other".to_string(), "Host: third".to_string()],
        2 => vec![
            "x-request-id: a".to_string(),
            "x-request-id: b\tc".to_string(),
            "X-Request-Id: abc".to_string(),
        ],
        _ => (0..rng.between(100..=2000))
            .map(|_| "Cookie: a=b".to_string())
            .collect(),
    };
    head(rng, "GET", path, &headers)
}

fn conflicting_lengths(rng: &mut Rng) -> Vec<u8> {
    let headers = rng.pick(&[
        &["Content-Length: 5", "Transfer-Encoding: chunked"][..],
        &["Transfer-Encoding: chunked", "Content-Length: 5"],
        &["Content-Length: 5", "Content-Length: 6"],
        &["Content-Length: 5", "Content-Length: 5"],
        &["Content-Length: 5, 5"],
        &["Content-Length: -1"],
        &["Content-Length: +5"],
        &["Content-Length: 1e3"],
        &["Content-Length: 0x10"],
        &["Content-Length: 99999999999999999999"],
        &["Content-Length: 18446744073709551615"],
        &["Content-Length: "],
        &["Transfer-Encoding: gzip, chunked"],
        &["Transfer-Encoding: chunked, identity"],
        &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
        &["Transfer-Encoding: identity"],
        &["Transfer-Encoding: \tchunked"],
    ]);
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut bytes = head(rng, "POST", "/echo/x", &headers);
    bytes.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    bytes
}

fn nul_and_non_utf8(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = b"GET /echo/".to_vec();
    let odd = rng.bytes(1..=20);
    match rng.below(4) {
        0 => bytes.extend_from_slice(&odd),
        1 => bytes.extend_from_slice(b"\0\0x"),
        2 => bytes.extend_from_slice(b"\xff\xfe\xc3\x28"),
        _ => bytes.extend_from_slice(b"ok"),
    }
    bytes.extend_from_slice(b" HTTP/1.1\r\nHost: fuzz\r\n");
    match rng.below(4) {
        0 => bytes.extend_from_slice(b"X-Value: \xff\xfe\x80\r\n"),
        1 => bytes.extend_from_slice(b"X-Nul: a\0b\r\n"),
        2 => bytes.extend_from_slice(b"X-\xc3\xa9: v\r\n"),
        _ => {
            bytes.extend_from_slice(b"X-Odd: ");
            bytes.extend_from_slice(&odd);
            bytes.extend_from_slice(b"\r\n");
        }
    }
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    bytes
}

fn garbage(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        0 => rng.bytes(1..=4096),
        // Printable garbage, with line ends now and then.
        1 => rng
            .bytes(1..=2048)
            .into_iter()
            .map(|b| match b % 40 {
                0 => b'\n',
                1 => b'\r',
                _ => b' ' + b % 95,
            })
            .collect(),
        // A TLS ClientHello's first bytes.
        2 => {
            let mut hello = vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ];
            hello.extend(rng.bytes(200..=200));
            hello
        }
        _ => b"\r\n\r\n\r\n\r\n".repeat(rng.between(1..=500)),
    }
}

/// Any of the cases above, cut off at a random byte.
fn early_close(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = match rng.below(3) {
        0 => pipelined(rng),
        1 => broken_chunked(rng),
        _ => {
            let mut bytes = head(
                rng,
                "POST",
                "/echo/x",
                &["Content-Length: 100000".to_string()],
            );
            bytes.extend(std::iter::repeat_n(b'b', 1000));
            bytes
        }
    };
    let cut = rng.below(bytes.len());
    bytes.truncate(cut);
    bytes
}

/// The hostile guest's attacks on host memory, with random sizes: what
/// the host keeps of them is bounded whatever they are.
fn guest_strings(rng: &mut Rng) -> Vec<u8> {
    let size = *rng.pick(&[&0, &1, &64, &65, &1000, &100_000, &(1 << 20)]);
    let count = rng.between(1..=8);
    let path = match rng.below(4) {
        0 => format!("/hostile?attack=method&count={count}&size={size}"),
        1 => format!("/hostile?attack=target&count={count}&size={size}"),
        2 => format!("/hostile?attack=error-code&size={size}"),
        _ => format!("/hostile?attack=bodies&count={}", rng.between(1..=40)),
    };
    head(rng, "GET", &path, &[])
}

/// A body declared whole, then sent in pieces at a random pace (see
/// [`case`]), under the server's minimum rate or over it.
fn dripped_body(rng: &mut Rng) -> Vec<u8> {
    let length = rng.between(1..=2000);
    let mut bytes = head(
        rng,
        "POST",
        "/echo/x",
        &[format!("Content-Length: {length}")],
    );
    bytes.extend(std::iter::repeat_n(b'd', length));
    bytes
}

type Maker = fn(&mut Rng) -> Vec<u8>;

const KINDS: &[(&str, Maker)] = &[
    ("bad method", bad_method),
    ("bad request line", bad_request_line),
    ("broken chunked body", broken_chunked),
    ("pipelined", pipelined),
    ("huge headers", huge_headers),
    ("duplicate headers", duplicate_headers),
    ("conflicting lengths", conflicting_lengths),
    ("NUL and non-UTF-8", nul_and_non_utf8),
    ("garbage", garbage),
    ("early close", early_close),
    ("guest strings", guest_strings),
    ("dripped body", dripped_body),
];

fn case(rng: &mut Rng) -> Case {
    let (kind, make) = KINDS[rng.below(KINDS.len())];
    let bytes = make(rng);
    let ending = match (kind, rng.below(10)) {
        ("early close", _) | (_, 0) => Ending::Abort,
        (_, 1..=3) => Ending::HalfClose,
        _ => Ending::Read,
    };
    // Written in up to four pieces, so that the parser meets the bytes cut
    // anywhere; a dripped body in up to eight, up to 40 ms apart.
    let (pieces, pause) = match kind {
        "dripped body" => {
            let pause = u64::try_from(rng.between(0..=40)).unwrap();
            (rng.between(2..=8), Duration::from_millis(pause))
        }
        _ => (rng.below(4), Duration::ZERO),
    };
    let mut cuts: Vec<usize> = (0..pieces).map(|_| rng.below(bytes.len())).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        pieces.push(bytes[from..cut].to_vec());
        from = cut;
    }
    Case {
        kind,
        pieces,
        pause,
        ending,
    }
}

/// What came of one case.
enum Answer {
    /// Nothing (the server closed, or is still waiting for more).
    None,
    /// A status line with this code.
    Status(u16),
}

/// Sends `case`; returns what the server answered, or what was wrong
/// with its answer.
fn send(addr: SocketAddr, case: &Case) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
    stream.set_write_timeout(Some(READ_AT_MOST)).unwrap();
    stream.set_read_timeout(Some(QUIET)).unwrap();
    for (index, piece) in case.pieces.iter().enumerate() {
        if index > 0 && !case.pause.is_zero() {
            std::thread::sleep(case.pause);
        }
        // The server may answer and close before it has read everything.
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    match case.ending {
        Ending::Abort => return Ok(Answer::None),
        Ending::HalfClose => {
            let _ = stream.shutdown(Shutdown::Write);
        }
        Ending::Read => {}
    }
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    while started.elapsed() < READ_AT_MOST && answer.len() < 1 << 20 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    if answer.is_empty() {
        return Ok(Answer::None);
    }
    status_of(&answer).map(Answer::Status)
}

/// The status code of the response at the start of `answer`, which must
/// be `HTTP/1.x NNN ...` with NNN a status code.
fn status_of(answer: &[u8]) -> Result<u16, String> {
    let line_end = answer
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .ok_or_else(|| format!("no status line in {:?}", shown(answer)))?;
    let line = std::str::from_utf8(&answer[..line_end])
        .map_err(|_| format!("a status line that is not text: {:?}", shown(answer)))?;
    let code = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..=599).contains(code))
        .ok_or_else(|| format!("not a status line: {line:?}"))?;
    Ok(code)
}

/// The start of `bytes`, for a message.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}

/// Tallies of a run.
#[derive(Default)]
struct Tally {
    answered: usize,
    by_class: [usize; 6],
    failures: Vec<String>,
}

/// Sends requests `range` of the run seeded with `seed`, `PARALLEL` at a
/// time.
fn fuzz(addr: SocketAddr, seed: u64, range: std::ops::Range<usize>, tally: &Mutex<Tally>) {
    let next = AtomicUsize::new(range.start);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= range.end {
                        break;
                    }
                    let case = case(&mut Rng::for_request(seed, index));
                    let result = send(addr, &case);
                    let mut tally = tally.lock().unwrap();
                    match result {
                        Ok(Answer::None) => {}
                        Ok(Answer::Status(code)) => {
                            tally.answered += 1;
                            tally.by_class[usize::from(code / 100)] += 1;
                        }
                        Err(err) => tally.failures.push(format!(
                            "request {index} ({}, {:?}; MAYFLY_FUZZ_SEED={seed}): {err}; it sent {:?}",
                            case.kind,
                            case.ending,
                            shown(&case.pieces.concat()),
                        )),
                    }
                }
            });
        }
    });
}

/// Lines the host's own panic hook writes (a guest's panic message comes
/// in a tagged, escaped log line, and never starts one).
fn host_panics(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| {
            (line.starts_with("thread '") && line.contains(" panicked at "))
                || line.starts_with("note: run with `RUST_BACKTRACE")
        })
        .collect()
}

fn from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// The test app, and the hostile guest on `/hostile`.
fn fuzz_app(dir: &std::path::Path) -> std::path::PathBuf {
    let test_app = std::fs::read_to_string(test_app(dir)).unwrap();
    let manifest = format!(
        "{test_app}\n[component.hostile]\nsource = {:?}\n[[route]]\npath = \"/hostile\"\ncomponent = \"hostile\"\n",
        guests::HOSTILE
    );
    write_file(dir, "app.toml", manifest)
}

/// Asserts that the server answers a normal request as it should.
async fn serves_normally(server: &Server, seed: u64) {
    let reply = get(server.addr, "/").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "Hello from Mayfly!\n"),
        "after the fuzz requests (MAYFLY_FUZZ_SEED={seed})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_neither_crash_nor_leak() {
    let seed = from_env("MAYFLY_FUZZ_SEED", SEED);
    let requests = from_env("MAYFLY_FUZZ_REQUESTS", REQUESTS).max(WARM_UP + 1);
    eprintln!("network fuzz: {requests} requests, MAYFLY_FUZZ_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(&[
        fuzz_app(dir.path()).to_str().unwrap(),
        "--max-instances",
        MAX_INSTANCES,
        // Some dripped bodies come in slower than this.
        "--min-body-rate",
        "20KiB",
        "--body-rate-grace",
        "50ms",
    ]);
    let addr = server.addr;
    let tally = std::sync::Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();

    let run = |range: std::ops::Range<usize>| {
        let tally = tally.clone();
        tokio::task::spawn_blocking(move || fuzz(addr, seed, range, &tally))
    };
    run(0..WARM_UP).await.unwrap();
    // Answering a normal request is the sign that the warm-up is done
    // with.
    serves_normally(&server, seed).await;
    let (warm, _) = server.rss_kib();
    run(WARM_UP..requests).await.unwrap();
    serves_normally(&server, seed).await;
    let (after, peak) = server.rss_kib();

    let tally = tally.lock().unwrap();
    eprintln!(
        "network fuzz: {requests} requests in {:.1?}, {} answered (1xx..5xx: {:?}); \
         resident memory {warm} KiB after the warm-up, {after} KiB at the end, peak {peak} KiB",
        started.elapsed(),
        tally.answered,
        &tally.by_class[1..],
    );
    assert!(
        tally.failures.is_empty(),
        "{} answers were not HTTP:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    // Most malformed requests are answered (400, 431...) before the server
    // closes: a run where next to none were checks nothing.
    assert!(
        tally.answered > requests / 4,
        "only {} of {requests} requests were answered",
        tally.answered
    );
    assert!(
        server.wait_exit(Duration::from_millis(20)).is_none(),
        "the server exited (MAYFLY_FUZZ_SEED={seed})"
    );
    assert!(
        host_panics(&server.output()).is_empty(),
        "the server panicked (MAYFLY_FUZZ_SEED={seed}):\n{}",
        host_panics(&server.output()).join("\n")
    );
    assert!(
        after < warm + RSS_SLACK_KIB,
        "resident memory grew from {warm} KiB after the warm-up to {after} KiB \
         (MAYFLY_FUZZ_SEED={seed})"
    );
}

#[test]
fn a_host_panic_is_told_from_a_guest_one() {
    let guest = "mayfly: component `echo` request 7 stderr: thread '<unnamed>' (1) panicked at \
                 echo/src/lib.rs:52:66:";
    assert!(host_panics(guest).is_empty());
    for host in [
        "thread 'tokio-runtime-worker' (4242) panicked at runtime/serve/src/server.rs:1:1:",
        "thread 'main' panicked at runtime/cli/src/main.rs:1:1:",
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
    ] {
        assert_eq!(host_panics(&format!("{guest}\n{host}\n")), [host]);
    }
}
