//! `mayfly new`, then `mayfly build`, then `mayfly serve`: every template
//! from nothing to its first answer, with the real toolchains (cargo for
//! the `wasm32-wasip2` target, componentize-py from PyPI into the app's
//! `.venv`, ComponentizeJS from npm into its `node_modules`); and what
//! `new` and `build` refuse.
//!
//! A first build of a new app fetches and compiles its dependencies, so
//! builds get `BUILD_PATIENCE`, not `PATIENCE`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{MAYFLY, Server, get, run_bounded_for, run_mayfly, write_file};

/// The longest a build of a new app may take on a loaded machine.
pub(crate) const BUILD_PATIENCE: Duration = Duration::from_secs(900);

/// `mayfly new TEMPLATE DIR/NAME`: the manifest it wrote.
pub(crate) fn new_app(template: &str, dir: &Path, name: &str) -> PathBuf {
    let app = dir.join(name);
    let out = run_mayfly(&[OsStr::new("new"), OsStr::new(template), app.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "Created app `{name}` from template `{template}` in {}:",
            app.display()
        )),
        "{stdout}"
    );
    app.join("app.toml")
}

/// `mayfly build MANIFEST`, to its end.
pub(crate) fn build(manifest: &Path) -> Output {
    let mut command = Command::new(MAYFLY);
    command.arg("build").arg(manifest);
    run_bounded_for(command, BUILD_PATIENCE)
}

/// `mayfly build MANIFEST`, which must succeed; what it printed.
pub(crate) fn build_ok(manifest: &Path) -> String {
    let out = build(manifest);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mayfly build failed:\n{stderr}");
    stderr
}

/// A template, from `new` to the answer to `GET /hi`.
async fn serves(template: &str, answer: &str) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = new_app(template, dir.path(), "hello-app");
    let printed = build_ok(&manifest);
    assert!(
        printed.contains("[hello-app] building (1 of 1)"),
        "{printed}"
    );
    assert!(printed.contains("[hello-app] built in "), "{printed}");
    assert!(printed.contains("built 1 component in "), "{printed}");
    let server = Server::start(&manifest);
    let reply = get(server.addr, "/hi").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), answer);
    assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rust_goes_from_new_to_its_first_answer() {
    serves("http-rust", "Hello from Rust! You asked for /hi\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rust_p3_goes_from_new_to_its_first_answer() {
    serves(
        "http-rust-p3",
        "Hello from Rust on WASI 0.3! You asked for /hi\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_python_goes_from_new_to_its_first_answer_with_its_tools_in_the_app() {
    let dir = tempfile::tempdir().unwrap();
    serves_with_tools(
        dir.path(),
        "http-python",
        "Python",
        ".venv/bin/componentize-py",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_js_goes_from_new_to_its_first_answer_with_its_tools_in_the_app() {
    let dir = tempfile::tempdir().unwrap();
    serves_with_tools(
        dir.path(),
        "http-js",
        "JavaScript",
        "node_modules/.bin/componentize-js",
    )
    .await;
}

/// A template whose tools `mayfly build` installs into the app: served,
/// with `tool` inside the app, and a second build that installs nothing.
async fn serves_with_tools(dir: &Path, template: &str, language: &str, tool: &str) {
    let manifest = new_app(template, dir, "hello-app");
    let printed = build_ok(&manifest);
    let app = manifest.parent().unwrap();
    assert!(
        printed.contains(&format!(
            "[hello-app] setting up its tools in {}",
            app.display()
        )),
        "{printed}"
    );
    assert!(app.join(tool).is_file(), "{tool} is not in the app");
    let server = Server::start(&manifest);
    let reply = get(server.addr, "/hi?x=1").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (
            200,
            format!("Hello from {language}! You asked for /hi?x=1\n")
        )
    );
    drop(server);
    let again = build_ok(&manifest);
    assert!(!again.contains("setting up its tools"), "{again}");
}

wasmtime::component::bindgen!({
    path: "../templates/files/plugin-rust/wit",
    world: "plugin",
    exports: { default: async },
});

impl PluginImports for mayfly_plugin::Host {
    fn log(&mut self, message: String) {
        if let Some(log) = self.user_mut::<Vec<String>>() {
            log.push(message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_rust_builds_a_plugin_its_host_world_calls() {
    use mayfly_plugin::{Host, PluginEngine};
    use wasmtime::component::HasSelf;

    let dir = tempfile::tempdir().unwrap();
    let manifest = new_app("plugin-rust", dir.path(), "shout");
    build_ok(&manifest);
    let built = manifest
        .parent()
        .unwrap()
        .join("target/wasm32-wasip2/release/shout.wasm");
    // Loaded as the template's host/src/plugin.rs loads it.
    let engine = PluginEngine::new().unwrap();
    let plugin = engine
        .plugin()
        .timeout(Duration::from_secs(30))
        .memory(32 << 20)
        .link(|linker| Plugin::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
        .check(|pre| PluginPre::new(pre.clone()).map(drop))
        .load(&built)
        .unwrap();
    let call = |input: &'static str| {
        plugin.call(async move |store, instance| {
            store.data_mut().set_user(Vec::<String>::new());
            let world = Plugin::new(&mut *store, instance)?;
            let output = world.call_transform(&mut *store, input).await?;
            let log = store.data_mut().take_user::<Vec<String>>().unwrap();
            Ok((output, log))
        })
    };
    assert_eq!(
        call("some text").await.unwrap(),
        (
            Ok("SOME TEXT".to_string()),
            vec!["upper-casing 9 bytes".to_string()]
        )
    );
    assert_eq!(
        call("").await.unwrap().0,
        Err("nothing to transform: the input is empty".to_string())
    );
    // A plugin has no routes: there is nothing to serve.
    let out = run_mayfly(&[OsStr::new("check"), manifest.as_os_str()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "field `route`: the app has no routes; add a `[[route]]` with a `path` and a \
             `component`"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn new_lists_its_templates_and_refuses_a_full_directory_a_bad_name_and_an_unknown_template() {
    let out = run_mayfly(&[OsStr::new("new"), OsStr::new("--list")]);
    let list = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = list
        .lines()
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "http-rust",
            "http-rust-p3",
            "http-python",
            "http-js",
            "plugin-rust"
        ]
    );
    assert!(
        list.contains("http-python   an HTTP function in Python (componentize-py"),
        "{list}"
    );

    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    write_file(&full, "notes.txt", "mine");
    let refused = |args: &[&OsStr], message: String| {
        let out = run_mayfly(args);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
    };
    refused(
        &[OsStr::new("new"), OsStr::new("http-rust"), full.as_os_str()],
        format!(
            "error: cannot create app `full` in {0}: {0} is not empty: `mayfly new` writes \
             into a new or empty directory\n",
            full.display()
        ),
    );
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
    let bad = dir.path().join("My App");
    refused(
        &[OsStr::new("new"), OsStr::new("http-js"), bad.as_os_str()],
        "error: `My App` is not a valid app name: use lowercase letters, digits and `-` only \
         (pass another with --name, or choose another directory)\n"
            .into(),
    );
    assert!(!bad.exists());
    refused(
        &[OsStr::new("new"), OsStr::new("http-go"), bad.as_os_str()],
        "error: no template named `http-go`; the templates are: http-rust, http-rust-p3, \
         http-python, http-js, plugin-rust\n"
            .into(),
    );
    // --name gives the name; the directory may be anything.
    let named = dir.path().join("My App");
    let out = run_mayfly(&[
        OsStr::new("new"),
        OsStr::new("http-rust"),
        named.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("my-app"),
    ]);
    assert!(out.status.success());
    let manifest = std::fs::read_to_string(named.join("app.toml")).unwrap();
    assert!(manifest.contains("[component.my-app]"), "{manifest}");
    assert!(named.join(".gitignore").is_file());
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with(
            "Next: cd 'DIR/My App' && mayfly dev\n"
                .replace("DIR", &dir.path().display().to_string())
                .as_str()
        ),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn build_names_the_component_the_command_and_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_file(
        dir.path(),
        "app.toml",
        r#"
[component.api]
source = "api.wasm"
[component.api.build]
command = "echo compiling api; echo 'error: expected `;`' >&2; exit 101"

[component.web]
source = "web.wasm"
[component.web.build]
command = "echo never"

[[route]]
path = "/..."
component = "api"
"#,
    );
    let out = build(&manifest);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[api] compiling api\n"), "{stderr}");
    assert!(stderr.contains("[api] error: expected `;`\n"), "{stderr}");
    assert!(
        stderr.ends_with(
            "error: component `api`: build command `echo compiling api; echo 'error: expected \
             `;`' >&2; exit 101` failed with exit code 101\n"
        ),
        "{stderr}"
    );
    // The first failure stops the build.
    assert!(!stderr.contains("[web]"), "{stderr}");
}

#[test]
fn build_gives_a_missing_tool_its_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_file(
        dir.path(),
        "app.toml",
        "[component.api]\nsource = \"app.wasm\"\n[component.api.build]\n\
         command = \"componentize-py -d wit -w service componentize app -o app.wasm\"\n",
    );
    let out = build(&manifest);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.ends_with(
            "error: component `api`: build command `componentize-py -d wit -w service \
             componentize app -o app.wasm` failed with exit code 127\n  hint: `echo \
             componentize-py==0.25.1 >> requirements.txt`: `mayfly build` then installs it \
             into .venv\n"
        ),
        "{stderr}"
    );
}

#[test]
fn build_sections_are_checked_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (table, field, message) in [
        (
            "command = \"  \"",
            "component.api.build.command",
            "the build command is empty; give the shell command that writes the component's \
             `source`",
        ),
        (
            "command = \"make\"\nwatch = [\"src/*.rs\", \"../lib/*.rs\"]",
            "component.api.build.watch[1]",
            "`../lib/*.rs` leaves the build's workdir: a watch glob is relative to it, \
             without `..`",
        ),
    ] {
        let manifest = write_file(
            dir.path(),
            "app.toml",
            format!("[component.api]\nsource = \"api.wasm\"\n[component.api.build]\n{table}\n"),
        );
        let out = build(&manifest);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "error: cannot build the app: invalid manifest {}: field `{field}`: {message}\n",
                manifest.display()
            )
        );
    }
    let manifest = write_file(
        dir.path(),
        "app.toml",
        "[component.api]\nsource = \"api.wasm\"\n[component.api.build]\ncommand = \"make\"\nwatch_globs = []\n",
    );
    let stderr = String::from_utf8_lossy(&build(&manifest).stderr).into_owned();
    assert!(
        stderr.contains("field `component.api.build`")
            && stderr.contains("unknown field `watch_globs`"),
        "{stderr}"
    );
    let manifest = write_file(
        dir.path(),
        "app.toml",
        "[component.api]\nsource = \"api.wasm\"\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&build(&manifest).stderr),
        format!(
            "error: nothing to build: no component of {} has a `[component.NAME.build]` table\n",
            manifest.display()
        )
    );
}
