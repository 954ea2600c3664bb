//! Hostile guests, of either world: each attack costs only its own
//! request. The client gets a clear status and reason within a bound, and
//! the very next request to every component succeeds.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{
    Client, Server, World, for_both_worlds, get, get_streamed, test_app, write_file,
};

/// Generous for a loaded 2-core machine, and far below the attacks' own
/// durations (forever, or ten minutes).
const BOUND: Duration = Duration::from_secs(30);

const TOKEN: &str = "hostile-test-admin-token-0123";

/// The test app plus `hostile` of `world` under `/hostile`, limited to 1 s
/// and 32 MiB.
fn hostile_app(dir: &Path, world: World) -> Server {
    hostile_app_with(dir, world, "timeout = \"1s\"\nmemory = \"32MiB\"")
}

/// The test app plus `hostile` of `world` under `/hostile`, with `limits`
/// (TOML lines) as its limits; the admin API on, for `/metrics`.
fn hostile_app_with(dir: &Path, world: World, limits: &str) -> Server {
    let app = test_app(dir);
    let mut manifest = std::fs::read_to_string(&app).unwrap();
    manifest.push_str(&format!(
        r#"
[component.hostile]
source = {:?}

[component.hostile.limits]
{limits}

[[route]]
path = "/hostile"
component = "hostile"
"#,
        world.hostile()
    ));
    write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", TOKEN);
    Server::start_with(&[
        app.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ])
}

/// Every component of the test app still answers.
async fn everything_still_serves(server: &Server) {
    assert_eq!(get(server.addr, "/").await.text(), "Hello from Mayfly!\n");
    assert_eq!(
        get(server.addr, "/echo/x").await.header("x-echo-path"),
        "/echo/x"
    );
    assert!(
        get(server.addr, "/probe")
            .await
            .text()
            .starts_with("count=1 ")
    );
    assert_eq!(get(server.addr, "/slow?ms=1").await.text(), "slept 1 ms\n");
    assert_eq!(get(server.addr, "/trap/x").await.status, 500);
    let reply = get(server.addr, "/hostile?attack=none").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "ok\n")
    );
}

/// Runs one attack and returns the reply and how long it took.
async fn attack(server: &Server, name: &str) -> (crate::harness::Reply, Duration) {
    let started = Instant::now();
    let reply = tokio::time::timeout(BOUND, get(server.addr, &format!("/hostile?attack={name}")))
        .await
        .unwrap_or_else(|_| panic!("attack `{name}` was not stopped within {BOUND:?}"));
    (reply, started.elapsed())
}

for_both_worlds! {
    async fn an_infinite_loop_is_interrupted_at_the_deadline(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        let (reply, took) = attack(&server, "loop").await;
        assert_eq!(reply.status, 504);
        assert_eq!(
            reply.text(),
            "component `hostile` exceeded its request deadline of 1s\n"
        );
        assert!(
            took >= Duration::from_millis(900),
            "cut off early: {took:?}"
        );
        everything_still_serves(&server).await;
    }

    async fn a_guest_sleeping_past_its_deadline_is_cut_off(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        let (reply, took) = attack(&server, "sleep").await;
        assert_eq!(reply.status, 504);
        assert_eq!(
            reply.text(),
            "component `hostile` exceeded its request deadline of 1s\n"
        );
        assert!(
            took >= Duration::from_millis(900),
            "cut off early: {took:?}"
        );
        everything_still_serves(&server).await;
    }

    async fn a_memory_bomb_hits_its_limit_and_the_host_stays_small(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        for _ in 0..3 {
            let (reply, _) = attack(&server, "memory").await;
            assert_eq!(reply.status, 500);
            assert_eq!(
                reply.text(),
                "component `hostile` failed: memory limit of 32MiB reached \
                 (wasm trap: wasm `unreachable` instruction executed)\n"
            );
        }
        // Three bombs of 32 MiB each (the limit) must not have cost the host
        // anything like the 4 GiB the guest would have taken.
        let (_, peak_kib) = server.rss_kib();
        assert!(peak_kib < 256 * 1024, "peak RSS {} MiB", peak_kib / 1024);
        everything_still_serves(&server).await;
    }

    async fn deep_recursion_traps_with_stack_exhaustion(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        let (reply, _) = attack(&server, "recursion").await;
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.text(),
            "component `hostile` failed: wasm trap: call stack exhausted\n"
        );
        everything_still_serves(&server).await;
    }

    async fn a_body_that_never_ends_is_cut_off_at_the_deadline(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        let streamed = tokio::time::timeout(
            BOUND,
            get_streamed(server.addr, "/hostile?attack=endless-body"),
        )
        .await
        .expect("the endless body was not cut off");
        // The head went out before the deadline...
        assert_eq!(streamed.status, 200);
        assert!(streamed.received > 0, "{streamed:?}");
        // ...and the body ends in an error, not as if it were complete...
        let err = streamed
            .error
            .as_ref()
            .expect("an endless body cut off by the deadline must not look complete");
        assert!(
            err.is_incomplete_message() || err.to_string().contains("body"),
            "{err}"
        );
        // ...at the 1 s deadline, not before it, and not long after.
        assert!(
            streamed.took >= Duration::from_millis(800),
            "cut off early: {streamed:?}"
        );
        assert!(streamed.took < BOUND, "cut off late: {streamed:?}");
        everything_still_serves(&server).await;
    }

    async fn a_panic_gives_500_with_the_trap_and_logs_the_message(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        // A 500, not the deadline's 504: a panic ends the instance at once.
        let (reply, _) = attack(&server, "panic").await;
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.text(),
            "component `hostile` failed: wasm trap: wasm `unreachable` instruction executed\n"
        );
        // The guest's own panic message is in the host log, tagged.
        let output = server.wait_for_output("hostile guest: panicking on purpose");
        let line = output
            .lines()
            .find(|line| line.contains("hostile guest: panicking on purpose"))
            .unwrap();
        assert!(
            line.contains("component `hostile` request ")
                && line.contains(" stderr: hostile guest: panicking on purpose"),
            "{line}"
        );
        everything_still_serves(&server).await;
    }

    /// A response the guest finished is whole, whatever the instance does
    /// after it; the trap is still counted and logged.
    async fn a_panic_after_a_finished_response_leaves_it_whole(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        for _ in 0..3 {
            let streamed = get_streamed(server.addr, "/hostile?attack=panic-after-body").await;
            assert_eq!(streamed.status, 200);
            assert_eq!(streamed.received, "whole\n".len(), "{streamed:?}");
            assert!(
                streamed.error.is_none(),
                "a finished body was cut: {streamed:?}"
            );
        }
        server.wait_for_output_times("trapped: ", 3);
        server.wait_for_output_times(
            " stderr: hostile guest: panicking after the body on purpose",
            3,
        );
        server
            .wait_metric("mayfly_traps_total{component=\"hostile\"}", 3.0)
            .await;
        everything_still_serves(&server).await;
    }

    /// A flood of response headers meets the default limit of 200.
    async fn a_header_flood_meets_the_default_limit(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = hostile_app(dir.path(), world);
        let (reply, _) = attack(&server, "headers&count=1000").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (
                502,
                "component `hostile` sent 1000 response headers; the limit is 200\n"
            )
        );
        everything_still_serves(&server).await;
    }
}

#[tokio::test]
async fn a_guest_that_returns_without_answering_gets_500_and_frees_its_instance() {
    let dir = tempfile::tempdir().unwrap();
    // One instance at a time, and no queue: an instance the first request
    // kept would refuse the second with 503.
    let server = hostile_app_with(dir.path(), World::P2, "instances = 1\nqueue = 0");
    let mut client = Client::connect(server.addr).await;
    for _ in 0..3 {
        let reply = client.get("/hostile?attack=silent").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (500, "component `hostile` sent no response\n")
        );
        let reply = client.get("/hostile?attack=none").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "ok\n")
        );
    }
    server.wait_for_output_times("returned without sending a response", 3);
    everything_still_serves(&server).await;
}

#[tokio::test]
async fn app_level_limits_apply_to_components_without_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(dir.path());
    let manifest = std::fs::read_to_string(&app).unwrap();
    write_file(
        dir.path(),
        "app.toml",
        format!("{manifest}\n[limits]\ntimeout = \"1s\"\n"),
    );
    let server = Server::start(&app);
    let started = Instant::now();
    let reply = get(server.addr, "/slow?ms=20000").await;
    assert_eq!(reply.status, 504);
    assert_eq!(
        reply.text(),
        "component `slow` exceeded its request deadline of 1s\n"
    );
    assert!(started.elapsed() < BOUND);
    assert_eq!(
        get(server.addr, "/slow?ms=10").await.text(),
        "slept 10 ms\n"
    );
}
