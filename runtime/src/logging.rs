//! The host's log: `tracing` events on stderr, one line each, human-readable
//! by default or JSON (`--log-format json`).
//!
//! Events about a request carry the fields `component` and `request_id`
//! (the request's `x-request-id`); guest output adds `stream` (`stdout`,
//! `stderr`) or, for `wasi:logging`, `context`. The human format turns them
//! into a prefix:
//!
//! ```text
//! mayfly: component `api` request 42: trapped: wasm trap: ...
//! mayfly: component `api` request 42 stdout: a line the guest printed
//! mayfly: component `api` request 42 [warn cache]: a wasi:logging message
//! ```
//!
//! Much of what is logged comes from guests (their output, their log
//! messages, their trap messages) or clients (request ids), so the human
//! format escapes control characters: a line break in a message shows as
//! `\n`, and one event is always exactly one line that starts with its
//! true component and request.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `mayfly: component `x` request 7: message`
    Human,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// Sends the log to stderr in `format`. Call once, early.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(Level::INFO);
    let _ = match format {
        LogFormat::Human => builder.event_format(Human).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// The human format.
struct Human;

#[derive(Default)]
struct Fields {
    message: String,
    component: Option<String>,
    request_id: Option<String>,
    stream: Option<String>,
    context: Option<String>,
    guest_level: Option<String>,
    other: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = escape(value);
        match field.name() {
            "message" => self.message = value,
            "component" => self.component = Some(value),
            "request_id" => self.request_id = Some(value),
            "stream" => self.stream = Some(value),
            "context" => self.context = Some(value),
            "guest_level" => self.guest_level = Some(value),
            name => self.other.push((name.to_string(), value)),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut about = Vec::new();
        if let Some(component) = &fields.component {
            about.push(format!("component `{component}`"));
        }
        if let Some(request) = &fields.request_id {
            about.push(format!("request {request}"));
        }
        if let Some(stream) = &fields.stream {
            about.push(stream.clone());
        }
        if let Some(context) = &fields.context {
            let level = fields.guest_level.as_deref().unwrap_or("info");
            about.push(format!("[{level} {context}]"));
        }
        if about.is_empty() {
            write!(writer, "mayfly: {}", fields.message)?;
        } else {
            write!(writer, "mayfly: {}: {}", about.join(" "), fields.message)?;
        }
        for (name, value) in &fields.other {
            write!(writer, " {name}={value}")?;
        }
        writeln!(writer)
    }
}

/// `text` with its control characters escaped (`\n`, `\r`, `\t`, others
/// as `\u{1b}`), so that it cannot break a log line, forge another
/// one or send escape sequences to a terminal.
fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.extend(c.escape_unicode()),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_cannot_break_a_line() {
        assert_eq!(escape("plain text: ok"), "plain text: ok");
        assert_eq!(
            escape("one\nmayfly: component `admin` request 1: forged"),
            "one\\nmayfly: component `admin` request 1: forged"
        );
        assert_eq!(escape("a\r\tb"), "a\\r\\tb");
        assert_eq!(escape("\u{1b}[2Jred"), "\\u{1b}[2Jred");
        assert_eq!(escape("\u{7f}\u{85}"), "\\u{7f}\\u{85}");
    }
}
