//! The command line reads well.

use std::ffi::OsStr;

use crate::harness::run_mayfly;

fn help(args: &[&str]) -> String {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let output = run_mayfly(&args);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn top_level_help_lists_the_subcommands() {
    let text = help(&["--help"]);
    assert!(text.contains("fresh component instance"), "{text}");
    assert!(text.contains("serve    Serve an app over HTTP"), "{text}");
    assert!(
        text.contains("compile  Compile an app's components"),
        "{text}"
    );
}

#[test]
fn serve_help_documents_its_flags_and_defaults() {
    let text = help(&["serve", "--help"]);
    for needle in [
        "[default: 127.0.0.1:3000]",
        "--listen <ADDR>",
        "--workers <N>",
        "--shutdown-grace <SECONDS>",
        "--cache-dir <DIR>",
        "--no-cache",
        "SIGTERM",
        "built-in demo app",
    ] {
        assert!(
            text.contains(needle),
            "serve --help lacks `{needle}`:\n{text}"
        );
    }
}

#[test]
fn compile_help_explains_what_it_is_for() {
    let text = help(&["compile", "--help"]);
    assert!(
        text.contains("starts without\ncompiling") || text.contains("starts without compiling"),
        "{text}"
    );
}
