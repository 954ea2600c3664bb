//! `mayfly dev` and `mayfly serve --watch` on an app with builds: a saved
//! edit is built and swapped in under load with no failed request, and a
//! broken edit leaves the running version answering, with the compiler's
//! error on the server's output.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Load, Seen, Server, get};
use crate::templates::{BUILD_PATIENCE, build_ok, new_app};

const BEFORE: &str = "Hello from Rust! You asked for /hi\n";
const AFTER: &str = "Hello from Rust, edited! You asked for /hi\n";

/// Rewrites `file` with `from` replaced by `to`, as an editor saves it.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from:?} is not in {}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

/// Waits until `GET /hi` answers `body`.
async fn wait_for_answer(server: &Server, body: &str) {
    let deadline = Instant::now() + BUILD_PATIENCE;
    loop {
        let reply = get(server.addr, "/hi").await;
        if reply.text() == body {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still answering {:?}; the server printed:\n{}",
            reply.text(),
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_rebuilds_a_saved_edit_under_load_with_no_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = new_app("http-rust", dir.path(), "live");
    build_ok(&manifest);
    let server = Server::start_dev(&[manifest.to_str().unwrap()]);
    assert_eq!(get(server.addr, "/hi").await.text(), BEFORE);

    // Load on four connections all along.
    let load = Load::start(server.addr, "/hi", 4);
    edit(
        &manifest.parent().unwrap().join("src/lib.rs"),
        "from Rust!",
        "from Rust, edited!",
    );
    wait_for_answer(&server, AFTER).await;
    // The new version serves the load for a while too.
    load.more_answers(100, Duration::from_millis(300)).await;
    let seen = load.stop().await;
    let after = seen.iter().filter(|seen| seen.body == AFTER).count();
    for Seen { status, body, .. } in &seen {
        assert_eq!(*status, 200, "a request failed: {body}");
        assert!(
            body == BEFORE || body == AFTER,
            "unexpected answer {body:?}"
        );
    }
    assert!(after > 0, "no request of the load saw the new version");
    let output = server.output();
    assert!(output.contains("[live] built in "), "{output}");
    assert!(output.contains("mayfly: reloaded "), "{output}");
    // `mayfly dev` logs every request: method, path, status, time.
    assert!(
        output.contains("mayfly: component `live` request ")
            && output.contains(": GET /hi -> 200 in "),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_running_version_and_shows_the_compiler_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = new_app("http-rust", dir.path(), "broken");
    build_ok(&manifest);
    let server = Server::start_with(&[manifest.to_str().unwrap(), "--watch"]);
    assert_eq!(get(server.addr, "/hi").await.text(), BEFORE);

    let source = manifest.parent().unwrap().join("src/lib.rs");
    let broken = "let _broken: u32 = \"text\";\n        let path =";
    edit(&source, "let path =", broken);
    let output = server.wait_for_output("(still serving the previous version)");
    assert!(
        output.contains(
            "component `broken`: build command `cargo build --release --target wasm32-wasip2 \
             --target-dir target` failed with exit code 101"
        ),
        "{output}"
    );
    // The compiler's own error, behind the component's name.
    assert!(
        output.contains("[broken] error[E0308]: mismatched types"),
        "{output}"
    );
    let reply = get(server.addr, "/hi").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, BEFORE)
    );

    // Fixed, and edited: the next save is built and served.
    edit(&source, broken, "let path =");
    edit(&source, "from Rust!", "from Rust, edited!");
    wait_for_answer(&server, AFTER).await;
}
