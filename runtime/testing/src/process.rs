//! Child processes run to their end within a bound, their output read
//! while they run.

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// Runs `command` to completion, its output captured; killed (and the test
/// failed) if it takes longer than [`PATIENCE`].
pub fn run_bounded(command: Command) -> Output {
    run_bounded_for(command, PATIENCE)
}

/// Runs `command` to completion, its output captured; killed (and the test
/// failed, showing what it printed) if it takes longer than `timeout`.
///
/// Both pipes are drained while it runs, so a command that prints more than
/// a pipe holds does not block and look hung.
pub fn run_bounded_for(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    let (stdout, stdout_done) = drain(child.stdout.take().unwrap());
    let (stderr, stderr_done) = drain(child.stderr.take().unwrap());
    let printed = || {
        format!(
            "---- stdout ----\n{}\n---- stderr ----\n{}",
            tail(&lock(&stdout)),
            tail(&lock(&stderr))
        )
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            // A moment for what is still in the pipes, unless something
            // the command started holds them open.
            let grace = Instant::now() + Duration::from_secs(2);
            while !(stdout_done.is_finished() && stderr_done.is_finished())
                && Instant::now() < grace
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!(
                "{command:?} did not finish within {timeout:?}; it printed:\n{}",
                printed()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // It has exited; the pipes end once everything it printed is read (or
    // never, if something it started still holds them).
    let grace = deadline.max(Instant::now() + Duration::from_secs(10));
    while !(stdout_done.is_finished() && stderr_done.is_finished()) {
        assert!(
            Instant::now() < grace,
            "{command:?} exited ({status}), but its output never ended \
             (a process it started still holds it?); it printed:\n{}",
            printed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stdout_done.join();
    let _ = stderr_done.join();
    let stdout = std::mem::take(&mut *lock(&stdout));
    let stderr = std::mem::take(&mut *lock(&stderr));
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads `pipe` to its end on a thread of its own, into a shared buffer that
/// can be looked at while it is being filled.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => lock(&sink).extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    (buffer, reader)
}

/// Calls `f` with each line read from `pipe`, its line end included, decoded
/// whole (so no character is split); the last line too, if the pipe ends
/// without a line end.
pub(crate) fn for_each_line(pipe: impl Read, mut f: impl FnMut(&str)) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        let result = reader.read_until(b'\n', &mut line);
        // On an error, `line` holds what was read before it.
        if !line.is_empty() {
            f(&String::from_utf8_lossy(&line));
        }
        if !matches!(result, Ok(n) if n > 0) {
            break;
        }
    }
}

/// The end of a command's output, at most 16 KiB of it, as text.
fn tail(bytes: &[u8]) -> String {
    const MAX: usize = 16 * 1024;
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(MAX)..]);
    if bytes.len() > MAX {
        format!("[... {} bytes before this ...]\n{text}", bytes.len() - MAX)
    } else {
        text.into_owned()
    }
}

/// Locks `mutex`, also after a thread panicked holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
