//! A host program that runs an untrusted `mayfly:plugin/filter` plugin.
//!
//! ```sh
//! cargo run --release --example filter_host -- PLUGIN.wasm "some text"
//! ```
//!
//! The host owns its WIT world (`wit/plugin/filter.wit`) and generates its
//! bindings with wasmtime's `bindgen!`; Mayfly supplies the sandbox: the
//! engine, the limits, the grants and a fresh instance for every call.

use std::process::ExitCode;
use std::time::Duration;

use mayfly::plugin::{PluginEngine, PluginError};

wasmtime::component::bindgen!({
    path: "../wit/plugin",
    world: "filter",
    exports: { default: async },
});

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, input] = args.as_slice() else {
        eprintln!("usage: filter_host PLUGIN.wasm INPUT");
        return ExitCode::from(2);
    };
    match run(plugin, input).await {
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
                PluginError::DeadlineExceeded { .. } => "too slow",
                PluginError::MemoryLimit { .. } => "too greedy",
                PluginError::Denied { .. } => "not allowed",
                PluginError::Trap { .. } => "crashed",
                _ => "failed",
            };
            eprintln!("{what}: {err}");
            ExitCode::from(1)
        }
    }
}

async fn run(plugin: &str, input: &str) -> Result<Result<Vec<u8>, String>, PluginError> {
    let engine = PluginEngine::new()?;
    let plugin = engine
        .plugin()
        .timeout(Duration::from_secs(2))
        .memory(32 << 20)
        .require_export("transform")
        .load(plugin)?;
    plugin
        .call(async |store, instance| {
            let filter = Filter::new(&mut *store, instance)?;
            filter.call_transform(&mut *store, input.as_bytes()).await
        })
        .await
}
