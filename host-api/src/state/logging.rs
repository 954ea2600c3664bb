//! `wasi:logging/logging`: guest log messages into the host's log, escaped
//! and capped per request.

use super::LOG_CAP;
use super::StateView;
use super::bindings::wasi::logging::logging;
use crate::escape::escape_capped;
use crate::report::LINE_COST;

/// Longest single log message kept, in bytes (after escaping).
const MESSAGE_CAP: usize = 4 << 10;
/// Longest log context kept, in bytes (after escaping).
const CONTEXT_CAP: usize = 128;

impl logging::Host for StateView<'_> {
    async fn log(
        &mut self,
        level: logging::Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        // Escaped at the source: a guest cannot forge log lines or send
        // terminal escapes, whatever formatter prints them.
        let context = escape_capped(&context, CONTEXT_CAP);
        let message = escape_capped(&message, MESSAGE_CAP);
        let cost = context.len() + message.len() + LINE_COST;
        if self.ctx.logged + cost > LOG_CAP {
            self.ctx.dropped += 1;
            return Ok(());
        }
        self.ctx.logged += cost;
        let level = match level {
            logging::Level::Trace => "trace",
            logging::Level::Debug => "debug",
            logging::Level::Info => "info",
            logging::Level::Warn => "warn",
            logging::Level::Error => "error",
            logging::Level::Critical => "critical",
        };
        let component = &*self.ctx.component.component;
        let request_id = &*self.ctx.request;
        macro_rules! log {
            ($macro:ident) => {
                tracing::$macro!(
                    component,
                    request_id,
                    context = %context,
                    guest_level = level,
                    "{message}"
                )
            };
        }
        match level {
            "trace" | "debug" => log!(debug),
            "info" => log!(info),
            "warn" => log!(warn),
            _ => log!(error),
        }
        Ok(())
    }
}
