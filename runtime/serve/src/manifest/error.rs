//! What can be wrong with a manifest: always the file, and where there is
//! one, the field.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// A problem with a manifest, naming the file and the field.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The manifest could not be read.
    #[error("cannot read manifest {path}: {reason}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// The manifest is not valid TOML, or has unknown or mistyped fields.
    /// The text of the line is never shown: it may hold a secret.
    #[error("invalid manifest {}", parse_message(path, *position, field.as_deref(), message))]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// Where, as line and column (from 1), if the parser said.
        position: Option<(usize, usize)>,
        /// The field, as `component.NAME.env.KEY`, if the parser said.
        field: Option<String>,
        /// The parser's explanation, without the text of the line.
        message: String,
    },
    /// A field has a value that is not allowed.
    #[error("invalid manifest {path}: field `{field}`: {message}")]
    Field {
        /// The manifest.
        path: PathBuf,
        /// The field, as `component.NAME.source` or `route[2].path`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ManifestError {
    /// The error for `err`, from parsing `text`, the manifest at `path`.
    ///
    /// toml's own message quotes the offending line under a caret, and a
    /// line may hold a secret (an `env` or config value), so only where it
    /// is, the field, and what is wrong are kept.
    pub(super) fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        Self::Parse {
            path: path.to_path_buf(),
            position: err.span().map(|span| line_column(text, span.start)),
            field: field_of(err),
            message: err.message().trim_end().to_string(),
        }
    }
}

/// A TOML error in the file at `path`, whose text is `text`, without the
/// line toml would quote: `path:line:column: field `a.b`: message`. For
/// every TOML file Mayfly reads that may hold a secret.
pub fn toml_error(path: &Path, text: &str, err: &toml::de::Error) -> String {
    parse_message(
        path,
        err.span().map(|span| line_column(text, span.start)),
        field_of(err).as_deref(),
        err.message().trim_end(),
    )
}

/// What follows `invalid manifest `: the path, the line and column and the
/// field as far as they are known, and the message.
fn parse_message(
    path: &Path,
    position: Option<(usize, usize)>,
    field: Option<&str>,
    message: &str,
) -> String {
    let mut shown = path.display().to_string();
    if let Some((line, column)) = position {
        shown += &format!(":{line}:{column}");
    }
    if let Some(field) = field {
        shown += &format!(": field `{field}`");
    }
    format!("{shown}: {message}")
}

/// The line and column (from 1, in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// The dotted path of the field `err` is about, as toml records it.
///
/// toml keeps the keys private and shows them, as ``in `a.b` ``, only in
/// the form of the error that has no input (and so quotes no line).
fn field_of(err: &toml::de::Error) -> Option<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let keys = shown
        .strip_prefix(err.message())?
        .trim_end()
        .strip_prefix("\nin `")?
        .strip_suffix('`')?;
    (!keys.is_empty()).then(|| keys.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::file::ManifestFile;
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nb = \"\u{e9}x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // After a two-byte character: one column, not two.
        let x = text.find('x').unwrap();
        assert_eq!(line_column(text, x), (2, 7));
        assert_eq!(line_column(text, text.len() + 10), (3, 1));
    }

    fn error_for(text: &str) -> (String, String) {
        let err = toml::from_str::<ManifestFile>(text).unwrap_err();
        let shown = ManifestError::from_toml(Path::new("app.toml"), text, &err).to_string();
        (err.to_string(), shown)
    }

    /// An error names the file, line, column and field, and never shows
    /// the line, as toml's own message does.
    #[test]
    fn a_toml_error_says_where_and_which_field_but_not_the_line() {
        let (toml, shown) =
            error_for("[component.x]\nsource = \"x.wasm\"\nlimits = { fuel = true }\n");
        assert!(toml.contains("limits = { fuel = true }"), "{toml}");
        assert_eq!(
            shown,
            "invalid manifest app.toml:3:19: field `component.x.limits.fuel`: \
             invalid type: boolean `true`, expected u64"
        );

        let (toml, shown) = error_for("[component.x]\nsource = \"x.wasm\"\nsorce = 1\n");
        assert!(toml.contains("sorce = 1"), "{toml}");
        assert!(
            shown.starts_with(
                "invalid manifest app.toml:3:1: field `component.x`: unknown field `sorce`"
            ),
            "{shown}"
        );
    }

    /// A value in an `env` table may be a secret: whatever is wrong with
    /// it, neither the line nor the value is shown.
    #[test]
    fn a_malformed_env_value_is_never_shown() {
        let cases = [
            (
                "env = { TOKEN = \"hunter2-SECRET\\q\" }",
                "app.toml:3:33: missing escaped value",
            ),
            // Unterminated, at the end of the file.
            (
                "env = { TOKEN = \"hunter2-SECRET",
                "app.toml:3:32: unclosed inline table",
            ),
            (
                "env = { TOKEN = 31337424242 }",
                "app.toml:3:17: field `component.x.env.TOKEN`: expected a string, \
                 found an integer",
            ),
            (
                "env = { TOKEN = 3133.7424242 }",
                "field `component.x.env.TOKEN`: expected a string, found a float",
            ),
            (
                "env = { TOKEN = [\"hunter2-SECRET\"] }",
                "field `component.x.env.TOKEN`: expected a string, found an array",
            ),
            (
                "env = { TOKEN = { secret = \"hunter2-SECRET\" } }",
                "field `component.x.env.TOKEN`: expected a string, found a table",
            ),
            (
                "env = { TOKEN = hunter2-SECRET }",
                "app.toml:3:17: string values must be quoted",
            ),
            (
                "[component.x.env]\nTOKEN = 31337424242",
                "app.toml:4:9: field `component.x.env.TOKEN`: expected a string, found an integer",
            ),
        ];
        for (env, expected) in cases {
            let text = format!("[component.x]\nsource = \"x.wasm\"\n{env}\n");
            let (_, shown) = error_for(&text);
            assert!(shown.starts_with("invalid manifest "), "{shown}");
            assert!(
                shown.contains(expected),
                "expected `{expected}` in: {shown}"
            );
            for secret in ["hunter2", "31337424242", "3133.7424242"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }
}
