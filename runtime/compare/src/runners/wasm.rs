//! A fresh Mayfly instance per call, in process: the workload as a
//! `wasi:cli` command, run the way `mayfly run` runs one (the sandbox's
//! [`Command`]), granted nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly_sandbox::output::GuestLog;
use mayfly_sandbox::{
    CallChain, Command, CompileCache, Ended, EngineSettings, Grants, Runtime, Sandbox, Stdio,
    StoreLimits,
};

use super::runner::{Call, Runner};

/// A fresh Mayfly instance per call, in process, from the pre-instantiated
/// component; no grants, `memory` of linear memory.
pub struct WasmRunner {
    command: Command,
    _runtime: Runtime,
}

impl WasmRunner {
    /// Loads the component at `path`.
    pub fn new(path: &Path, memory: usize) -> anyhow::Result<Self> {
        let runtime = Runtime::new(EngineSettings::default(), CompileCache::disabled())?;
        let bytes = std::fs::read(path)
            .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
        let limits = StoreLimits {
            max_memory_bytes: memory,
            ..StoreLimits::default()
        };
        let sandbox = Sandbox::new(
            runtime.engine(),
            Arc::from("workload"),
            Grants::default(),
            limits,
            None,
        )?;
        let command = Command::load(&runtime, &bytes, sandbox)
            .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
        Ok(Self {
            command,
            _runtime: runtime,
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
        let call = CallChain::new(Arc::from("compare"), started + deadline);
        let ran = RUNTIME.with(|runtime| {
            let Some(runtime) = runtime else {
                anyhow::bail!("cannot start an event loop");
            };
            Ok(runtime.block_on(self.command.run(call, &Stdio::captured(&log), &argv))?)
        })?;
        let ended = match &ran.ended {
            Ended::Finished => "ok".to_string(),
            Ended::Exited(code) => format!("exit {code}"),
            Ended::Deadline => "deadline".to_string(),
            other => match other.failure().and_then(|failure| failure.trap()) {
                Some(trap) => format!("trap: {trap}"),
                None => format!("error: {}", other.reason(1 << 10)),
            },
        };
        Ok(Call {
            stdout: log.stdout_text(),
            ended,
            create: ran.instantiated,
            start: Duration::ZERO,
            first_byte: log
                .first_stdout_at()
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(started)),
            run: ran.ran,
            teardown: ran.torn_down,
            rss_kib: 0,
        })
    }
}
