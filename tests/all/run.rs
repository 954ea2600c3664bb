//! `mayfly run`: a `wasi:cli` command (of WASI 0.2 or 0.3) in a fresh
//! instance, with grants as flags; the guest's exit status is mayfly's.

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::guests;
use crate::harness::{MAYFLY, World, for_both_worlds, run_mayfly, write_file};

/// `mayfly run --no-cache FLAGS... CLI -- ARGS...`: (status, stdout, stderr).
fn run(flags: &[&str], args: &[&str]) -> (i32, String, String) {
    run_of(World::P2, flags, args)
}

/// [`run`], with the `cli` command of `world`.
fn run_of(world: World, flags: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--no-cache")];
    all.extend(flags.iter().map(OsStr::new));
    all.push(OsStr::new(world.cli()));
    all.push(OsStr::new("--"));
    all.extend(args.iter().map(OsStr::new));
    let output = run_mayfly(&all);
    (
        output.status.code().expect("mayfly was killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `mayfly run --no-cache FLAGS... CLI -- OP` with `piped in` written to
/// its stdin. (The command need not read it, and may have exited already,
/// a broken pipe: what it did is in the output.)
fn piped(flags: &[&str], op: &str) -> std::process::Output {
    let mut child = Command::new(MAYFLY)
        .args(["run", "--no-cache"])
        .args(flags)
        .args([guests::CLI, "--", op])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"piped in\n");
    child.wait_with_output().unwrap()
}

for_both_worlds! {
    fn arguments_and_exit_status_pass_through(world: World) {
        let (status, stdout, _) = run_of(world, &[], &["args", "one", "two words"]);
        assert_eq!((status, stdout.as_str()), (0, "one\ntwo words\n"));
        for code in ["0", "1", "7", "42"] {
            let (status, _, _) = run_of(world, &[], &["exit", code]);
            assert_eq!(status.to_string(), code);
        }
    }

    fn only_granted_variables_are_visible(world: World) {
        let (status, stdout, _) = run_of(world, &["--env", "GREETING=hi"], &["env", "GREETING"]);
        assert_eq!((status, stdout.as_str()), (0, "hi\n"));
        let (status, _, stderr) = run_of(world, &[], &["env", "HOME"]);
        assert_eq!(status, 3);
        assert_eq!(stderr, "HOME: environment variable not found\n");
    }

    fn directories_are_granted_read_only_or_read_write(world: World) {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "in.txt", "file contents");
        // Read-only by default, as in a manifest; `:ro` says so out loud.
        let ro = format!("{}::/data", dir.path().display());
        let ro_said = format!("{}::/data:ro", dir.path().display());
        let rw = format!("{}::/data:rw", dir.path().display());

        let (status, stdout, _) = run_of(world, &["--dir", &ro], &["cat", "/data/in.txt"]);
        assert_eq!((status, stdout.as_str()), (0, "file contents"));
        let (status, _, stderr) = run_of(world, &["--dir", &ro], &["write", "/data/out.txt", "x"]);
        assert_eq!(status, 4);
        assert_eq!(
            stderr,
            "cannot write /data/out.txt: Operation not permitted (os error 63)\n"
        );
        assert!(!dir.path().join("out.txt").exists());
        let (status, _, _) = run_of(world, &["--dir", &ro_said], &["write", "/data/out.txt", "x"]);
        assert_eq!(status, 4);
        assert!(!dir.path().join("out.txt").exists());

        let (status, _, _) = run_of(world, &["--dir", &rw], &["write", "/data/out.txt", "x"]);
        assert_eq!(status, 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
            "x"
        );

        // Nothing else is there.
        let (status, _, stderr) = run_of(world, &["--dir", &ro], &["cat", "/etc/passwd"]);
        assert_eq!(status, 4);
        assert_eq!(
            stderr,
            "cannot read /etc/passwd: No such file or directory (os error 44)\n"
        );
    }

    fn limits_stop_the_command_with_their_own_status(world: World) {
        let (status, _, stderr) = run_of(world, &["--timeout", "1s"], &["loop"]);
        assert_eq!(status, 124);
        assert_eq!(
            stderr,
            format!("mayfly: `{}` exceeded its deadline of 1s\n", world.cli_name())
        );

        let (status, _, stderr) = run_of(world, &["--fuel", "1000000"], &["loop"]);
        assert_eq!(status, 134);
        assert!(
            stderr.starts_with(&format!(
                "mayfly: `{}` trapped: wasm trap: all fuel consumed by WebAssembly",
                world.cli_name()
            )),
            "{stderr}"
        );
    }
}

#[test]
fn output_goes_to_the_terminal_or_the_log_and_stdin_is_opt_in() {
    // By default, the command's stdout is this process's.
    let (status, stdout, stderr) = run(&[], &["args", "hello"]);
    assert_eq!(
        (status, stdout.as_str(), stderr.as_str()),
        (0, "hello\n", "")
    );
    // With --log-output, it is in the log, on a tagged line.
    let (status, stdout, stderr) = run(&["--log-output"], &["args", "hello"]);
    assert_eq!(status, 0);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("mayfly: component `cli` request 1 stdout: hello"),
        "{stderr}"
    );

    let output = piped(&["--stdin"], "stdin");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "PIPED IN\n");

    // Both at once: the input reaches the command, its output the log.
    let output = piped(&["--stdin", "--log-output"], "stdin");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mayfly: component `cli` request 1 stdout: PIPED IN"),
        "{stderr}"
    );

    // Without --stdin, what is piped in never reaches the command.
    let output = piped(&["--log-output"], "stdin-count");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mayfly: component `cli` request 1 stdout: 0 bytes on stdin"),
        "{stderr}"
    );
}

#[test]
fn a_trap_exits_134_with_its_message() {
    let (status, _, stderr) = run(&[], &["panic"]);
    assert_eq!(status, 134);
    assert!(stderr.contains("cli: panicking on purpose"), "{stderr}");
    assert!(
        stderr.contains("mayfly: `cli` trapped: ")
            && stderr.contains("wasm trap: wasm `unreachable` instruction executed"),
        "{stderr}"
    );
    // With --log-output, the panic message is in the log, on a tagged line.
    let (status, _, stderr) = run(&["--log-output"], &["panic"]);
    assert_eq!(status, 134);
    let said = stderr
        .lines()
        .find(|line| line.contains("cli: panicking on purpose"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        said.contains("mayfly: component `cli` request 1 stderr: "),
        "{said}"
    );
}

#[test]
fn memory_past_the_cap_is_refused() {
    let (status, _, stderr) = run(&["--memory", "16MiB"], &["memory"]);
    assert_eq!(status, 134);
    assert!(
        stderr.contains("mayfly: `cli` reached its memory limit of 16MiB: "),
        "{stderr}"
    );
    // What the guest said as it failed went to the terminal, before
    // mayfly's own line...
    assert!(
        stderr.starts_with("memory allocation of 1048576 bytes failed\n"),
        "{stderr}"
    );
    // ...or, with --log-output, to the log.
    let (status, _, stderr) = run(&["--memory", "16MiB", "--log-output"], &["memory"]);
    assert_eq!(status, 134);
    assert!(
        stderr.contains("mayfly: component `cli` request 1 stderr: memory allocation of"),
        "{stderr}"
    );
}

#[test]
fn an_initial_memory_above_the_cap_is_refused() {
    // A command asking for 1 GiB of memory before it even starts.
    let dir = tempfile::tempdir().unwrap();
    let command = wat::parse_str(
        r#"(component
            (core module $m
                (memory 16384)
                (func (export "run") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $run-instance (export "run" (func $run)))
            (export "wasi:cli/run@0.2.6" (instance $run-instance))
        )"#,
    )
    .unwrap();
    let path = dir.path().join("greedy.wasm");
    std::fs::write(&path, command).unwrap();
    let output = run_mayfly(&[
        OsStr::new("run"),
        OsStr::new("--no-cache"),
        OsStr::new("--memory"),
        OsStr::new("16MiB"),
        path.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(134), "{stderr}");
    assert!(
        stderr.starts_with("mayfly: `greedy` reached its memory limit of 16MiB: "),
        "{stderr}"
    );
    // Within the cap, it runs.
    let output = run_mayfly(&[
        OsStr::new("run"),
        OsStr::new("--no-cache"),
        OsStr::new("--memory"),
        OsStr::new("2GiB"),
        path.as_os_str(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A tiny HTTP server on loopback: answers every request with `hello`, and
/// counts them.
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Upstream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                );
            }
        });
        Self { addr, requests }
    }
}

#[test]
fn outbound_http_needs_allow_host() {
    let upstream = Upstream::start();
    let url = format!("http://{}/greeting", upstream.addr);
    let allowed = format!("http://{}", upstream.addr);

    let (status, stdout, stderr) = run(&["--allow-host", &allowed], &["http", &url]);
    assert_eq!((status, stdout.as_str()), (0, "200\nhello"), "{stderr}");
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 1);

    // Not granted at all, or another port granted: refused inside the
    // guest, and the server never hears of it.
    for flags in [vec![], vec!["--allow-host", "http://127.0.0.1:1"]] {
        let (status, stdout, stderr) = run(&flags, &["http", &url]);
        assert_eq!((status, stdout.as_str()), (5, ""), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(&format!("GET {url}: ErrorCode::HttpRequestDenied")),
            "{flags:?}: {stderr}"
        );
    }
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let (status, _, stderr) = run(&["--dir", "/tmp::/x", "--dir", "/tmp::/x:rw"], &[]);
    assert_eq!(status, 1);
    assert_eq!(stderr, "error: --dir /tmp::/x:rw: `/x` is granted twice\n");
    // The longest timeout there is works (no overflow, no panic).
    let (status, stdout, _) = run(&["--timeout", "18446744073709551615ms"], &["args", "x"]);
    assert_eq!((status, stdout.as_str()), (0, "x\n"));
    let (status, _, stderr) = run(&["--dir", "/no/such/dir::/x"], &[]);
    assert_eq!(status, 1);
    assert_eq!(
        stderr,
        "error: --dir /no/such/dir::/x: /no/such/dir: No such file or directory (os error 2)\n"
    );
    let (status, _, stderr) = run(&["--env", "NOEQUALS"], &[]);
    assert_eq!(status, 1);
    assert_eq!(stderr, "error: --env NOEQUALS: write it as NAME=VALUE\n");
    // The sandbox's one rule for variable names, as for manifests.
    let (status, _, stderr) = run(&["--env", "=x"], &[]);
    assert_eq!(status, 1);
    assert_eq!(
        stderr,
        "error: --env =...: `` is not a valid variable name: it must be non-empty, without `=` or NUL\n"
    );

    // An HTTP component is not a command.
    let output = run_mayfly(&[
        OsStr::new("run"),
        OsStr::new("--no-cache"),
        OsStr::new(guests::HELLO),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "it does not export `wasi:cli/run` (of WASI 0.2 or 0.3), so it is not a command"
        ),
        "{stderr}"
    );
}
