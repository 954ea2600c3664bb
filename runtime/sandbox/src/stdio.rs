//! Where a guest's standard streams go: captured into a capped log, or
//! this process's own (for a command run from a terminal).

use crate::output::GuestLog;

/// Where a guest's standard streams go.
#[derive(Clone)]
pub struct Stdio {
    /// Where stdout and stderr go.
    pub output: Output,
    /// Whether the guest reads this process's stdin (else it is empty).
    pub stdin: bool,
}

/// Where a guest's stdout and stderr go.
#[derive(Clone)]
pub enum Output {
    /// Into a capped log (see [`GuestLog`]).
    Captured(GuestLog),
    /// This process's stdout and stderr (for a command run from a
    /// terminal).
    Inherited,
}

impl Stdio {
    /// stdout and stderr into `log`, capped; an empty stdin.
    pub fn captured(log: &GuestLog) -> Self {
        Self {
            output: Output::Captured(log.clone()),
            stdin: false,
        }
    }
}
