//! A command run with its output streamed to stderr a line at a time, each
//! line behind its component's name, and its last lines kept for hints.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

/// Lines of output kept for [`Ran::tail`].
const TAIL_LINES: usize = 64;

/// How a streamed command ended.
pub(crate) struct Ran {
    pub(crate) status: ExitStatus,
    /// Its last lines of output, stdout and stderr interleaved as they
    /// came.
    pub(crate) tail: Vec<String>,
}

/// Runs `command` with no input, each line it writes (to stdout or stderr)
/// going to stderr as `[prefix] line`.
pub(crate) fn run(prefix: &str, command: &mut Command) -> std::io::Result<Ran> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let mut pipes: Vec<Box<dyn Read + Send>> = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        pipes.push(Box::new(out));
    }
    if let Some(err) = child.stderr.take() {
        pipes.push(Box::new(err));
    }
    let readers: Vec<_> = pipes
        .into_iter()
        .map(|pipe| {
            let prefix = prefix.to_owned();
            let tail = tail.clone();
            std::thread::spawn(move || relay(&prefix, pipe, &tail))
        })
        .collect();
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait()?;
    let tail = std::mem::take(&mut *tail.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Ran {
        status,
        tail: tail.into(),
    })
}

/// Prints one line to stderr behind `prefix`.
pub(crate) fn say(prefix: &str, line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "[{prefix}] {line}");
}

fn relay(prefix: &str, pipe: Box<dyn Read + Send>, tail: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        say(prefix, text);
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.to_owned());
    }
}
