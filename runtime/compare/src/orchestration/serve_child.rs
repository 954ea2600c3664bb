//! `mayfly serve` as a child process, for the HTTP variant's Wasm mode:
//! started on a free loopback port, its address read from the banner it
//! prints, stopped when it is no longer needed.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::child::die_with_parent;
use crate::cleanup::{self, Registered};

/// How long `mayfly serve` may take to print where it serves (it compiles
/// the component first, with no cache).
const START_LIMIT: Duration = Duration::from_secs(120);

/// `mayfly serve` with the HTTP workload, as its own process, as it would
/// be deployed; stopped (SIGTERM) on drop, killed if this process is
/// stopped or killed.
pub(super) struct ServeChild {
    child: Child,
    /// Where it serves.
    pub(super) addr: SocketAddr,
    registered: Option<Registered>,
}

impl ServeChild {
    /// Runs `mayfly serve component` with the executable `mayfly` and
    /// `workers` worker threads, and waits until it says where it serves.
    pub(super) fn start(mayfly: &Path, component: &Path, workers: usize) -> anyhow::Result<Self> {
        let making = cleanup::making()?;
        let mut command = Command::new(mayfly);
        die_with_parent(&mut command);
        let mut child = command
            .arg("serve")
            .arg(component)
            .args(["--listen", "127.0.0.1:0", "--no-cache", "--workers"])
            .arg(workers.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start `mayfly serve`")?;
        let registered = making.process(child.id());
        drop(making);
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads to the end, so that `mayfly serve` never blocks on a full
        // pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = serving_on(&line) {
                    let _ = tx.send(addr);
                }
            }
        });
        let mut serve = Self {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
            registered: Some(registered),
        };
        serve.addr = rx
            .recv_timeout(START_LIMIT)
            .context("`mayfly serve` did not start serving the HTTP workload")?;
        Ok(serve)
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        // Forgotten before it is reaped, and its pid freed.
        if let Some(registered) = self.registered.take() {
            registered.forget();
        }
        let _ = self.child.wait();
    }
}

/// The address in `mayfly serve`'s banner, ``Serving app `NAME` on
/// http://ADDR``, if `line` is that banner.
fn serving_on(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("Serving app")?
        .split_once(" on http://")?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::serving_on;

    #[test]
    fn the_address_is_read_from_the_banner_alone() {
        assert_eq!(
            serving_on("Serving app `workload-http` on http://127.0.0.1:40123"),
            Some(([127, 0, 0, 1], 40123).into())
        );
        assert_eq!(serving_on("  GET /... -> workload"), None);
        assert_eq!(serving_on("Serving app `x` on http://nowhere"), None);
    }
}
