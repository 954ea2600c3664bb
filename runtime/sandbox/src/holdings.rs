//! What one instance holds on the host (its granted directories' and open
//! files' descriptors, its header memory), and the budget it is charged
//! to. Made with each store's host state; the `metered` imports charge it.

use std::sync::Arc;

use mayfly_host_api::budget::{Exhausted, FdTicket, InstanceBudget};
use mayfly_host_api::report::Reporter;

/// What one instance holds on the host, with what it is charged to.
pub(crate) struct Holdings {
    budget: Arc<InstanceBudget>,
    /// The descriptors of its preopened directories, for the store's life.
    _preopens: Vec<FdTicket>,
    pub(crate) reporter: Reporter,
}

impl Holdings {
    /// An instance's holdings under `budget`, with `preopens` directories
    /// open already (each holds a descriptor). Fails if the budget has no
    /// room for them.
    pub(crate) fn new(
        budget: Arc<InstanceBudget>,
        preopens: usize,
        reporter: Reporter,
    ) -> Result<Self, Exhausted> {
        let preopens = (0..preopens)
            .map(|_| budget.descriptor())
            .collect::<Result<_, _>>()?;
        Ok(Self {
            budget,
            _preopens: preopens,
            reporter,
        })
    }

    /// The instance's budget.
    pub(crate) fn budget(&self) -> &Arc<InstanceBudget> {
        &self.budget
    }

    /// A ticket for one more open file, or `None` (reported) if there is
    /// no room.
    pub(crate) fn file_ticket(&self) -> Option<FdTicket> {
        match self.budget.descriptor() {
            Ok(ticket) => Some(ticket),
            Err(exhausted) => {
                self.reporter.report(&format!("open refused: {exhausted}"));
                None
            }
        }
    }
}
