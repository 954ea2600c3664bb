//! # mayfly-templates
//!
//! The templates of `mayfly new`, built into the binary. Each is a complete
//! app in a directory of its own: the source, an `app.toml` whose
//! components say how they are built (`[component.NAME.build]`), a short
//! README and a `.gitignore`; the Python and JavaScript ones pin their
//! tools (`requirements.txt`, `package.json`), which `mayfly build` installs
//! into the app's own directory.
//!
//! A template is the files under `files/TEMPLATE/` in this crate, and, for
//! those built from Mayfly's WIT, a copy of that WIT as `wit/`. In every
//! file, `{{name}}` becomes the app's name and `{{crate}}` the name as a
//! Rust crate's library is named (`-` as `_`); a top-level `gitignore` is
//! written as `.gitignore`.

#![deny(missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use include_dir::{Dir, File, include_dir};
use thiserror::Error;

/// One template.
pub struct Template {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it makes, in a line.
    pub summary: &'static str,
    files: &'static Dir<'static>,
    /// Mayfly's WIT the app is built for, written as `wit/`.
    wit: Option<&'static Dir<'static>>,
}

static HTTP_RUST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/files/http-rust");
static HTTP_RUST_P3: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/files/http-rust-p3");
static HTTP_PYTHON: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/files/http-python");
static HTTP_JS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/files/http-js");
static PLUGIN_RUST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/files/plugin-rust");
static WIT_SERVICE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../wit/service");
static WIT_SERVICE_P3: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../wit/service-p3");

/// Every template, in the order `mayfly new --list` shows them.
pub static TEMPLATES: [Template; 5] = [
    Template {
        name: "http-rust",
        summary: "an HTTP function in Rust (wasi:http/proxy, WASI 0.2)",
        files: &HTTP_RUST,
        wit: None,
    },
    Template {
        name: "http-rust-p3",
        summary: "an HTTP function in Rust on WASI 0.3 (async handler, streamed bodies)",
        files: &HTTP_RUST_P3,
        wit: Some(&WIT_SERVICE_P3),
    },
    Template {
        name: "http-python",
        summary: "an HTTP function in Python (componentize-py, installed into .venv)",
        files: &HTTP_PYTHON,
        wit: Some(&WIT_SERVICE),
    },
    Template {
        name: "http-js",
        summary: "an HTTP function in JavaScript (ComponentizeJS, installed into node_modules)",
        files: &HTTP_JS,
        wit: Some(&WIT_SERVICE),
    },
    Template {
        name: "plugin-rust",
        summary: "a plugin of a host's own WIT world in Rust, with the host that runs it",
        files: &PLUGIN_RUST,
        wit: None,
    },
];

/// Why `mayfly new` made nothing.
#[derive(Debug, Error)]
pub enum NewError {
    /// No template has that name.
    #[error("no template named `{name}`; the templates are: {}", names())]
    UnknownTemplate {
        /// The name asked for.
        name: String,
    },
    /// The name cannot name a component, a crate and a package.
    #[error(
        "`{name}` is not a valid app name: {reason} (pass another with --name, or choose \
         another directory)"
    )]
    BadName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The directory holds something already.
    #[error("{} is not empty: `mayfly new` writes into a new or empty directory", dir.display())]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
}

fn names() -> String {
    TEMPLATES
        .iter()
        .map(|template| template.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The template called `name`.
pub fn find(name: &str) -> Result<&'static Template, NewError> {
    TEMPLATES
        .iter()
        .find(|template| template.name == name)
        .ok_or_else(|| NewError::UnknownTemplate { name: name.into() })
}

/// Names Rust refuses for a crate of its own.
const RESERVED: [&str; 6] = ["alloc", "core", "proc-macro", "std", "test", "self"];

/// Checks that `name` can be an app's, a component's, a crate's and a
/// package's name: 1 to 63 lowercase ASCII letters, digits and `-`,
/// starting with a letter, not ending with `-`.
pub fn check_name(name: &str) -> Result<(), NewError> {
    let bad = |reason| NewError::BadName {
        name: name.into(),
        reason,
    };
    if name.is_empty() || name.len() > 63 {
        return Err(bad("a name is 1 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("use lowercase letters, digits and `-` only"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.ends_with('-') {
        return Err(bad("start with a letter, and do not end with `-`"));
    }
    if RESERVED.contains(&name) {
        return Err(bad("Rust keeps this name for its own crates"));
    }
    Ok(())
}

impl Template {
    /// Writes the app `name` into `dir` (created if missing; refused if it
    /// holds anything). Returns the files written, relative to `dir`.
    pub fn create(&self, dir: &Path, name: &str) -> Result<Vec<PathBuf>, NewError> {
        check_name(name)?;
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |reason| NewError::Write { path, reason }
        };
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(NewError::NotEmpty { dir: dir.into() });
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(write_error(dir))?;
            }
            Err(reason) => return Err(write_error(dir)(reason)),
        }
        let crate_name = name.replace('-', "_");
        let mut written = Vec::new();
        let mut files = Vec::new();
        all_files(self.files, &mut files);
        for file in files {
            let relative = match file.path() {
                path if path == Path::new("gitignore") => PathBuf::from(".gitignore"),
                path => path.to_path_buf(),
            };
            let contents = match file.contents_utf8() {
                Some(text) => text
                    .replace("{{name}}", name)
                    .replace("{{crate}}", &crate_name)
                    .into_bytes(),
                None => file.contents().to_vec(),
            };
            write_new(&dir.join(&relative), &contents)
                .map_err(write_error(&dir.join(&relative)))?;
            written.push(relative);
        }
        if let Some(wit) = self.wit {
            let mut files = Vec::new();
            all_files(wit, &mut files);
            for file in files {
                let relative = Path::new("wit").join(file.path());
                write_new(&dir.join(&relative), file.contents())
                    .map_err(write_error(&dir.join(&relative)))?;
                written.push(relative);
            }
        }
        written.sort();
        Ok(written)
    }
}

/// Every file under `dir`, at any depth.
fn all_files<'a>(dir: &'a Dir<'a>, into: &mut Vec<&'a File<'a>>) {
    into.extend(dir.files());
    for sub in dir.dirs() {
        all_files(sub, into);
    }
}

/// Writes a file that must not exist yet (a symbolic link planted in its
/// place is not followed), creating its directory.
fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_name_a_crate_a_component_and_a_package_are_refused() {
        for (name, reason) in [
            ("", "a name is 1 to 63 characters long"),
            ("My-App", "use lowercase letters, digits and `-` only"),
            ("my_app", "use lowercase letters, digits and `-` only"),
            ("9lives", "start with a letter, and do not end with `-`"),
            ("app-", "start with a letter, and do not end with `-`"),
            ("test", "Rust keeps this name for its own crates"),
        ] {
            let err = check_name(name).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "`{name}` is not a valid app name: {reason} (pass another with --name, or \
                     choose another directory)"
                )
            );
        }
        check_name("hello-2").unwrap();
    }

    #[test]
    fn every_template_writes_a_manifest_with_a_build_a_readme_and_a_gitignore() {
        for template in &TEMPLATES {
            let dir = tempfile::tempdir().unwrap();
            let app = dir.path().join("app");
            let files = template.create(&app, "my-app").unwrap();
            for needed in ["app.toml", "README.md", ".gitignore"] {
                assert!(
                    files.iter().any(|file| file == Path::new(needed)),
                    "{}: {needed} missing from {files:?}",
                    template.name
                );
            }
            let manifest = std::fs::read_to_string(app.join("app.toml")).unwrap();
            assert!(
                manifest.contains("[component.my-app.build]"),
                "{}: {manifest}",
                template.name
            );
            let all: String = files
                .iter()
                .filter_map(|file| std::fs::read_to_string(app.join(file)).ok())
                .collect();
            assert!(
                !all.contains("{{"),
                "{}: a placeholder is left",
                template.name
            );
        }
    }

    #[test]
    fn a_directory_that_holds_anything_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = find("http-rust")
            .unwrap()
            .create(dir.path(), "app")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not empty: `mayfly new` writes into a new or empty directory",
                dir.path().display()
            )
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            find("http-go").err().unwrap().to_string(),
            "no template named `http-go`; the templates are: http-rust, http-rust-p3, \
             http-python, http-js, plugin-rust"
        );
    }

    #[test]
    fn the_python_and_javascript_templates_pin_the_tools_mayfly_build_names() {
        let pins = [
            (
                &HTTP_PYTHON,
                "requirements.txt",
                format!("componentize-py=={}", mayfly_build::tools::COMPONENTIZE_PY),
            ),
            (
                &HTTP_JS,
                "package.json",
                format!(
                    "\"@bytecodealliance/componentize-js\": \"{}\"",
                    mayfly_build::tools::COMPONENTIZE_JS
                ),
            ),
        ];
        for (dir, file, pin) in pins {
            let text = dir.get_file(file).unwrap().contents_utf8().unwrap();
            assert!(text.contains(&pin), "{file} lacks {pin}");
        }
    }
}
