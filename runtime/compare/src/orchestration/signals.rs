//! How a comparison stops: on SIGINT or SIGTERM it undoes everything it
//! made (through [`crate::cleanup`]) and exits 130 or 143; when it ends by
//! itself, however it ends, it undoes whatever is left.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

use crate::cleanup;

/// Set once a signal is stopping the command.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// On SIGINT or SIGTERM, kills, deletes and removes everything the runners
/// made, then exits 130 or 143 (128 + the signal's number).
pub(super) fn stop_on_signals() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // The handlers are in place once these exist, before anything starts.
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        anyhow::Ok((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("compare-signals".into())
        .spawn(move || {
            let (name, code) = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => ("SIGINT", 130),
                    _ = terminate.recv() => ("SIGTERM", 143),
                }
            });
            STOPPING.store(true, Ordering::SeqCst);
            eprintln!("\ncompare: stopped by {name}; cleaning up");
            let cleaned = cleanup::clean_up_everything();
            eprintln!(
                "compare: killed {} processes, deleted {} containers, stopped {} containerds, \
                 removed {} cgroups and {} directories",
                cleaned.processes,
                cleaned.containers,
                cleaned.containerds,
                cleaned.cgroups,
                cleaned.dirs
            );
            std::process::exit(code);
        })
        .context("cannot watch for signals")?;
    Ok(())
}

/// Undoes whatever the runners left behind when the command ends, however
/// it ends (an error or a panic included). While a signal stops the
/// command, it leaves the exit to that.
pub(super) struct CleanUpAtEnd;

impl Drop for CleanUpAtEnd {
    fn drop(&mut self) {
        // Waits for a cleaning up that a signal began.
        cleanup::clean_up_everything();
        if STOPPING.load(Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
    }
}
