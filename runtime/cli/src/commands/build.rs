//! `mayfly build`: build an app's components from source.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;
use mayfly_serve::manifest::AppSpec;

/// Build the app's components from source, as their
/// `[component.NAME.build]` tables say
///
/// Each component's command runs in its `workdir` (by default, the
/// manifest's directory), one after the other, with its output streamed,
/// each line behind the component's name. The tools a component's
/// directory pins are set up there on first use: a `requirements.txt` gets
/// a Python virtual environment in `.venv`, a `package.json` gets
/// `node_modules`; nothing is installed globally. The first failure stops
/// the build, naming the component, the command and its exit code, and,
/// for a missing tool, the command that installs it.
#[derive(Args)]
pub struct Build {
    /// The app's manifest
    #[arg(value_name = "APP", default_value = "app.toml")]
    app: PathBuf,
}

impl Build {
    pub fn execute(self) -> Result<()> {
        build(&self.app)
    }
}

/// Builds every component of the manifest at `app` that says how; an
/// error if none does, or if one fails.
pub(super) fn build(app: &Path) -> Result<()> {
    let steps = AppSpec::build_steps_of(app).context("cannot build the app")?;
    if steps.is_empty() {
        anyhow::bail!(
            "nothing to build: no component of {} has a `[component.NAME.build]` table",
            app.display()
        );
    }
    mayfly_build::build_all(&steps)?;
    Ok(())
}

/// Whether every component of the manifest at `app` that is built has
/// its file already (from an earlier build).
pub(super) fn all_built(app: &Path) -> bool {
    AppSpec::build_steps_of(app).is_ok_and(|steps| steps.iter().all(|step| step.output.is_file()))
}
