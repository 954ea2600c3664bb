//! `mayfly run`: a `wasi:cli` command in a fresh instance, with grants as
//! flags; the guest's exit status is mayfly's.

use std::ffi::OsStr;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::guests;
use crate::harness::{MAYFLY, PATIENCE, run_mayfly, write_file};

/// `mayfly run --no-cache FLAGS... CLI -- ARGS...`: (status, stdout, stderr).
fn run(flags: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--no-cache")];
    all.extend(flags.iter().map(OsStr::new));
    all.push(OsStr::new(guests::CLI));
    all.push(OsStr::new("--"));
    all.extend(args.iter().map(OsStr::new));
    let output = run_mayfly(&all);
    (
        output.status.code().expect("mayfly was killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn arguments_and_exit_status_pass_through() {
    let (status, stdout, _) = run(&["--stdio"], &["args", "one", "two words"]);
    assert_eq!((status, stdout.as_str()), (0, "one\ntwo words\n"));
    for code in ["0", "1", "7", "42"] {
        let (status, _, _) = run(&[], &["exit", code]);
        assert_eq!(status.to_string(), code);
    }
}

#[test]
fn without_stdio_output_goes_to_the_log_and_stdin_is_empty() {
    let (status, stdout, stderr) = run(&[], &["args", "hello"]);
    assert_eq!(status, 0);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("mayfly: component `cli` request 1 stdout: hello"),
        "{stderr}"
    );

    let mut child = Command::new(MAYFLY)
        .args(["run", "--no-cache", "--stdio", guests::CLI, "--", "stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "PIPED IN\n");
}

#[test]
fn only_granted_variables_are_visible() {
    let (status, stdout, _) = run(&["--stdio", "--env", "GREETING=hi"], &["env", "GREETING"]);
    assert_eq!((status, stdout.as_str()), (0, "hi\n"));
    let (status, _, stderr) = run(&["--stdio"], &["env", "HOME"]);
    assert_eq!(status, 3);
    assert_eq!(stderr, "HOME: environment variable not found\n");
}

#[test]
fn directories_are_granted_read_only_or_read_write() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "in.txt", "file contents");
    let ro = format!("{}::/data:ro", dir.path().display());
    let rw = format!("{}::/data", dir.path().display());

    let (status, stdout, _) = run(&["--stdio", "--dir", &ro], &["cat", "/data/in.txt"]);
    assert_eq!((status, stdout.as_str()), (0, "file contents"));
    let (status, _, stderr) = run(&["--stdio", "--dir", &ro], &["write", "/data/out.txt", "x"]);
    assert_eq!(status, 4);
    assert_eq!(
        stderr,
        "cannot write /data/out.txt: Operation not permitted (os error 63)\n"
    );
    assert!(!dir.path().join("out.txt").exists());

    let (status, _, _) = run(&["--stdio", "--dir", &rw], &["write", "/data/out.txt", "x"]);
    assert_eq!(status, 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "x"
    );

    // Nothing else is there.
    let (status, _, stderr) = run(&["--stdio", "--dir", &ro], &["cat", "/etc/passwd"]);
    assert_eq!(status, 4);
    assert_eq!(
        stderr,
        "cannot read /etc/passwd: No such file or directory (os error 44)\n"
    );
}

#[test]
fn limits_stop_the_command_with_their_own_status() {
    let started = Instant::now();
    let (status, _, stderr) = run(&["--timeout", "1s"], &["loop"]);
    assert_eq!(status, 124);
    assert_eq!(stderr, "mayfly: `cli` exceeded its deadline of 1s\n");
    assert!(started.elapsed() < PATIENCE);

    let (status, _, stderr) = run(&["--fuel", "1000000"], &["loop"]);
    assert_eq!(status, 134);
    assert!(stderr.starts_with("mayfly: `cli` trapped: "), "{stderr}");
    assert!(
        stderr.ends_with("wasm trap: all fuel consumed by WebAssembly\n"),
        "{stderr}"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let (status, _, stderr) = run(&["--dir", "/no/such/dir::/x"], &[]);
    assert_eq!(status, 1);
    assert_eq!(
        stderr,
        "error: --dir /no/such/dir::/x: /no/such/dir is not a directory\n"
    );
    let (status, _, stderr) = run(&["--env", "NOEQUALS"], &[]);
    assert_eq!(status, 1);
    assert_eq!(stderr, "error: --env NOEQUALS: write it as NAME=VALUE\n");

    // An HTTP component is not a command.
    let output = run_mayfly(&[
        OsStr::new("run"),
        OsStr::new("--no-cache"),
        OsStr::new(guests::HELLO),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("it does not export `wasi:cli/run`, so it is not a command"),
        "{stderr}"
    );
}
