//! Running builds: one component's, and an app's, one after the other.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::BuildError;
use crate::{BuildStep, stream, tools};

/// Builds one component: sets up the tools its directory pins, then runs
/// its command with `sh -c` in its `workdir`, every line of output behind
/// `[NAME]` on stderr. How long it took, or why it failed.
pub fn build(step: &BuildStep) -> Result<Duration, BuildError> {
    let started = Instant::now();
    let path = tools::prepare(step)?;
    stream::say(&step.component, &format!("$ {}", step.command));
    let ran = stream::run(
        &step.component,
        Command::new("sh")
            .arg("-c")
            .arg(&step.command)
            .current_dir(&step.workdir)
            .env("PATH", path),
    )
    .map_err(|reason| BuildError::Start {
        component: step.component.clone(),
        command: step.command.clone(),
        workdir: step.workdir.clone(),
        hint: (!step.workdir.is_dir()).then(|| "the build's `workdir` does not exist".into()),
        reason,
    })?;
    if !ran.status.success() {
        return Err(BuildError::Failed {
            component: step.component.clone(),
            what: "build command",
            command: step.command.clone(),
            status: ran.status,
            hint: tools::hint_from_output(&ran.tail),
        });
    }
    if !step.output.is_file() {
        return Err(BuildError::NoOutput {
            component: step.component.clone(),
            command: step.command.clone(),
            output: step.output.clone(),
        });
    }
    let took = started.elapsed();
    stream::say(&step.component, &format!("built in {}", seconds(took)));
    Ok(took)
}

/// Builds every step in order, stopping at the first failure. Prints which
/// component is being built (`1 of 3`) and, at the end, the total time.
pub fn build_all(steps: &[BuildStep]) -> Result<Duration, BuildError> {
    let started = Instant::now();
    for (i, step) in steps.iter().enumerate() {
        stream::say(
            &step.component,
            &format!("building ({} of {})", i + 1, steps.len()),
        );
        build(step)?;
    }
    let took = started.elapsed();
    let count = match steps.len() {
        1 => "1 component".to_owned(),
        n => format!("{n} components"),
    };
    eprintln!("built {count} in {}", seconds(took));
    Ok(took)
}

/// `3.2s`
fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(dir: &std::path::Path, command: &str) -> BuildStep {
        BuildStep {
            component: "api".into(),
            command: command.into(),
            workdir: dir.to_path_buf(),
            watch: vec![],
            output: dir.join("out.wasm"),
        }
    }

    #[test]
    fn a_failed_command_is_named_with_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let err = build(&step(dir.path(), "echo compiling; exit 3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component `api`: build command `echo compiling; exit 3` failed with exit code 3"
        );
    }

    #[test]
    fn a_build_that_writes_nothing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = build(&step(dir.path(), "true")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "component `api`: build command `true` succeeded but did not write {}",
                dir.path().join("out.wasm").display()
            )
        );
        build(&step(dir.path(), "echo built > out.wasm")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.wasm")).unwrap(),
            "built\n"
        );
    }

    #[test]
    fn a_missing_tool_gets_its_install_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = build(&step(dir.path(), "componentize-js app.js -o out.wasm")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component `api`: build command `componentize-js app.js -o out.wasm` failed with \
             exit code 127\n  hint: `npm install --save-exact --save-dev \
             @bytecodealliance/componentize-js@0.23.0`"
        );
    }
}
