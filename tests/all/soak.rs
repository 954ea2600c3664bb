//! Thousands of hostile requests, including ones cut off at their deadline:
//! the server's resident memory levels off instead of climbing with every
//! contained attack.

use std::time::Duration;

use crate::guests;
use crate::harness::{Client, Server, get_streamed, write_file};

/// How an attack must end.
#[derive(Clone, Copy)]
enum Expect {
    /// A complete response with this status.
    Status(u16),
    /// A `200` head, then a body cut off (at the deadline).
    CutOff,
}

/// Attacks and the outcome each must get. The deadline-based ones go to
/// `doomed`, which has a 50 ms timeout, so that thousands of them fit in a
/// test.
const ATTACKS: &[(&str, Expect)] = &[
    ("/hostile?attack=memory", Expect::Status(500)),
    ("/hostile?attack=recursion", Expect::Status(500)),
    ("/hostile?attack=resources", Expect::Status(500)),
    ("/hostile?attack=headers&count=1000", Expect::Status(502)),
    ("/hostile?attack=headers", Expect::Status(500)),
    ("/hostile?attack=print", Expect::Status(200)),
    ("/hostile?attack=panic", Expect::Status(500)),
    ("/doomed?attack=loop", Expect::Status(504)),
    ("/doomed?attack=sleep", Expect::Status(504)),
    ("/doomed?attack=endless-body", Expect::CutOff),
    ("/trap/x", Expect::Status(500)),
    (
        "/caps?op=fetch&url=http://example.com/",
        Expect::Status(403),
    ),
    ("/caps?op=connect&addr=127.0.0.1:1", Expect::Status(403)),
    ("/", Expect::Status(200)),
    ("/hostile?attack=none", Expect::Status(200)),
];

const CONNECTIONS: usize = 8;
/// Rounds after the warm-up ones.
const ROUNDS: usize = 8;
/// Rounds first run to warm everything up: pool slots, caches, allocator
/// arenas. Not measured.
const WARM_UP: usize = 3;
/// Requests per round, over all connections.
const PER_ROUND: usize = 480;

async fn round(server: &Server) {
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            for i in 0..PER_ROUND / CONNECTIONS {
                match ATTACKS[(connection + i) % ATTACKS.len()] {
                    (path, Expect::Status(status)) => {
                        let reply = client.get(path).await;
                        assert_eq!(reply.status, status, "{path}: {}", reply.text());
                    }
                    // On a connection of its own: the cut-off body ends it.
                    // (On a stalled machine the deadline may pass before
                    // the head is out, which is a plain 504.)
                    (path, Expect::CutOff) => {
                        let streamed = get_streamed(addr, path).await;
                        let cut_off = match streamed.status.as_u16() {
                            200 => streamed.error.is_some(),
                            504 => streamed.error.is_none(),
                            _ => false,
                        };
                        assert!(cut_off, "{path}: {streamed:?}");
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Allocator slack a noisy machine may add between samples, in KiB.
const SLACK_KIB: u64 = 8 * 1024;

/// Instance slots of the server under test. Each slot of the pooling
/// allocator keeps up to 4 MiB of its last instance's memory resident by
/// design, and a slot is first used when concurrency reaches it: with the
/// default 1000 slots, resident memory grows in steps for as long as new
/// peaks of concurrency reach new slots, which is bounded but slow to level
/// off. With 16 (twice the test's connections), every slot in use is warm
/// after the warm-up rounds, and whatever climbs after that is a leak.
const MAX_INSTANCES: &str = "16";

/// Whether resident memory, sampled after each round, keeps climbing
/// rather than levelling off: the later half of the samples peaks clearly
/// above the earlier half, or every round adds to the last.
fn climbs(samples: &[u64]) -> bool {
    let (earlier, later) = samples.split_at(samples.len() / 2);
    let peak = |half: &[u64]| half.iter().copied().max().unwrap_or(0);
    // Two slots' worth: a slot first reached late (a brief new peak of
    // concurrency, as teardown lags the response) is not a leak.
    let later_peaks_higher = peak(later) > peak(earlier) + 2 * SLACK_KIB;
    let every_round_adds = samples.windows(2).all(|pair| pair[1] > pair[0] + 1024);
    later_peaks_higher || every_round_adds
}

#[test]
fn a_steady_climb_is_told_from_noise() {
    // Levelling off, with noise up and down.
    assert!(!climbs(&[
        100_000, 104_000, 101_000, 109_000, 103_000, 106_000
    ]));
    // 2 MiB more after every round.
    assert!(climbs(&[
        100_000, 102_100, 104_200, 106_300, 108_400, 110_500
    ]));
    // A jump in the later rounds that stays.
    assert!(climbs(&[
        100_000, 101_000, 100_500, 130_000, 131_000, 130_500
    ]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_levels_off_under_thousands_of_hostile_requests() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[limits]
memory = "32MiB"
timeout = "10s"

[component.hello]
source = {:?}
[component.trap]
source = {:?}
[component.caps]
source = {:?}
[component.hostile]
source = {:?}
[component.doomed]
source = {:?}
[component.doomed.limits]
timeout = "50ms"

[[route]]
path = "/"
component = "hello"
[[route]]
path = "/trap/..."
component = "trap"
[[route]]
path = "/caps"
component = "caps"
[[route]]
path = "/hostile"
component = "hostile"
[[route]]
path = "/doomed"
component = "doomed"
"#,
        guests::HELLO,
        guests::TRAP,
        guests::CAPABILITIES,
        guests::HOSTILE,
        guests::HOSTILE,
    );
    let manifest = write_file(dir.path(), "app.toml", manifest);
    let server =
        Server::start_with(&[manifest.to_str().unwrap(), "--max-instances", MAX_INSTANCES]);
    for _ in 0..WARM_UP {
        round(&server).await;
    }
    let (warm, _) = server.rss_kib();
    let mut samples = Vec::new();
    for _ in 0..ROUNDS {
        round(&server).await;
        // Let the instance pool settle before each sample.
        tokio::time::sleep(Duration::from_millis(200)).await;
        samples.push(server.rss_kib().0);
    }
    eprintln!("resident memory after warm-up: {warm} KiB, then per round (KiB): {samples:?}");
    // Eight rounds of 480 requests (one in fifteen a 32 MiB memory bomb) may
    // cost some allocator slack, not memory per attack: their 256 bombs
    // alone would be 8 GiB.
    assert!(
        !climbs(&samples),
        "resident memory keeps climbing: {warm} KiB after warm-up, then {samples:?}"
    );
    let last = samples.last().copied().unwrap_or(warm);
    assert!(
        last < warm + 4 * SLACK_KIB,
        "resident memory climbed from {warm} KiB to {last} KiB: {samples:?}"
    );
    // And everything still answers.
    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.get("/").await.status, 200);
    assert_eq!(client.get("/hostile?attack=none").await.text(), "ok\n");
    // (`doomed` has 50 ms from arrival: a stalled machine may spend them
    // before the guest runs, so it gets a few tries.)
    let mut tries = 0;
    loop {
        let reply = client.get("/doomed?attack=none").await;
        if reply.status == 200 {
            assert_eq!(reply.text(), "ok\n");
            break;
        }
        assert_eq!(reply.status, 504, "{}", reply.text());
        tries += 1;
        assert!(tries < 20, "`doomed` never answered within its deadline");
    }
}
