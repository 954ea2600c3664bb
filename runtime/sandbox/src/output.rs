//! Guest stdout and stderr, collected per request into a capped buffer and
//! written to the host's log, each line tagged with the component and the
//! request id, when the request ends.
//!
//! Writes never fail and never block the guest: past the cap, bytes are
//! dropped and counted. A guest cannot fill the host's disk or memory by
//! printing, and each line is escaped before it is logged, so it cannot
//! forge another line or send escape sequences to a terminal.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use mayfly_host_api::escape::escape;
use mayfly_host_api::report::LINE_COST;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of a request's stdout and stderr, together, reaches the log.
pub const GUEST_LOG_CAP: usize = 16 << 10;

/// The output of one request's instance.
#[derive(Clone, Default)]
pub struct GuestLog(Arc<Mutex<Buffers>>);

#[derive(Default)]
struct Buffers {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    dropped: usize,
    /// When the guest first wrote to stdout.
    first_stdout: Option<std::time::Instant>,
}

#[derive(Clone, Copy)]
enum Which {
    Stdout,
    Stderr,
}

/// One of the two streams, as handed to WASI.
#[derive(Clone)]
pub struct GuestStream {
    log: GuestLog,
    which: Which,
}

impl GuestLog {
    /// The guest's stdout.
    pub fn stdout(&self) -> GuestStream {
        GuestStream {
            log: self.clone(),
            which: Which::Stdout,
        }
    }

    /// The guest's stderr.
    pub fn stderr(&self) -> GuestStream {
        GuestStream {
            log: self.clone(),
            which: Which::Stderr,
        }
    }

    fn append(&self, which: Which, bytes: &[u8]) {
        let mut buffers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let used = buffers.stdout.len() + buffers.stderr.len();
        let room = GUEST_LOG_CAP.saturating_sub(used);
        let kept = bytes.len().min(room);
        buffers.dropped += bytes.len() - kept;
        let target = match which {
            Which::Stdout => {
                if buffers.first_stdout.is_none() && !bytes.is_empty() {
                    buffers.first_stdout = Some(std::time::Instant::now());
                }
                &mut buffers.stdout
            }
            Which::Stderr => &mut buffers.stderr,
        };
        target.extend_from_slice(&bytes[..kept]);
    }

    /// What the guest has written to stdout so far (capped), as text.
    pub fn stdout_text(&self) -> String {
        let buffers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buffers.stdout).into_owned()
    }

    /// When the guest first wrote to stdout, if it has.
    pub fn first_stdout_at(&self) -> Option<std::time::Instant> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_stdout
    }

    /// What the guest has written to stderr so far (capped), as text.
    pub fn stderr_text(&self) -> String {
        let buffers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buffers.stderr).into_owned()
    }

    /// Forgets what the guest printed so far (for an instance that serves
    /// another call).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Buffers::default();
    }

    /// Writes what the guest printed to the host's log, one event per
    /// guest line, tagged with `component` and `request`.
    ///
    /// Every event costs its framing ([`LINE_COST`]) as well as its text,
    /// against the same [`GUEST_LOG_CAP`]: a flood of empty lines is not
    /// free. What does not fit is counted in the one warning at the end.
    pub fn flush(&self, component: &str, request: &str) {
        let buffers = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        let mut budget = GUEST_LOG_CAP;
        let mut dropped = buffers.dropped;
        for (stream, bytes) in [("stdout", &buffers.stdout), ("stderr", &buffers.stderr)] {
            let (lines, left_out) = fitting_lines(&String::from_utf8_lossy(bytes), &mut budget);
            dropped = dropped.saturating_add(left_out);
            for line in lines {
                tracing::info!(component, request_id = request, stream, "{line}");
            }
        }
        if dropped > 0 {
            tracing::warn!(
                component,
                request_id = request,
                "{dropped} more bytes of output dropped (cap {GUEST_LOG_CAP} bytes per request)",
            );
        }
    }
}

/// The lines of `text`, escaped, that fit in `budget` (which they use up),
/// each costing what it takes in the log, escaped, plus [`LINE_COST`]; and
/// how many bytes of `text` were left out. Once a line does not fit, none
/// after it is logged, so what the log shows is a prefix of the output.
fn fitting_lines(text: &str, budget: &mut usize) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut left_out = 0usize;
    for line in text.lines() {
        let escaped = escape(line);
        let cost = escaped.len().saturating_add(LINE_COST);
        if cost > *budget {
            // With its line break.
            left_out = left_out.saturating_add(line.len() + 1);
            *budget = 0;
            continue;
        }
        *budget -= cost;
        lines.push(escaped.into_owned());
    }
    (lines, left_out)
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.append(self.which, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.log.append(self.which, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_costs_its_escaped_length_and_its_framing() {
        // The capped buffer full of empty lines: a line per LINE_COST bytes.
        let mut budget = GUEST_LOG_CAP;
        let (lines, left_out) = fitting_lines(&"\n".repeat(GUEST_LOG_CAP), &mut budget);
        assert_eq!(lines.len(), GUEST_LOG_CAP / LINE_COST);
        assert_eq!(left_out, GUEST_LOG_CAP - GUEST_LOG_CAP / LINE_COST);
        // Control characters cost what they take escaped (`\u{1}`, six
        // bytes each), not the one byte the guest wrote.
        let mut budget = GUEST_LOG_CAP;
        let raw = "\u{1}".repeat(GUEST_LOG_CAP / 2);
        let (lines, left_out) = fitting_lines(&raw, &mut budget);
        assert!(lines.is_empty());
        assert_eq!(left_out, raw.len() + 1);
        // What fits is escaped, and what follows a line that did not fit is
        // left out too.
        let mut budget = 100;
        let (lines, left_out) = fitting_lines("a\u{1b}[2J\nbig line\nc", &mut budget);
        assert_eq!(lines, ["a\\u{1b}[2J"]);
        assert_eq!(left_out, "big line\nc\n".len());
    }
}
