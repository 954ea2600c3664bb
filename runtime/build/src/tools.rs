//! The tools a component's directory pins, set up there on first use, and
//! the command that installs a tool a build could not find.
//!
//! One rule, by the files in the component's `workdir`:
//!
//! - `requirements.txt`: a Python virtual environment in `.venv`, with the
//!   requirements installed by its own `pip`; `.venv/bin` goes first on
//!   the build command's `PATH`;
//! - `package.json`: `node_modules`, by `npm ci` when there is a
//!   `package-lock.json` and `npm install` otherwise;
//!   `node_modules/.bin` goes first on `PATH`.
//!
//! Either is set up again when its pin file is newer than the last set-up
//! (a stamp file inside the directory), and never outside `workdir`.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use crate::BuildStep;
use crate::error::BuildError;
use crate::stream;

/// The componentize-py release `mayfly new http-python` pins.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The ComponentizeJS release `mayfly new http-js` pins.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// Written into a tools directory once its set-up has succeeded.
const STAMP: &str = ".mayfly-installed";

/// One kind of pinned tools.
struct Toolset {
    /// What it is, in messages.
    what: &'static str,
    /// The files that pin it; the first one must exist.
    pins: &'static [&'static str],
    /// The directory it is installed into.
    dir: &'static str,
    /// Where its programs are, inside `dir`.
    bin: &'static str,
}

const PYTHON: Toolset = Toolset {
    what: "Python set-up",
    pins: &["requirements.txt"],
    dir: ".venv",
    bin: "bin",
};

const NODE: Toolset = Toolset {
    what: "JavaScript set-up",
    pins: &["package.json", "package-lock.json"],
    dir: "node_modules",
    bin: ".bin",
};

/// Sets up the tools `step`'s directory pins, if they are not already, and
/// returns the `PATH` its command runs with.
pub(crate) fn prepare(step: &BuildStep) -> Result<OsString, BuildError> {
    let mut first = Vec::new();
    for toolset in [PYTHON, NODE] {
        let workdir = &step.workdir;
        if !workdir.join(toolset.pins[0]).is_file() {
            continue;
        }
        let dir = workdir.join(toolset.dir);
        if is_stale(&dir.join(STAMP), workdir, toolset.pins) {
            install(step, &toolset)?;
            std::fs::write(dir.join(STAMP), b"").map_err(|reason| BuildError::Start {
                component: step.component.clone(),
                command: format!("(recording the {})", toolset.what),
                workdir: workdir.clone(),
                reason,
                hint: None,
            })?;
        }
        first.push(dir.join(toolset.bin));
    }
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let all = first
        .into_iter()
        .chain(std::env::split_paths(&rest))
        .collect::<Vec<_>>();
    Ok(std::env::join_paths(all).unwrap_or(rest))
}

/// Whether `stamp` is missing or older than one of the `pins` in `workdir`.
fn is_stale(stamp: &Path, workdir: &Path, pins: &[&str]) -> bool {
    let modified = |path: &Path| -> Option<SystemTime> { path.metadata().ok()?.modified().ok() };
    let Some(done) = modified(stamp) else {
        return true;
    };
    pins.iter()
        .filter_map(|pin| modified(&workdir.join(pin)))
        .any(|pin| pin > done)
}

/// Runs the commands that install `toolset` into `step`'s directory.
fn install(step: &BuildStep, toolset: &Toolset) -> Result<(), BuildError> {
    let workdir = &step.workdir;
    let commands: Vec<Vec<&str>> = if toolset.dir == PYTHON.dir {
        vec![
            vec!["python3", "-m", "venv", ".venv"],
            vec![
                ".venv/bin/pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
                "requirements.txt",
            ],
        ]
    } else if workdir.join("package-lock.json").is_file() {
        vec![vec!["npm", "ci", "--no-audit", "--no-fund"]]
    } else {
        vec![vec!["npm", "install", "--no-audit", "--no-fund"]]
    };
    stream::say(
        &step.component,
        &format!(
            "setting up its tools in {}",
            workdir.join(toolset.dir).display()
        ),
    );
    for argv in commands {
        let command = argv.join(" ");
        stream::say(&step.component, &format!("$ {command}"));
        let ran = stream::run(
            &step.component,
            Command::new(argv[0]).args(&argv[1..]).current_dir(workdir),
        )
        .map_err(|reason| BuildError::Start {
            component: step.component.clone(),
            hint: (reason.kind() == std::io::ErrorKind::NotFound)
                .then(|| install_hint(argv[0]))
                .flatten(),
            command: command.clone(),
            workdir: workdir.clone(),
            reason,
        })?;
        if !ran.status.success() {
            return Err(BuildError::Failed {
                component: step.component.clone(),
                what: toolset.what,
                command,
                status: ran.status,
                hint: hint_from_output(&ran.tail),
            });
        }
    }
    Ok(())
}

/// How to install `tool`, if Mayfly knows it.
pub fn install_hint(tool: &str) -> Option<String> {
    let hint = match tool {
        "cargo" | "rustc" | "rustup" => {
            "install Rust (https://rustup.rs), then `rustup target add wasm32-wasip2`".into()
        }
        "componentize-py" => format!(
            "`echo componentize-py=={COMPONENTIZE_PY} >> requirements.txt`: `mayfly build` \
             then installs it into .venv"
        ),
        "componentize-js" | "jco" => format!(
            "`npm install --save-exact --save-dev @bytecodealliance/componentize-js@{COMPONENTIZE_JS}`"
        ),
        "python3" | "python" | "pip" | ".venv/bin/pip" => {
            "install Python 3 with venv (Debian: `apt install python3 python3-venv`)".into()
        }
        "node" | "npm" | "npx" => {
            "install Node.js 20 or newer with npm (Debian: `apt install nodejs npm`)".into()
        }
        _ => return None,
    };
    Some(hint)
}

/// A hint read from a failed command's last lines: the tool the shell did
/// not find, a Rust target that is not installed, a Python without venv.
pub(crate) fn hint_from_output(tail: &[String]) -> Option<String> {
    let text = tail.join("\n");
    if text.contains("wasm32-wasip2")
        && (text.contains("target may not be installed") || text.contains("can't find crate"))
    {
        return Some("`rustup target add wasm32-wasip2`".into());
    }
    if text.contains("ensurepip is not available") {
        return install_hint("python3");
    }
    tail.iter().rev().find_map(|line| {
        let (before, _) = line
            .rsplit_once(": command not found")
            .or_else(|| line.rsplit_once(": not found"))?;
        let tool = before.rsplit(": ").next()?.trim();
        Some(
            install_hint(tool)
                .unwrap_or_else(|| format!("`{tool}` is not installed, or not on PATH")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_tool_the_shell_did_not_find_gets_its_install_command() {
        // dash, then bash.
        let dash = hint_from_output(&lines("sh: 1: componentize-py: not found"));
        assert_eq!(
            dash.as_deref(),
            Some(
                "`echo componentize-py==0.25.1 >> requirements.txt`: `mayfly build` then \
                 installs it into .venv"
            )
        );
        let bash = hint_from_output(&lines("sh: line 1: frobnicate: command not found"));
        assert_eq!(
            bash.as_deref(),
            Some("`frobnicate` is not installed, or not on PATH")
        );
    }

    #[test]
    fn a_missing_rust_target_gets_rustup() {
        let tail = lines(
            "error[E0463]: can't find crate for `core`\n  = note: the `wasm32-wasip2` target \
             may not be installed",
        );
        assert_eq!(
            hint_from_output(&tail).as_deref(),
            Some("`rustup target add wasm32-wasip2`")
        );
        assert_eq!(hint_from_output(&lines("error: expected `;`")), None);
    }
}
