//! A fresh Mayfly instance per call, in process.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly_sandbox::epoch::EpochTicker;
use mayfly_sandbox::output::GuestLog;
use mayfly_sandbox::{CallContext, EngineSettings, Grants, Host, RequestLimits, Sandbox, Stdio};
use wasmtime::Trap;
use wasmtime::component::Component;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::runner::{Call, Runner};

/// A fresh Mayfly instance per call, in process, from the pre-instantiated
/// component; no grants, `memory` of linear memory.
pub struct WasmRunner {
    pre: CommandPre<Host>,
    sandbox: Sandbox,
    _ticker: EpochTicker,
}

impl WasmRunner {
    /// Loads the component at `path`.
    pub fn new(path: &Path, memory: usize) -> anyhow::Result<Self> {
        let engine = EngineSettings::default()
            .build()
            .map_err(anyhow::Error::from)?;
        let ticker = EpochTicker::start(&engine)?;
        let component = Component::from_file(&engine, path)
            .map_err(|err| anyhow::anyhow!("{}: {err:#}", path.display()))?;
        let linker = mayfly_sandbox::linker::linker(&engine, false).map_err(anyhow::Error::from)?;
        let pre = CommandPre::new(
            linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)?,
        )
        .map_err(anyhow::Error::from)?;
        let limits = RequestLimits {
            max_memory_bytes: memory,
            ..RequestLimits::default()
        };
        let sandbox = Sandbox::new(
            &engine,
            Arc::from("workload"),
            Grants::default(),
            limits,
            None,
        )?;
        Ok(Self {
            pre,
            sandbox,
            _ticker: ticker,
        })
    }
}

thread_local! {
    /// One event loop per measuring thread, so that no call pays for one.
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
}

impl Runner for WasmRunner {
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call> {
        let log = GuestLog::default();
        let mut argv = vec!["workload".to_string()];
        argv.extend(args.iter().cloned());
        let started = Instant::now();
        let call = CallContext::new(Arc::from("compare"), started + deadline);
        let mut store = self.sandbox.store(call, &Stdio::captured(&log), &argv)?;
        let (outcome, create) = RUNTIME.with(|runtime| {
            let Some(runtime) = runtime else {
                return (
                    Err(wasmtime::Error::msg("cannot start an event loop")),
                    Duration::ZERO,
                );
            };
            runtime.block_on(async {
                let command = self.pre.instantiate_async(&mut store).await;
                let create = started.elapsed();
                let command = match command {
                    Ok(command) => command,
                    Err(err) => return (Err(err), create),
                };
                (command.wasi_cli_run().call_run(&mut store).await, create)
            })
        });
        let ran = started.elapsed();
        drop(store);
        let teardown = started.elapsed() - ran;
        let ended = match outcome {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(())) => "exit 1".to_string(),
            Err(err) => match err.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => "deadline".to_string(),
                Some(trap) => format!("trap: {trap}"),
                None => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    Some(exit) => format!("exit {}", exit.0),
                    None => format!("error: {err}"),
                },
            },
        };
        Ok(Call {
            stdout: log.stdout_text(),
            ended,
            create,
            start: Duration::ZERO,
            first_byte: log
                .first_stdout_at()
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(started)),
            run: ran - create,
            teardown,
            rss_kib: 0,
        })
    }
}
