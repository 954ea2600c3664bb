//! A host program that runs an untrusted `mayfly:plugin/filter` plugin.
//!
//! ```sh
//! cargo run --release -- PLUGIN.wasm "some text"
//! ```
//!
//! It is a crate of its own, outside Mayfly's workspace, as any program
//! that embeds Mayfly would be: it depends on `mayfly-plugin` alone (and on
//! wasmtime for `bindgen!`), and builds without the `wasm32-wasip2` target.
//!
//! The host owns its WIT world (`wit/plugin/filter.wit`) and generates its
//! bindings with wasmtime's `bindgen!`; Mayfly supplies the sandbox: the
//! engine, the limits, the grants and a fresh instance for every call. The
//! world's `log` import is the host's own function: the plugin calls it,
//! and the host keeps this call's lines (a bounded number of them) in the
//! store, then prints them.

use std::process::ExitCode;
use std::time::Duration;

use mayfly_plugin::{Host, PluginEngine, PluginError};
use wasmtime::component::HasSelf;

wasmtime::component::bindgen!({
    path: "../../wit/plugin",
    world: "filter",
    exports: { default: async },
});

/// What one call logged: at most `MAX_LINES` lines of `MAX_LINE` bytes.
#[derive(Default)]
struct CallLog {
    lines: Vec<String>,
    dropped: usize,
}

const MAX_LINES: usize = 100;
const MAX_LINE: usize = 1024;

/// The world's imports, implemented on the store's data; the per-call state
/// is the store's user value.
impl FilterImports for Host {
    fn log(&mut self, mut message: String) {
        let Some(log) = self.user_mut::<CallLog>() else {
            return;
        };
        if log.lines.len() >= MAX_LINES {
            log.dropped += 1;
            return;
        }
        if message.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        log.lines.push(message);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, input] = args.as_slice() else {
        eprintln!("usage: filter_host PLUGIN.wasm INPUT");
        return ExitCode::from(2);
    };
    let (result, log) = match run(plugin, input).await {
        Ok((result, log)) => (Ok(result), log),
        Err(err) => (Err(err), CallLog::default()),
    };
    for line in &log.lines {
        eprintln!("plugin log: {line}");
    }
    if log.dropped > 0 {
        eprintln!("plugin log: {} more lines dropped", log.dropped);
    }
    match result {
        Ok(Ok(output)) => {
            println!("{}", String::from_utf8_lossy(&output));
            ExitCode::SUCCESS
        }
        Ok(Err(refusal)) => {
            eprintln!("the plugin refused the input: {refusal}");
            ExitCode::from(1)
        }
        Err(err) => {
            // Each kind of failure is a variant the host can act on.
            let what = match &err {
                PluginError::Invalid { .. } => "not a filter plugin",
                PluginError::DeadlineExceeded { .. } => "too slow",
                PluginError::MemoryLimit { .. } | PluginError::TableLimit { .. } => "too greedy",
                PluginError::Denied { .. } => "not allowed",
                PluginError::Trap { .. } => "crashed",
                _ => "failed",
            };
            eprintln!("{what}: {err}");
            ExitCode::from(1)
        }
    }
}

async fn run(plugin: &str, input: &str) -> Result<(Result<Vec<u8>, String>, CallLog), PluginError> {
    let engine = PluginEngine::new()?;
    let plugin = engine
        .plugin()
        .timeout(Duration::from_secs(2))
        .memory(32 << 20)
        .link(|linker| Filter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
        .check(|pre| FilterPre::new(pre.clone()).map(drop))
        .load(plugin)?;
    plugin
        .call(async |store, instance| {
            store.data_mut().set_user(CallLog::default());
            let filter = Filter::new(&mut *store, instance)?;
            let output = filter.call_transform(&mut *store, input.as_bytes()).await?;
            let log = store.data_mut().take_user::<CallLog>().unwrap_or_default();
            Ok((output, log))
        })
        .await
}
