//! What a failed call says about itself, bounded: the error's chain, and
//! the guest's wasm backtrace, as text for a log line or an answer.
//!
//! Much of it is the guest's to choose: a trap's frames carry the names in
//! its name section (any length), a host error can carry a string the guest
//! passed in. So every frame's name is cut to [`MAX_FRAME_NAME`] bytes, at
//! most [`MAX_FRAMES`] frames are shown (the engine records no more), and
//! the whole text goes through the one escaping rule and is cut to the
//! caller's cap.

use std::fmt::Write as _;

use mayfly_host_api::escape::escape_capped;
use wasmtime::WasmBacktrace;

/// The most frames of a guest's backtrace that are recorded and shown
/// (the engine's `wasm_backtrace_max_frames`).
pub const MAX_FRAMES: usize = 20;

/// The most of one function's name a backtrace shows, in bytes.
pub const MAX_FRAME_NAME: usize = 128;

/// The most a failure's description takes in the host's log, in bytes:
/// that of any warning about a request.
pub const LOG_CAP: usize = mayfly_host_api::report::MESSAGE_CAP;

/// `err`'s chain of causes, outermost first, joined by `: `, without the
/// wasm backtrace (see [`backtrace`]); escaped and cut to `cap` bytes.
pub fn reason(err: &wasmtime::Error, cap: usize) -> String {
    let mut text = String::new();
    // The backtrace, when there is one, is the outermost context.
    let backtrace = usize::from(err.downcast_ref::<WasmBacktrace>().is_some());
    for cause in err.chain().skip(backtrace) {
        if !text.is_empty() {
            text.push_str(": ");
        }
        // A cause longer than the cap is cut here already, so a guest's
        // string is never copied whole.
        text.push_str(&display_capped(&cause, cap));
        if text.len() > cap {
            break;
        }
    }
    escape_capped(&text, cap)
}

/// `err` as the operator reads it: its [`reason`], then the guest's wasm
/// backtrace if it has one, one frame a line, names cut to
/// [`MAX_FRAME_NAME`]; escaped and cut to [`LOG_CAP`] bytes.
pub fn describe(err: &wasmtime::Error) -> String {
    let mut text = reason(err, LOG_CAP);
    if let Some(trace) = err.downcast_ref::<WasmBacktrace>() {
        text.push_str("\nwasm backtrace:");
        text.push_str(&backtrace(trace));
    }
    escape_capped(&text, LOG_CAP)
}

/// The frames of `trace`, one a line, at most [`MAX_FRAMES`], each name
/// cut to [`MAX_FRAME_NAME`] bytes.
pub fn backtrace(trace: &WasmBacktrace) -> String {
    let mut text = String::new();
    for (index, frame) in trace.frames().iter().take(MAX_FRAMES).enumerate() {
        let module = frame.module().name().unwrap_or("<unknown>");
        let _ = write!(text, "\n{index:>5}: ");
        if let Some(offset) = frame.module_offset() {
            let _ = write!(text, "{offset:#x} - ");
        }
        let name = match frame.func_name() {
            Some(name) => format!("{:#}", rustc_demangle::demangle(name)),
            None => format!("<wasm function {}>", frame.func_index()),
        };
        let _ = write!(
            text,
            "{}!{}",
            cut(module, MAX_FRAME_NAME),
            cut(&name, MAX_FRAME_NAME)
        );
    }
    text
}

/// `text`, cut to at most `cap` bytes at a character boundary, with `...`
/// when cut.
fn cut(text: &str, cap: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= cap {
        return text.into();
    }
    let mut end = cap.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end]).into()
}

/// `value`'s `Display`, stopping once `cap` bytes are written (one more
/// marks that it was cut), so that a guest's long string is never copied
/// whole. Not escaped.
pub fn display_capped(value: &dyn std::fmt::Display, cap: usize) -> String {
    let mut out = Bounded {
        text: String::new(),
        cap,
    };
    // A write past the cap stops the formatting with an error, which is
    // what it is for: whatever fit is kept.
    let _ = write!(out, "{value}");
    out.text
}

/// [`display_capped`], for `value`'s `Debug`.
pub fn debug_capped(value: &dyn std::fmt::Debug, cap: usize) -> String {
    let mut out = Bounded {
        text: String::new(),
        cap,
    };
    let _ = write!(out, "{value:?}");
    out.text
}

/// A string that takes at most `cap` bytes, then refuses.
struct Bounded {
    text: String,
    cap: usize,
}

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.cap.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        // One byte past the cap, so the escaping that follows knows it was
        // cut, at a character boundary.
        let mut end = room.saturating_add(1).min(s.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        Err(std::fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_escaped_and_cut() {
        let err = wasmtime::format_err!("{}", "x\n".repeat(1 << 20)).context("outer");
        let text = reason(&err, 1024);
        assert!(text.len() <= 1024, "{}", text.len());
        assert!(text.starts_with("outer: x\\nx\\n"), "{text}");
        assert!(text.ends_with("..."), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn a_short_reason_is_whole() {
        let err = wasmtime::format_err!("inner").context("outer");
        assert_eq!(reason(&err, 1024), "outer: inner");
        assert_eq!(describe(&err), "outer: inner");
    }

    #[test]
    fn a_long_value_is_cut_while_it_is_formatted() {
        let long = "é".repeat(1 << 20);
        let shown = display_capped(&long, 100);
        assert!(shown.len() <= 101 && shown.len() >= 99, "{}", shown.len());
        let shown = debug_capped(&Some(&long), 100);
        assert!(shown.starts_with("Some(\"éé"), "{shown}");
        assert!(shown.len() <= 101);
        assert_eq!(display_capped(&"short", 100), "short");
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdefghijk", 10), "abcdefg...");
        assert!(cut(&"é".repeat(100), 11).len() <= 11);
    }

    /// A trap 30 calls deep in a function whose name is 99,000 bytes long.
    #[test]
    fn a_trap_in_a_long_named_function_is_described_within_the_cap() {
        let name = "f".repeat(99_000);
        let module = format!(
            r#"(module
                 (func ${name} (export "run") (param i32)
                   (if (i32.eqz (local.get 0)) (then unreachable))
                   (call ${name} (i32.sub (local.get 0) (i32.const 1)))))"#
        );
        let engine = crate::engine::test_engine();
        let module = wasmtime::Module::new(&engine, wat::parse_str(module).unwrap()).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        // (No ticker runs: the epoch never reaches this.)
        store.set_epoch_deadline(1 << 40);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let run = instance
            .get_typed_func::<i32, ()>(&mut store, "run")
            .unwrap();
        let err = run.call(&mut store, 30).unwrap_err();
        let text = describe(&err);
        assert!(text.len() <= LOG_CAP, "{} bytes", text.len());
        assert!(text.starts_with("wasm trap: wasm `unreachable`"), "{text}");
        assert_eq!(text.matches("fff...").count(), MAX_FRAMES, "{text}");
        // What wasmtime itself prints is the whole of every name.
        assert!(format!("{err:?}").len() > 20 * 99_000);
    }
}
