//! Guests written in Python (componentize-py) and JavaScript (ComponentizeJS),
//! built from `guests/python` and `guests/js` by `guests/polyglot.sh` with
//! their pinned toolchains, served like any other component: their routes,
//! a body echo, env grants, module state that never survives a request,
//! and an endless loop and a memory bomb stopped by their limits while the
//! rest keeps serving.
//!
//! `.ci/run` builds the guests first and names the directory in
//! `MAYFLY_POLYGLOT_GUESTS`; without it, the first test that needs them
//! runs `guests/polyglot.sh` into the target directory (which needs
//! python3 with venv, node and npm, and the package registries).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use http::Request;

use crate::harness::{Client, Server, full, get, run_bounded_for, write_file};

/// The languages, by the prefix of their guests' file names and the
/// greeting of their app's `/`.
#[derive(Debug, Clone, Copy)]
enum Language {
    Python,
    JavaScript,
}

impl Language {
    /// `python-NAME.wasm` or `js-NAME.wasm`, built if need be.
    fn guest(self, name: &str) -> PathBuf {
        let prefix = match self {
            Language::Python => "python",
            Language::JavaScript => "js",
        };
        let path = guests_dir().join(format!("{prefix}-{name}.wasm"));
        assert!(path.is_file(), "{} was not built", path.display());
        path
    }

    fn app_greeting(self) -> &'static str {
        match self {
            Language::Python => "hello from python\n",
            Language::JavaScript => "hello from javascript\n",
        }
    }

    fn hello_greeting(self) -> &'static str {
        match self {
            Language::Python => "Hello from Python!\n",
            Language::JavaScript => "Hello from JavaScript!\n",
        }
    }
}

/// The directory the Python and JavaScript guests are in: the one
/// `MAYFLY_POLYGLOT_GUESTS` names, or one `guests/polyglot.sh` builds into,
/// once per test run.
fn guests_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("MAYFLY_POLYGLOT_GUESTS") {
            return PathBuf::from(dir);
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("polyglot-guests");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guests/polyglot.sh");
        let mut command = Command::new("bash");
        command.arg(script).arg(&dir);
        // Installing both toolchains and building four guests, on a loaded
        // machine, from nothing.
        let output = run_bounded_for(command, Duration::from_secs(1200));
        assert!(
            output.status.success(),
            "guests/polyglot.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
}

/// `mayfly serve` of an app whose `app` component is `language`'s app on
/// `/app/...` (with the env, key-value store, config and memory and time
/// limits the tests below use) and whose `hello` is its hello on `/hello`.
fn serve(language: Language, dir: &std::path::Path) -> Server {
    let manifest = format!(
        r#"
[component.app]
source = {app:?}
env = {{ GREETING = "hi from the manifest" }}
key_value_stores = ["default"]
config = {{ colour = "teal" }}
[component.app.limits]
memory = "256MiB"
timeout = "3s"

[component.hello]
source = {hello:?}

[[route]]
path = "/app/..."
component = "app"
[[route]]
path = "/hello"
component = "hello"
"#,
        app = language.guest("app"),
        hello = language.guest("hello"),
    );
    let manifest = write_file(dir, "app.toml", manifest);
    let token = write_file(dir, "token", "a token of sixteen or more");
    let data = dir.join("data");
    Server::start_with(&[
        manifest.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().unwrap(),
    ])
}

/// Times the `app` component hit its limit of `kind`, as `/metrics` counts
/// them.
fn limit_hits(kind: &str) -> String {
    format!("mayfly_limit_hits_total{{component=\"app\",kind=\"{kind}\"}}")
}

/// Both guests answer, and so does everything else in the app.
async fn still_serves(server: &Server, language: Language) {
    let reply = get(server.addr, "/app/").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, language.app_greeting())
    );
    let reply = get(server.addr, "/hello").await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, language.hello_greeting())
    );
}

macro_rules! for_both_languages {
    ($(
        $(#[$attr:meta])*
        async fn $name:ident($language:ident: Language) $body:block
    )*) => {$(
        $(#[$attr])*
        mod $name {
            use super::*;

            async fn run($language: Language) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn python() {
                run(Language::Python).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn javascript() {
                run(Language::JavaScript).await
            }
        }
    )*};
}

for_both_languages! {
    /// The routes, the echo of a body, the grants: what the manifest gives
    /// the guest, and nothing else.
    async fn routes_echo_and_grants(language: Language) {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(language, dir.path());
        still_serves(&server, language).await;
        let reply = get(server.addr, "/app/nowhere").await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (404, "not found\n"));

        // A body of 1 MiB and some, echoed whole.
        let body: Vec<u8> = (b'a'..=b'z').cycle().take((1 << 20) + 17).collect();
        let mut client = Client::connect(server.addr).await;
        let request = Request::post("/app/echo").body(full(body.clone())).unwrap();
        let reply = client.send(request).await.unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.body == body, "the echo differs from what was sent");

        // The env the manifest grants, and none of the server's own.
        let reply = get(server.addr, "/app/env?name=GREETING").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "hi from the manifest")
        );
        for name in ["HOME", "PATH", "MAYFLY_TEST_REDIS_URL"] {
            let reply = get(server.addr, &format!("/app/env?name={name}")).await;
            assert_eq!(
                (reply.status.as_u16(), reply.text().as_str()),
                (404, "not granted\n"),
                "{name}"
            );
        }

        // The config and key-value store the manifest grants.
        let reply = get(server.addr, "/app/config?key=colour").await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "teal"));
        for visit in 1..=3 {
            let reply = get(server.addr, "/app/count").await;
            assert_eq!(reply.text(), format!("visits: {visit}\n"));
        }

        // No directory is granted: no file is readable.
        let reply = get(server.addr, "/app/file?path=/etc/passwd").await;
        assert_eq!(reply.status, 403, "{}", reply.text());
        assert!(reply.text().starts_with("denied: "), "{}", reply.text());
    }

    /// Module-level state is the interpreter's own: a fresh instance per
    /// request starts it over every time, in sequence and in parallel.
    async fn module_state_never_survives_a_request(language: Language) {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(language, dir.path());
        let mut client = Client::connect(server.addr).await;
        for i in 0..10 {
            let reply = client.get("/app/state").await;
            assert_eq!(reply.text(), "calls=1\n", "request {i}");
        }
        let addr = server.addr;
        let tasks: Vec<_> = (0..16)
            .map(|_| tokio::spawn(async move { get(addr, "/app/state").await.text() }))
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), "calls=1\n");
        }
    }

    /// An endless loop meets the deadline (504), a memory bomb the memory
    /// limit (500, saying which); each is logged, and the app goes on
    /// serving, the same component included.
    async fn a_loop_and_a_memory_bomb_are_stopped_by_their_limits(language: Language) {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(language, dir.path());

        let reply = get(server.addr, "/app/loop").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (504, "component `app` exceeded its request deadline of 3s\n")
        );
        still_serves(&server, language).await;

        // CPython dies of the refused growth; SpiderMonkey throws an
        // out-of-memory error the app answers itself. Either way the host
        // counts the limit and logs it.
        let reply = get(server.addr, "/app/grow").await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        match language {
            Language::Python => {
                assert!(
                    reply
                        .text()
                        .starts_with("component `app` failed: memory limit of 256MiB reached"),
                    "{}",
                    reply.text()
                );
                server.wait_for_output("trapped: memory limit of 256MiB reached: ");
            }
            Language::JavaScript => {
                assert_eq!(reply.text(), "error: \"out of memory\"\n");
                server.wait_for_output(
                    "memory limit of 256MiB reached; the guest handled the refusal",
                );
            }
        }
        assert_eq!(server.metric(&limit_hits("memory")).await, 1.0);
        assert_eq!(server.metric(&limit_hits("deadline")).await, 1.0);
        still_serves(&server, language).await;
    }
}
