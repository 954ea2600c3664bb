//! Bad input is refused at start-up with a message that names the file, the
//! component and the field, and a non-zero exit.

use std::ffi::OsStr;
use std::path::Path;

use crate::guests;
use crate::harness::{World, for_both_worlds, run_mayfly, write_file};

/// Runs `mayfly serve` on `app` and returns its stderr, asserting it failed.
fn serve_fails(app: &Path) -> String {
    let output = run_mayfly(&[
        OsStr::new("serve"),
        app.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--no-cache"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "mayfly accepted {}:\n{stderr}",
        app.display()
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// Runs `mayfly check` on `app` and returns what it printed, asserting it
/// failed. (Problems with components are part of the report, on stdout.)
fn check_fails(app: &Path) -> String {
    let output = run_mayfly(&[
        OsStr::new("check"),
        app.as_os_str(),
        OsStr::new("--no-cache"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    format!("{stdout}\n{stderr}")
}

/// Every manifest in tests/fixtures/invalid is refused, by `serve` and by
/// `check`, with the text its `# error:` lines give.
#[test]
fn invalid_manifests_are_refused_with_their_expected_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# error: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# error:` line",
            path.display()
        );
        for stderr in [serve_fails(&path), check_fails(&path)] {
            for needle in &expected {
                assert!(
                    stderr.contains(needle),
                    "{}: expected `{needle}` in:\n{stderr}",
                    path.display()
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures found");
}

/// A manifest serving `source` at `/`, written into `dir`.
fn app_with(dir: &Path, source: &Path) -> std::path::PathBuf {
    write_file(
        dir,
        "app.toml",
        format!(
            "[component.bad]\nsource = {:?}\n\n[[route]]\npath = \"/\"\ncomponent = \"bad\"\n",
            source.file_name().unwrap()
        ),
    )
}

/// Serves `bytes`, written to `file_name`, as the app's only component;
/// asserts it is refused with a message naming the component, the field and
/// the file, and returns the message.
fn component_refused(file_name: &str, bytes: impl AsRef<[u8]>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), file_name, bytes);
    let stderr = serve_fails(&app_with(dir.path(), &file));
    let expected = format!(
        "component `bad` (component.bad.source = {}): ",
        file.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
    stderr
}

#[test]
fn a_file_that_is_not_webassembly_is_refused() {
    let stderr = component_refused("notes.wasm", "these are not the bytes you are looking for");
    assert!(stderr.contains("not a WebAssembly file"), "{stderr}");
}

#[test]
fn a_core_module_is_refused_with_a_hint() {
    let module = wat::parse_str("(module (func (export \"run\")))").unwrap();
    let stderr = component_refused("module.wasm", module);
    assert!(
        stderr.contains("this is a core WebAssembly module, not a component"),
        "{stderr}"
    );
    assert!(stderr.contains("wasm32-wasip2"), "{stderr}");
}

#[test]
fn a_component_without_the_http_handler_export_is_refused() {
    let component = wat::parse_str(
        r#"(component
             (core module $m (func (export "f")))
             (core instance $i (instantiate $m))
             (func $run (canon lift (core func $i "f")))
             (export "run" (func $run)))"#,
    )
    .unwrap();
    let stderr = component_refused("command.wasm", component);
    assert!(
        stderr.contains(
            "exports neither `wasi:http/incoming-handler@0.2` nor `wasi:http/handler@0.3`"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("it exports: run"), "{stderr}");
}

for_both_worlds! {
    /// Refused by `serve` and by `check`, naming the import, whichever
    /// world's handler the component exports.
    fn a_component_importing_something_the_host_lacks_is_refused_naming_the_import(world: World) {
        let (import, handler) = match world {
            World::P2 => ("acme:billing/invoices@1.0.0", "wasi:http/incoming-handler@0.2.0"),
            World::P3 => ("acme:billing/invoices@0.3.0", "wasi:http/handler@0.3.0"),
        };
        let component = wat::parse_str(format!(
            r#"(component
                 (import "{import}" (instance (export "charge" (func))))
                 (instance $handler)
                 (export "{handler}" (instance $handler)))"#
        ))
        .unwrap();
        let stderr = component_refused("needs-billing.wasm", &component);
        assert!(stderr.contains("it cannot be linked"), "{stderr}");
        assert!(stderr.contains(import), "{stderr}");

        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "needs-billing.wasm", component);
        let printed = check_fails(&file);
        assert!(printed.contains("component `needs-billing`"), "{printed}");
        assert!(printed.contains("it cannot be linked"), "{printed}");
        assert!(printed.contains(import), "{printed}");
    }
}

#[test]
fn a_handler_export_of_the_wrong_shape_is_refused() {
    let component = wat::parse_str(
        r#"(component
             (instance $handler)
             (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#,
    )
    .unwrap();
    let stderr = component_refused("hollow.wasm", component);
    assert!(
        stderr.contains("does not match its world, `wasi:http/proxy` (WASI 0.2)"),
        "{stderr}"
    );
}

#[test]
fn a_missing_component_file_given_directly_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.wasm");
    let stderr = serve_fails(&missing);
    assert!(stderr.contains("absent.wasm"), "{stderr}");
    assert!(stderr.contains("cannot read the file"), "{stderr}");
    // The guests themselves load fine, so the failures above are the inputs'.
    assert!(Path::new(guests::HELLO).exists());
}

#[test]
fn a_port_that_is_taken_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run_mayfly(&[
        OsStr::new("serve"),
        OsStr::new(guests::HELLO),
        OsStr::new("--listen"),
        OsStr::new(&addr),
        OsStr::new("--no-cache"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}")),
        "{stderr}"
    );
}

/// A malformed secrets file is refused without a word of its contents:
/// the parser's own message would quote the line, and with it a secret.
#[test]
fn a_malformed_secrets_file_is_refused_without_showing_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    for secrets in [
        "token = \"fine\"\npassword = 31337424242\n",
        "token = \"fine\"\npassword = \"31337424242\n",
    ] {
        write_file(dir.path(), "secrets.toml", secrets);
        let app = write_file(
            dir.path(),
            "app.toml",
            format!(
                "secrets = \"secrets.toml\"\n[component.hello]\nsource = {:?}\n\
                 [component.hello.config]\npassword = {{ secret = \"password\" }}\n\
                 [[route]]\npath = \"/\"\ncomponent = \"hello\"\n",
                guests::HELLO
            ),
        );
        let stderr = serve_fails(&app);
        assert!(
            stderr.contains("field `secrets`: ")
                && stderr.contains("is not a table of `name = \"value\"` strings (see line 2;"),
            "{stderr}"
        );
        assert!(!stderr.contains("31337424242"), "{stderr}");
    }
}

/// A malformed `env` value is refused naming the file, line, column and
/// field, but showing neither the line nor the value: the parser's own
/// message would quote the line, and with it a secret.
#[test]
fn a_malformed_env_value_is_refused_without_showing_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (env, expected) in [
        (
            "env = { TOKEN = 31337424242, PASS = \"hunter2-SECRET\" }",
            ":3:17: field `component.hello.env.TOKEN`: expected a string, found an integer",
        ),
        (
            "env = { TOKEN = \"hunter2-SECRET\\q\" }",
            ":3:33: missing escaped value",
        ),
        // Unterminated: the parser notices on the next line.
        (
            "env = { TOKEN = \"hunter2-SECRET }",
            ":4:1: missing key for inline table element",
        ),
        (
            "[component.hello.env]\nPASS = \"hunter2-SECRET\"\nTOKEN = [\"31337424242\"]",
            ":5:9: field `component.hello.env.TOKEN`: expected a string, found an array",
        ),
    ] {
        let app = write_file(
            dir.path(),
            "app.toml",
            format!(
                "[component.hello]\nsource = {:?}\n{env}\n\
                 [[route]]\npath = \"/\"\ncomponent = \"hello\"\n",
                guests::HELLO
            ),
        );
        for stderr in [serve_fails(&app), check_fails(&app)] {
            assert!(
                stderr.contains(&format!("invalid manifest {}{expected}", app.display())),
                "{stderr}"
            );
            for secret in ["hunter2", "31337424242"] {
                assert!(!stderr.contains(secret), "{stderr}");
            }
        }
    }
}

#[test]
fn a_malformed_runtime_config_is_refused_without_showing_its_redis_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "runtime.toml",
        "[key_value]\nbackend = \"redis\"\nurl = \"redis://:hunter2-SECRET@127.0.0.1:6379\" junk\n",
    );
    let output = run_mayfly(&[
        OsStr::new("serve"),
        OsStr::new(guests::HELLO),
        OsStr::new("--runtime-config"),
        config.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--no-cache"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("invalid runtime config {}:3:", config.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
