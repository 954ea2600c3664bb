//! Guest stdout and stderr reach the host's log, tagged with the component
//! and the request id, and capped per request.

use std::path::Path;

use crate::guests;
use crate::harness::{Server, get, write_file};

fn app(dir: &Path) -> Server {
    let manifest = format!(
        r#"
[component.caps]
source = {:?}
[component.hostile]
source = {:?}

[[route]]
path = "/caps"
component = "caps"
[[route]]
path = "/hostile"
component = "hostile"
"#,
        guests::CAPABILITIES,
        guests::HOSTILE,
    );
    Server::start(&write_file(dir, "app.toml", manifest))
}

/// The request id of the log line that contains `needle`.
fn request_id(output: &str, needle: &str) -> u64 {
    let line = output
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{output}"));
    line.split(" request ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no request id in `{line}`"))
}

#[tokio::test]
async fn output_is_tagged_with_component_and_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    let reply = get(server.addr, "/caps?op=print&bytes=128").await;
    assert_eq!(reply.text(), "printed");
    let line = format!("stdout: {}", "o".repeat(63));
    let output = server.wait_for_output("stderr: a line on stderr");
    assert_eq!(
        output.matches(&line).count(),
        2,
        "two 64-byte lines:\n{output}"
    );
    let first = request_id(&output, &line);
    assert_eq!(first, request_id(&output, "stderr: a line on stderr"));
    assert!(output.contains(&format!(
        "mayfly: component `caps` request {first} stdout: "
    )));

    // A second request has its own id.
    get(server.addr, "/caps?op=print&bytes=64").await;
    server.wait_for_output(&format!("component `caps` request {} stdout", first + 1));
    server.wait_for_output(&format!("component `caps` request {} stderr", first + 1));
}

/// Every line the host logs costs its framing too: a megabyte of empty
/// lines adds at most about twice the cap to the log.
#[tokio::test]
async fn a_flood_of_empty_lines_costs_its_framing() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    let before = server.output().len();
    let reply = get(server.addr, "/hostile?attack=newlines").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "survived\n")
    );
    let dropped = "more bytes of output dropped (cap 16384 bytes per request)";
    let output = server.wait_for_output(dropped)[before..].to_string();
    assert!(
        output.contains("component `hostile` request"),
        "{output:.2000}"
    );
    assert!(
        output.len() <= 2 * 16384,
        "{} bytes of log for 1 MiB of empty lines",
        output.len()
    );
}

#[tokio::test]
async fn a_flood_of_output_is_capped_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    let before = server.output().len();
    // 64 MiB of output from each of three requests.
    for _ in 0..3 {
        let reply = get(server.addr, "/hostile?attack=print").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "survived\n");
    }
    let dropped = "more bytes of output dropped (cap 16384 bytes per request)";
    let output = server.wait_for_output_times(dropped, 3)[before..].to_string();
    assert_eq!(output.matches(dropped).count(), 3, "{output:.2000}");
    assert!(
        output.contains("component `hostile` request"),
        "{output:.2000}"
    );
    // Three capped requests: well under 100 KiB of log, not 192 MiB.
    assert!(
        output.len() < 100 << 10,
        "{} bytes of log for three capped requests",
        output.len()
    );
    assert_eq!(get(server.addr, "/caps?op=getenv&name=X").await.status, 404);
}

#[tokio::test]
async fn characters_that_show_nothing_are_escaped_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = app(dir.path());
    // ZWSP, ZWJ, WJ, BOM, a tag character and the Hangul filler, between
    // letters, as a guest prints them.
    let text = "%E2%80%8Ba%E2%80%8Db%E2%81%A0c%EF%BB%BFd%F3%A0%81%81e%E3%85%A4f";
    let reply = get(server.addr, &format!("/caps?op=print&text={text}")).await;
    assert_eq!(reply.text(), "printed");
    let output = server.wait_for_output("stdout: \\u{200b}a");
    assert!(
        output.contains("stdout: \\u{200b}a\\u{200d}b\\u{2060}c\\u{feff}d\\u{e0041}e\\u{3164}f"),
        "{output}"
    );
    for hidden in [
        '\u{200b}',
        '\u{200d}',
        '\u{2060}',
        '\u{feff}',
        '\u{e0041}',
        '\u{3164}',
    ] {
        assert!(!output.contains(hidden), "{hidden:?} reached the log");
    }
}
