//! What a guest chooses that the host writes down: an error code's message
//! and a trap's backtrace (its function names) go through the one
//! escaping rule and a cap, in the log (4 KiB a message) and in the
//! client's answer (1 KiB of the guest's own text).

use crate::harness::{Server, for_both_worlds, get, write_file};

/// The longest a log line about a request may be: the message's cap, and
/// the line's own framing (the timestamp, component, request id).
const MAX_LOG_LINE: usize = (4 << 10) + 256;

/// The longest an answer quoting the guest may be: its own text's cap, and
/// the host's words around it.
const MAX_ANSWER: usize = (1 << 10) + 128;

/// The line of `output` that contains `needle`.
fn line_with<'a>(output: &'a str, needle: &str) -> &'a str {
    output
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{output}"))
}

fn app(dir: &std::path::Path, source: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "app.toml",
        format!(
            r#"
[component.guest]
source = {source:?}

[[route]]
path = "/..."
component = "guest"
"#
        ),
    )
}

for_both_worlds! {
    /// `internal-error` with a 16 MiB message: one capped line in the log,
    /// a capped answer, and the server goes on.
    async fn an_error_codes_message_is_capped(world: World) {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&app(dir.path(), world.hostile()));
        let reply = get(server.addr, "/?attack=error-code").await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        let text = reply.text();
        assert!(
            text.starts_with("component `guest` failed: ErrorCode::InternalError(Some(\"eeee"),
            "{text}"
        );
        assert!(text.ends_with("...\n"), "{text}");
        assert!(text.len() <= MAX_ANSWER, "{} bytes", text.len());
        let output = server.wait_for_output("responded with error code ");
        let line = line_with(&output, "responded with error code ");
        assert!(line.len() <= MAX_LOG_LINE, "{} bytes", line.len());
        assert!(line.contains("eeee"), "{line}");
        let reply = get(server.addr, "/?attack=none").await;
        assert_eq!(reply.status, 200);
    }
}

/// A WASI 0.2 component, written here, whose handler traps 30 calls deep
/// in a function with a 99,000-character name.
fn long_named_trap() -> Vec<u8> {
    let name = "f".repeat(99_000);
    wat::parse_str(format!(
        r#"(component
             (import "wasi:http/types@0.2.0" (instance $types
               (export "incoming-request" (type (sub resource)))
               (export "response-outparam" (type (sub resource)))))
             (alias export $types "incoming-request" (type $request))
             (alias export $types "response-outparam" (type $outparam))
             (core module $m
               (func ${name} (param i32)
                 (if (i32.eqz (local.get 0)) (then unreachable))
                 (call ${name} (i32.sub (local.get 0) (i32.const 1))))
               (func (export "handle") (param i32 i32)
                 (call ${name} (i32.const 30))))
             (core instance $i (instantiate $m))
             (func $handle (param "request" (own $request))
                           (param "response-out" (own $outparam))
               (canon lift (core func $i "handle")))
             (instance $handler (export "handle" (func $handle)))
             (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#
    ))
    .unwrap()
}

/// Twenty frames of a 99,000-character name would make a 2 MB log line:
/// each name is cut, and the line is capped.
#[tokio::test]
async fn a_trap_in_a_long_named_function_is_logged_within_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("long.wasm"), long_named_trap()).unwrap();
    let server = Server::start(&app(dir.path(), "long.wasm"));
    for _ in 0..3 {
        let reply = get(server.addr, "/").await;
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.text(),
            "component `guest` failed: wasm trap: wasm `unreachable` instruction executed\n"
        );
    }
    let output = server.wait_for_output_times("trapped: ", 3);
    for line in output.lines().filter(|line| line.contains("trapped: ")) {
        assert!(line.len() <= MAX_LOG_LINE, "{} bytes", line.len());
        assert!(line.contains("wasm backtrace:"), "{line}");
        assert!(line.contains("fff..."), "{line}");
    }
}
