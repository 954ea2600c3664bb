//! A `wasi:cli` command, of WASI 0.2 or 0.3: loaded once, run in a fresh
//! instance per call, its end told as an [`Ended`]. `mayfly run` and
//! `mayfly compare`'s wasm runner both run commands this way.

use std::time::{Duration, Instant};

use mayfly_host_api::chain::CallChain;
use wasmtime::component::InstancePre;

use crate::ended::Ended;
use crate::host::Host;
use crate::runtime::{LoadError, Runtime};
use crate::sandbox::Sandbox;
use crate::stdio::Stdio;

/// Which `wasi:cli/run` a command exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandWorld {
    /// `wasi:cli/run@0.2`.
    Cli02,
    /// `wasi:cli/run@0.3`: component-model async.
    Cli03,
}

/// A command, compiled and linked, with the sandbox each run gets.
pub struct Command {
    pre: InstancePre<Host>,
    world: CommandWorld,
    sandbox: Sandbox,
}

/// Why a command could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Not a loadable component (see [`LoadError`]).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A component that is not a command.
    #[error(
        "it does not export `wasi:cli/run` (of WASI 0.2 or 0.3), so it is not a command \
         (build a binary crate for `wasm32-wasip2`; `mayfly serve` runs HTTP components)"
    )]
    NotACommand,
}

/// One run: how it ended, and how long its steps took.
#[derive(Debug)]
pub struct Ran {
    /// How it ended.
    pub ended: Ended,
    /// From the call to an instance ready to run.
    pub instantiated: Duration,
    /// From the instance ready to the end of the run.
    pub ran: Duration,
    /// Dropping the store (the instance's teardown).
    pub torn_down: Duration,
}

impl Command {
    /// Loads the command in `bytes` on `runtime`, to run in `sandbox`.
    pub fn load(runtime: &Runtime, bytes: &[u8], sandbox: Sandbox) -> Result<Self, CommandError> {
        let (component, _) = runtime.compile(bytes)?;
        // A 0.3 command may also export the 0.2 `run` its standard library
        // brings along: the 0.3 one is the command.
        let world = if runtime.exports(&component, "wasi:cli/run@0.3") {
            CommandWorld::Cli03
        } else if runtime.exports(&component, "wasi:cli/run@0.2") {
            CommandWorld::Cli02
        } else {
            return Err(CommandError::NotACommand);
        };
        let pre = runtime.instantiate_pre(&component)?;
        Ok(Self {
            pre,
            world,
            sandbox,
        })
    }

    /// Which `wasi:cli/run` it exports.
    pub fn world(&self) -> CommandWorld {
        self.world
    }

    /// Its sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Runs the command once, in a fresh instance, for `call` (until its
    /// deadline), with `stdio` and `args`. Fails only if the store cannot
    /// be made (a granted directory that cannot be opened).
    pub async fn run(
        &self,
        call: CallChain,
        stdio: &Stdio,
        args: &[String],
    ) -> std::io::Result<Ran> {
        let started = Instant::now();
        let deadline = call.deadline;
        let mut store = self.sandbox.store(call, stdio, args)?;
        let mut instantiated = None;
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instantiated = Some(started.elapsed());
            match self.world {
                CommandWorld::Cli02 => {
                    let command = wasmtime_wasi::p2::bindings::Command::new(&mut store, &instance)?;
                    command.wasi_cli_run().call_run(&mut store).await
                }
                CommandWorld::Cli03 => {
                    let command = wasmtime_wasi::p3::bindings::Command::new(&mut store, &instance)?;
                    store
                        .run_concurrent(async move |accessor| {
                            command.wasi_cli_run().call_run(accessor).await
                        })
                        .await?
                }
            }
        };
        let ended = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(Ok(()))) => Ended::Finished,
            // `run` returned its error: the command's own failure.
            Ok(Ok(Err(()))) => Ended::Exited(1),
            Ok(Err(err)) => Ended::failed(err, self.sandbox.limits(), Some(store.data().limiter())),
            Err(_elapsed) => Ended::Deadline,
        };
        let instantiated = instantiated.unwrap_or_else(|| started.elapsed());
        let ran = started.elapsed().saturating_sub(instantiated);
        let dropping = Instant::now();
        drop(store);
        Ok(Ran {
            ended,
            instantiated,
            ran,
            torn_down: dropping.elapsed(),
        })
    }
}
