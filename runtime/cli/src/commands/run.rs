//! `mayfly run`: run a `wasi:cli` command component once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use mayfly_host_api::outbound::HostPattern;
use mayfly_sandbox::grants::{self, FileGrant, FilesMode, Grants};
use mayfly_sandbox::output::GuestLog;
use mayfly_sandbox::units::{format_size, parse_duration, parse_size};
use mayfly_sandbox::{
    CallChain, Command, Ended, EngineSettings, LimitKind, Output, Runtime, Sandbox, Stdio,
    StoreLimits,
};

use super::shared::CacheArgs;

/// Exit status when the command runs past its deadline (as `timeout(1)`).
const EXIT_DEADLINE: u8 = 124;
/// Exit status when the command traps (as a process killed by SIGABRT).
const EXIT_TRAP: u8 = 134;

/// Run a `wasi:cli` command component once, in a fresh instance
///
/// The command gets only what the flags grant: no directories, no
/// environment variables and no network unless given. Its stdout and
/// stderr are this terminal's (or, with --log-output, mayfly's log); its
/// stdin is empty unless --stdin is given. Its exit status becomes
/// mayfly's; a deadline exceeded exits 124, a trap 134.
#[derive(Args)]
pub struct Run {
    /// The command component (`wasm32-wasip2` binary)
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,

    /// Arguments for the command, after `--`
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,

    /// Grant host directory HOST as GUEST, read-only, or read-write with
    /// `:rw` (repeatable)
    #[arg(long = "dir", value_name = "HOST::GUEST[:rw]")]
    dirs: Vec<String>,

    /// Grant environment variable NAME with VALUE (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE")]
    envs: Vec<String>,

    /// Allow outbound HTTP to PATTERN, as `https://api.example.com` or
    /// `http://*.internal:8080` (repeatable)
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_hosts: Vec<String>,

    /// Let allowed hosts reach loopback, private and link-local addresses
    /// (otherwise only a pattern naming the address does: an IP literal or
    /// `localhost`)
    #[arg(long)]
    allow_private_networks: bool,

    /// Let the command read this process's stdin (without it, stdin is
    /// empty)
    #[arg(long, alias = "stdio")]
    stdin: bool,

    /// Send the command's stdout and stderr to mayfly's log, capped at 16
    /// KiB, each line tagged and escaped, instead of to this terminal
    #[arg(long)]
    log_output: bool,

    /// Wall-clock budget of the run, as `500ms`, `30s` or `2m`
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,

    /// Largest linear memory, as `64MiB`
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    memory: u64,

    /// Fuel budget (roughly, WebAssembly instructions) [default: unmetered]
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,

    #[command(flatten)]
    cache: CacheArgs,
}

impl Run {
    pub fn execute(self) -> Result<ExitCode> {
        let grants = self.grants()?;
        let name: Arc<str> = Arc::from(mayfly_serve::manifest::component_name_from_file(
            &self.component,
        ));
        let limits = StoreLimits {
            timeout: self.timeout,
            max_memory_bytes: usize::try_from(self.memory).unwrap_or(usize::MAX),
            fuel: self.fuel,
            ..StoreLimits::default()
        };
        let path = &self.component;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        // A 0.3 command needs an engine with component-model async.
        let settings = EngineSettings {
            max_instances: 4,
            consume_fuel: self.fuel.is_some(),
            wasi_03: mayfly_sandbox::binary::exports_wasi_03(&bytes),
            ..EngineSettings::default()
        };
        let runtime = Runtime::new(settings, self.cache.cache()?)?;
        let sandbox = Sandbox::new(runtime.engine(), name.clone(), grants, limits, None)?;
        let command = Command::load(&runtime, &bytes, sandbox)
            .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;

        let log = GuestLog::default();
        let stdio = Stdio {
            output: if self.log_output {
                Output::Captured(log.clone())
            } else {
                Output::Inherited
            },
            stdin: self.stdin,
        };
        let mut args = vec![self.component.display().to_string()];
        args.extend(self.args.iter().cloned());
        let Some(deadline) = Instant::now().checked_add(limits.timeout) else {
            bail!(
                "--timeout {}: too long to be a deadline",
                mayfly_sandbox::units::format_duration(limits.timeout)
            );
        };
        let call = CallChain::new(Arc::from("1"), deadline);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let ran = runtime
            .block_on(command.run(call, &stdio, &args))
            .context("cannot open a granted directory")?;
        log.flush(&name, "1");
        exit_status(&name, &ran.ended, limits.timeout)
    }

    fn grants(&self) -> Result<Grants> {
        let mut granted = Grants::default();
        for dir in &self.dirs {
            let Some((host, guest)) = dir.split_once("::") else {
                bail!("--dir {dir}: write it as HOST::GUEST or HOST::GUEST:rw");
            };
            // Read-only unless asked for, as in a manifest (`:ro` is taken
            // too, for the same thing said out loud).
            let (guest, mode) = match guest.strip_suffix(":rw") {
                Some(guest) => (guest, FilesMode::ReadWrite),
                None => (
                    guest.strip_suffix(":ro").unwrap_or(guest),
                    FilesMode::ReadOnly,
                ),
            };
            let grant = FileGrant::new(PathBuf::from(host), guest.to_string(), mode)
                .map_err(|err| anyhow::anyhow!("--dir {dir}: {err}"))?;
            granted
                .add_dir(grant)
                .map_err(|err| anyhow::anyhow!("--dir {dir}: {err}"))?;
        }
        for pair in &self.envs {
            let Some((name, value)) = pair.split_once('=') else {
                bail!("--env {pair}: write it as NAME=VALUE");
            };
            // The variable's name, never its value, in errors.
            granted.env.push(
                grants::env_var(name, value)
                    .map_err(|err| anyhow::anyhow!("--env {name}=...: {err}"))?,
            );
        }
        let outbound = self
            .allow_hosts
            .iter()
            .map(|pattern| {
                HostPattern::parse(pattern).map_err(|err| anyhow::anyhow!("--allow-host {err}"))
            })
            .collect::<Result<Vec<_>>>()?;
        granted.outbound = outbound.into();
        granted.private_networks = self.allow_private_networks;
        Ok(granted)
    }
}

/// Mayfly's exit status for a command that ended as `ended` (with its
/// message on stderr): the command's own status, 124 past its deadline of
/// `timeout`, 134 for a trap or a refusal of memory (whether it grew past
/// its cap or asked for too much before it started); an error if the host
/// could not run it.
fn exit_status(name: &str, ended: &Ended, timeout: Duration) -> Result<ExitCode> {
    Ok(match ended {
        Ended::Finished => ExitCode::SUCCESS,
        Ended::Exited(code) => ExitCode::from(u8::try_from(*code).unwrap_or(1)),
        Ended::Deadline
        | Ended::Limit {
            kind: LimitKind::Deadline,
            ..
        } => {
            eprintln!("mayfly: `{name}` exceeded its deadline of {timeout:?}");
            ExitCode::from(EXIT_DEADLINE)
        }
        Ended::Limit {
            kind: LimitKind::Memory,
            limit,
            failure,
        } => {
            eprintln!(
                "mayfly: `{name}` reached its memory limit of {}: {}",
                format_size(*limit),
                failure.describe()
            );
            ExitCode::from(EXIT_TRAP)
        }
        Ended::Limit { failure, .. } | Ended::Failed(failure) if failure.trap().is_some() => {
            eprintln!("mayfly: `{name}` trapped: {}", failure.describe());
            ExitCode::from(EXIT_TRAP)
        }
        Ended::Limit { failure, .. } | Ended::Failed(failure) => {
            bail!("`{name}` could not run: {}", failure.describe())
        }
        Ended::PoolFull => bail!("`{name}` could not run: no instance slot is free"),
    })
}
