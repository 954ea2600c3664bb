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
//! messages, their trap messages) or clients (request ids), so both
//! formats pass every field through the one escaping rule,
//! [`mayfly_host_api::escape`]: a line break shows as `\n`, a bidi
//! override as `\u{202e}`, and one event is always exactly one line that
//! starts with its true component and request.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mayfly_host_api::escape::escape;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `mayfly: component `x` request 7: message`
    Human,
    /// One JSON object per line, fields at the top level.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "unknown log format `{text}`, expected `human` or `json`"
            )),
        }
    }
}

/// Sends the log to stderr in `format`. Call once, early.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(Level::INFO);
    let _ = match format {
        LogFormat::Human => builder.event_format(Human).try_init(),
        LogFormat::Json => builder.event_format(Json).try_init(),
    };
}

/// Whether every request gets a line (`--log-requests`, `mayfly dev`).
static REQUESTS: AtomicBool = AtomicBool::new(false);

/// Logs a line for every request from now on (or no more): its method,
/// path (never the query, which may carry a token), status and time.
pub fn log_requests(on: bool) {
    REQUESTS.store(on, Ordering::Relaxed);
}

/// Whether requests are logged: checked before anything is kept for the
/// line, so that serving without it costs a load.
pub(crate) fn logs_requests() -> bool {
    REQUESTS.load(Ordering::Relaxed)
}

/// The line of one request: `GET /hi -> 200 in 1.3ms`.
pub(crate) fn request_line(
    component: Option<&str>,
    request_id: &str,
    (method, path): &(http::Method, String),
    status: http::StatusCode,
    took: Duration,
) {
    let status = status.as_u16();
    match component {
        Some(component) => tracing::info!(
            component,
            request_id,
            "{method} {path} -> {status} in {took:.1?}"
        ),
        None => tracing::info!("{method} {path} -> {status} (no route) in {took:.1?}"),
    }
}

/// An event's fields, every value escaped.
#[derive(Default)]
struct Fields {
    message: String,
    component: Option<String>,
    request_id: Option<String>,
    stream: Option<String>,
    context: Option<String>,
    guest_level: Option<String>,
    other: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = escape(value).into_owned();
        match field.name() {
            "message" => self.message = value,
            "component" => self.component = Some(value),
            "request_id" => self.request_id = Some(value),
            "stream" => self.stream = Some(value),
            "context" => self.context = Some(value),
            "guest_level" => self.guest_level = Some(value),
            name => self.other.push((name, value)),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Fields {
    fn of(event: &Event<'_>) -> Self {
        let mut fields = Self::default();
        event.record(&mut fields);
        fields
    }
}

/// The human format.
struct Human;

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
        let fields = Fields::of(event);
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

/// The JSON format: `timestamp`, `level`, `target`, `message` and the
/// event's fields, at the top level.
struct Json;

impl<S, N> FormatEvent<S, N> for Json
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
        let fields = Fields::of(event);
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        let mut object = serde_json::Map::new();
        let mut put = |name: &str, value: String| {
            object.insert(name.to_string(), serde_json::Value::String(value));
        };
        put("timestamp", timestamp);
        put("level", metadata.level().to_string());
        put("target", metadata.target().to_string());
        put("message", fields.message);
        for (name, value) in [
            ("component", fields.component),
            ("request_id", fields.request_id),
            ("stream", fields.stream),
            ("context", fields.context),
            ("guest_level", fields.guest_level),
        ] {
            if let Some(value) = value {
                put(name, value);
            }
        }
        for (name, value) in fields.other {
            put(name, value);
        }
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}
