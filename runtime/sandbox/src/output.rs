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
            for line in String::from_utf8_lossy(bytes).lines() {
                let cost = line.len().saturating_add(LINE_COST);
                if cost > budget {
                    // With its line break.
                    dropped = dropped.saturating_add(line.len() + 1);
                    budget = 0;
                    continue;
                }
                budget -= cost;
                let line = escape(line);
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
