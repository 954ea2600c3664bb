//! `mayfly new`: a new app from a template built into the binary.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;
use mayfly_templates::{TEMPLATES, check_name, find};

/// Create a new app from a template: its source, an `app.toml` that says
/// how to build it, a README and a .gitignore
///
/// The directory must be new or empty. The app's name is the directory's
/// unless --name gives another; it names the component, the crate or
/// package, and the app's state. `mayfly new --list` shows the templates.
#[derive(Args)]
pub struct New {
    /// The template (see --list)
    #[arg(value_name = "TEMPLATE", required_unless_present = "list")]
    template: Option<String>,

    /// Where to write the app
    #[arg(value_name = "DIR", required_unless_present = "list")]
    dir: Option<PathBuf>,

    /// The app's name [default: the directory's name]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// List the templates, one line each
    #[arg(long, conflicts_with_all = ["template", "dir", "name"])]
    list: bool,
}

impl New {
    pub fn execute(self) -> Result<()> {
        let (Some(template), Some(dir)) = (self.template, self.dir) else {
            let width = TEMPLATES.iter().map(|t| t.name.len()).max().unwrap_or(0);
            for template in &TEMPLATES {
                println!("{:width$}  {}", template.name, template.summary);
            }
            return Ok(());
        };
        let template = find(&template)?;
        let name = match self.name {
            Some(name) => name,
            None => name_of(&dir)?,
        };
        check_name(&name)?;
        let files = template
            .create(&dir, &name)
            .with_context(|| format!("cannot create app `{name}` in {}", dir.display()))?;
        println!(
            "Created app `{name}` from template `{}` in {}:",
            template.name,
            dir.display()
        );
        // The WIT the app carries is one line, not a page.
        let wit = files.iter().filter(|f| f.starts_with("wit")).count();
        for file in files.iter().filter(|f| !f.starts_with("wit")) {
            println!("  {}", file.display());
        }
        if wit > 0 {
            println!("  wit/ ({wit} files: the world it is built for)");
        }
        let cd = shell_word(&dir);
        if template.name.starts_with("plugin") {
            println!("\nNext: cd {cd} && mayfly build, then see README.md to run its host");
        } else {
            println!("\nNext: cd {cd} && mayfly dev");
        }
        Ok(())
    }
}

/// The app's name from its directory: the last component of the path.
fn name_of(dir: &Path) -> Result<String> {
    let absolute =
        std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    absolute
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no name to give the app: pass --name", dir.display()))
}

/// `dir` as one shell word, quoted if it needs to be.
fn shell_word(dir: &Path) -> String {
    let text = dir.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
