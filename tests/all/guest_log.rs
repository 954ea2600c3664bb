//! Guest stdout and stderr reach the host's log, tagged with the component
//! and the request id, and capped per request; a request's id comes from
//! upstream or is made up, and is shown to the guest; the log is human or
//! JSON. The same for a guest of either world.

use std::path::Path;

use http::Request;

use crate::guests;
use crate::harness::{Client, Server, World, for_both_worlds, full, get, write_file};

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

/// `hostile` at `/hostile` and `echo` at `/echo/...`, of `world`, served
/// with `args`.
fn app_of(dir: &Path, world: World, args: &[&str]) -> Server {
    let manifest = format!(
        r#"
[component.hostile]
source = {hostile:?}
[component.echo]
source = {echo:?}

[[route]]
path = "/hostile"
component = "hostile"
[[route]]
path = "/echo/..."
component = "echo"
"#,
        hostile = world.hostile(),
        echo = world.echo(),
    );
    let app = write_file(dir, "app.toml", manifest);
    let mut all = vec![app.to_str().unwrap()];
    all.extend_from_slice(args);
    Server::start_with(&all)
}

/// A request's id, from upstream or made up, as the guest (`echo`) and the
/// client see it; one with characters a log line should not carry is
/// replaced.
async fn request_ids_are_answered_and_shown_to_the_guest(client: &mut Client) {
    let reply = client.get("/echo/x").await;
    let id = reply.header("x-request-id").to_string();
    assert!(!id.is_empty());
    assert_eq!(reply.header("x-echo-header-x-request-id"), id);
    let reply = client.get("/echo/x").await;
    assert_ne!(reply.header("x-request-id"), id, "two requests, one id");
    let request = Request::get("/echo/x")
        .header("x-request-id", "forged\tcomponent `other` request 1")
        .body(full(""))
        .unwrap();
    let reply = client.send(request).await.unwrap();
    let replaced = reply.header("x-request-id").to_string();
    assert!(
        !replaced.is_empty() && replaced.bytes().all(|b| b.is_ascii_digit()),
        "{replaced:?}"
    );
    assert_eq!(reply.header("x-echo-header-x-request-id"), replaced);
}

for_both_worlds! {
    /// Every line the host logs costs its framing too: a megabyte of empty
    /// lines adds at most about twice the cap to the log.
    async fn a_flood_of_empty_lines_costs_its_framing(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app_of(dir.path(), world, &[]);
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

    async fn output_and_traps_carry_component_and_request_id(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app_of(dir.path(), world, &[]);
        let mut client = Client::connect(server.addr).await;

        // An id from upstream is kept, answered, and used in the log: the
        // trap's line, and the guest's own stderr.
        let request = Request::get("/hostile?attack=panic")
            .header("x-request-id", "lb-0001")
            .body(full(""))
            .unwrap();
        let reply = client.send(request).await.unwrap();
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("x-request-id"), "lb-0001");
        let output = server.wait_for_output(
            "mayfly: component `hostile` request lb-0001 stderr: \
             hostile guest: panicking on purpose",
        );
        assert!(
            output.contains("mayfly: component `hostile` request lb-0001: trapped: "),
            "{output}"
        );

        // Its stdout, line by line, capped per request.
        let request = Request::get("/hostile?attack=print")
            .header("x-request-id", "print-1")
            .body(full(""))
            .unwrap();
        let reply = client.send(request).await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "survived\n")
        );
        let dropped = "more bytes of output dropped (cap 16384 bytes per request)";
        let output = server.wait_for_output(dropped);
        let of_request: Vec<&str> = output
            .lines()
            .filter(|line| line.contains("print-1"))
            .collect();
        let stdout = format!(
            "mayfly: component `hostile` request print-1 stdout: {}",
            "p".repeat(1023)
        );
        let printed = of_request.iter().filter(|line| **line == stdout).count();
        assert!(
            (1..=16).contains(&printed),
            "{printed} lines of stdout:\n{output:.3000}"
        );
        assert!(
            of_request.iter().any(|line| line
                .starts_with("mayfly: component `hostile` request print-1: ")
                && line.ends_with(dropped)),
            "{output:.3000}"
        );
        assert_eq!(of_request.len(), printed + 1, "{of_request:#?}");

        request_ids_are_answered_and_shown_to_the_guest(&mut client).await;
    }

    async fn logs_are_json_on_request_and_carry_the_request_id(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = app_of(dir.path(), world, &["--log-format", "json"]);
        let mut client = Client::connect(server.addr).await;

        // An id from upstream is kept, answered, and used in the log.
        let request = Request::get("/hostile?attack=panic")
            .header("x-request-id", "lb-7f3a-0001")
            .body(full(""))
            .unwrap();
        let reply = client.send(request).await.unwrap();
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("x-request-id"), "lb-7f3a-0001");
        // The guest's own stderr is written when the instance is gone,
        // after the trap's line.
        let output = server.wait_for_output("hostile guest: panicking on purpose");
        let event = |needle: &str| -> serde_json::Value {
            let line = output
                .lines()
                .find(|line| line.contains("lb-7f3a-0001") && line.contains(needle))
                .unwrap_or_else(|| panic!("no `{needle}` line in:\n{output}"));
            serde_json::from_str(line).unwrap()
        };
        let trapped = event("trapped");
        assert_eq!(trapped["component"], "hostile");
        assert_eq!(trapped["request_id"], "lb-7f3a-0001");
        assert_eq!(trapped["level"], "WARN");
        assert!(
            trapped["message"]
                .as_str()
                .unwrap()
                .starts_with("trapped: "),
            "{trapped}"
        );
        let stderr = event("hostile guest: panicking on purpose");
        assert_eq!(stderr["component"], "hostile");
        assert_eq!(stderr["request_id"], "lb-7f3a-0001");
        assert_eq!(stderr["stream"], "stderr");

        request_ids_are_answered_and_shown_to_the_guest(&mut client).await;
    }
}
