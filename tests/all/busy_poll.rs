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

#[tokio::test]
async fn busy_polling_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let app = test_app(dir.path());
    let server = Server::start_with(&[app.to_str().unwrap(), "--busy-poll", "0"]);
    let mut client = Client::connect(server.addr).await;
    for _ in 0..20 {
        assert_eq!(client.get("/").await.text(), "Hello from Mayfly!\n");
    }
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
