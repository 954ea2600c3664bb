//! Busy polling: after a request a worker polls for the next one for a
//! moment before it sleeps (`--busy-poll`), and an idle server stops
//! polling.

use std::time::Duration;

use crate::harness::{Client, MAYFLY, Server, test_app};

#[tokio::test]
async fn an_idle_server_stops_polling() {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(dir.path());
    // The longest window there is, so that polling that never stopped
    // could not hide in the kernel's 10 ms accounting tick.
    let server = Server::start_with(&[app.to_str().unwrap(), "--busy-poll", "10ms"]);
    let mut client = Client::connect(server.addr).await;
    for _ in 0..200 {
        let reply = client.get("/").await;
        assert_eq!(reply.text(), "Hello from Mayfly!\n");
    }

    // Idle for a second: a worker that kept polling would use most of it.
    let before = server.workers_cpu();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = server.workers_cpu() - before;
    assert!(
        used <= Duration::from_millis(200),
        "idle workers used {used:?} of CPU in a second"
    );

    // And the connection still serves, with polling on again.
    for _ in 0..20 {
        assert_eq!(client.get("/").await.text(), "Hello from Mayfly!\n");
    }
}

/// Worker CPU time taken by 100 requests on one connection, 5 ms apart,
/// to a server started with `--busy-poll WINDOW`.
async fn cpu_for_requests_5ms_apart(window: &str) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(dir.path());
    let server = Server::start_with(&[app.to_str().unwrap(), "--busy-poll", window]);
    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.get("/").await.text(), "Hello from Mayfly!\n");
    let before = server.workers_cpu();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(client.get("/").await.text(), "Hello from Mayfly!\n");
    }
    server.workers_cpu() - before
}

#[tokio::test]
async fn a_worker_polls_through_pauses_within_its_window_unless_turned_off() {
    // With a 10 ms window the worker polls through each 5 ms pause (about
    // half a second in all); turned off, it sleeps through them, and 100
    // hellos take a few milliseconds.
    let polling = cpu_for_requests_5ms_apart("10ms").await;
    let off = cpu_for_requests_5ms_apart("0").await;
    assert!(
        polling >= off + Duration::from_millis(100),
        "polling: {polling:?} of worker CPU; turned off: {off:?}"
    );
}

#[tokio::test]
async fn a_bad_busy_poll_flag_is_refused() {
    for (value, message) in [
        (
            "11ms",
            "invalid value '11ms' for '--busy-poll <DURATION>': must be at most 10ms",
        ),
        (
            "100",
            "invalid value '100' for '--busy-poll <DURATION>': `100` has no valid unit",
        ),
    ] {
        let output = std::process::Command::new(MAYFLY)
            .args(["serve", "--busy-poll", value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}
