//! The host side of {{name}}: a program that loads the plugin, calls its
//! `transform` with limits, and survives whatever it does.
//!
//! ```sh
//! cargo run --release -- ../target/wasm32-wasip2/release/{{crate}}.wasm "some text"
//! ```

mod plugin;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, input] = args.as_slice() else {
        eprintln!("usage: {{name}}-host PLUGIN.wasm INPUT");
        return ExitCode::from(2);
    };
    match plugin::transform(path.as_ref(), input).await {
        Ok(call) => {
            for line in &call.log {
                eprintln!("plugin log: {line}");
            }
            match call.output {
                Ok(output) => {
                    println!("{output}");
                    ExitCode::SUCCESS
                }
                Err(refusal) => {
                    eprintln!("the plugin refused: {refusal}");
                    ExitCode::FAILURE
                }
            }
        }
        // A trap, a limit, a plugin of the wrong world: each is a variant
        // of `PluginError` the host can act on.
        Err(err) => {
            eprintln!("the plugin failed: {err}");
            ExitCode::FAILURE
        }
    }
}
