//! The plugin library with a world of async functions (component-model
//! async, `wit/plugin/async-filter.wit`): the host's async import answered
//! while the plugin waits on several at once, and the same typed errors as
//! for a synchronous world, whether the plugin spins, waits forever, hoards
//! memory, panics or leaves a task behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly_plugin::{
    CompileCache, EngineSettings, FilesMode, Host, HostError, Plugin, PluginBuilder, PluginEngine,
    PluginError,
};
use mayfly_testing::write_file;
use tokio::sync::watch;
use wasmtime::component::{Accessor, HasSelf};

use crate::guests;

wasmtime::component::bindgen!({
    path: "../../wit/plugin",
    world: "async-filter",
    // Imports may fail on the host's side: they return a `wasmtime::Result`.
    imports: { default: trappable },
});

/// The longest any call here may take, hostile or not, before the test
/// fails: far beyond every deadline.
const BOUND: Duration = Duration::from_secs(30);

/// One call's host state: the documents it serves, the order it answers
/// them in, and what the plugin asked for and logged.
#[derive(Debug, Default)]
struct Call {
    documents: HashMap<String, Vec<u8>>,
    /// When set, `fetch` answers these keys in this order only, whatever
    /// order the plugin asks in: each waits for the keys before it.
    turns: Option<Arc<Turns>>,
    requested: Vec<String>,
    answered: Vec<String>,
    log: Vec<String>,
}

/// The order one call's `fetch` answers keys in.
#[derive(Debug)]
struct Turns {
    order: Vec<String>,
    /// How many keys of `order` have been answered.
    done: watch::Sender<usize>,
}

impl Call {
    fn with(documents: &[(&str, &str)]) -> Self {
        Self {
            documents: documents
                .iter()
                .map(|(key, text)| (key.to_string(), text.as_bytes().to_vec()))
                .collect(),
            ..Self::default()
        }
    }

    /// Answers `order`'s keys in that order.
    fn in_turns(mut self, order: &[&str]) -> Self {
        self.turns = Some(Arc::new(Turns {
            order: order.iter().map(ToString::to_string).collect(),
            done: watch::Sender::new(0),
        }));
        self
    }
}

/// A message that mentions `full` fails on the host's side.
impl AsyncFilterImports for Host {
    fn log(&mut self, message: String) -> wasmtime::Result<()> {
        if message.contains("full") {
            return Err(HostError::new("the log is full").into());
        }
        if let Some(call) = self.user_mut::<Call>() {
            call.log.push(message);
        }
        Ok(())
    }
}

/// `never` is never answered; `down` fails on the host's side.
impl AsyncFilterImportsWithStore<Host> for HasSelf<Host> {
    async fn fetch(
        accessor: &Accessor<Host, Self>,
        key: String,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        let turns = accessor.with(|mut access| {
            let call = access.get().user_mut::<Call>()?;
            call.requested.push(key.clone());
            call.turns.clone()
        });
        match key.as_str() {
            "never" => std::future::pending().await,
            "down" => return Err(HostError::new("the document store is down").into()),
            _ => {}
        }
        let turn = turns
            .as_ref()
            .and_then(|turns| Some((turns, turns.order.iter().position(|k| *k == key)?)));
        if let Some((turns, turn)) = turn {
            let mut done = turns.done.subscribe();
            done.wait_for(|done| *done >= turn).await?;
        }
        let document = accessor.with(|mut access| {
            let call = access.get().user_mut::<Call>()?;
            call.answered.push(key.clone());
            Some(call.documents.get(&key).cloned())
        });
        if let Some((turns, _)) = turn {
            turns.done.send_modify(|done| *done += 1);
        }
        Ok(document.flatten())
    }
}

/// An engine that runs async worlds.
fn engine() -> PluginEngine {
    engine_with(EngineSettings::default())
}

fn engine_with(settings: EngineSettings) -> PluginEngine {
    let settings = EngineSettings {
        wasi_03: true,
        ..settings
    };
    PluginEngine::with_settings(&settings, CompileCache::disabled()).unwrap()
}

/// The async-filter world's plugins: the host's imports linked, exports
/// checked.
fn builder(engine: &PluginEngine) -> PluginBuilder {
    engine
        .plugin()
        .timeout(Duration::from_secs(1))
        .memory(16 << 20)
        .link(|linker| AsyncFilter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
        .check(|pre| AsyncFilterPre::new(pre.clone()).map(drop))
}

/// Calls `transform` with `call` as the host's state: the result, and the
/// state the call left.
async fn transform_with(
    plugin: &Plugin,
    input: &str,
    call: Call,
) -> Result<(Result<String, String>, Call), PluginError> {
    let call = plugin.call(async |store, instance| {
        store.data_mut().set_user(call);
        let filter = AsyncFilter::new(&mut *store, instance)?;
        let output = store
            .run_concurrent(async |accessor| {
                filter
                    .call_transform(accessor, input.as_bytes().to_vec())
                    .await
            })
            .await??;
        let call = store.data_mut().take_user::<Call>().unwrap_or_default();
        Ok((output, call))
    });
    let output = tokio::time::timeout(BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("the call took longer than {BOUND:?}"));
    output.map(|(result, call)| (result.map(|bytes| String::from_utf8(bytes).unwrap()), call))
}

async fn transform(plugin: &Plugin, input: &str) -> Result<Result<String, String>, PluginError> {
    transform_with(plugin, input, Call::default())
        .await
        .map(|(result, _)| result)
}

/// The plugin still works normally after whatever happened before.
async fn still_works(plugin: &Plugin) {
    let (output, _) = transform_with(plugin, "{a}+{b}", Call::with(&[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    assert_eq!(output, Ok("1+2".into()));
}

#[tokio::test]
pub(crate) async fn an_async_plugin_fetches_its_documents_concurrently() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    assert_eq!(plugin.name(), "plugin_async");
    let documents = [("greeting", "Hello"), ("name", "Ada")];
    // The plugin asks for `greeting`, then `name`; the host answers `name`
    // first. Had the plugin waited for one fetch before making the next,
    // `greeting` would wait for its turn forever and the call would fail.
    let call = Call::with(&documents).in_turns(&["name", "greeting"]);
    let (output, call) = transform_with(&plugin, "{greeting}, {name}! ({name})", call)
        .await
        .unwrap();
    assert_eq!(output, Ok("Hello, Ada! (Ada)".into()));
    assert_eq!(call.requested, ["greeting", "name"]);
    assert_eq!(call.answered, ["name", "greeting"]);
    assert_eq!(call.log, ["fetching 2 documents: greeting, name"]);

    // The plugin's own refusals, through its world's `result`.
    let (output, call) = transform_with(&plugin, "{greeting} {nobody}", Call::with(&documents))
        .await
        .unwrap();
    assert_eq!(output, Err("no document `nobody`".into()));
    assert_eq!(call.requested, ["greeting", "nobody"]);
    let (output, call) = transform_with(&plugin, "", Call::default()).await.unwrap();
    assert_eq!(
        output,
        Err("nothing to transform: the input is empty".to_string())
    );
    assert_eq!(call.log, ["refused: empty input"]);
    assert_eq!(
        transform(&plugin, "{greeting").await.unwrap(),
        Err("unclosed placeholder: `{greeting`".into())
    );
    let (output, call) = transform_with(&plugin, "plain text", Call::default())
        .await
        .unwrap();
    assert_eq!(output, Ok("plain text".into()));
    assert_eq!(call.log, ["no placeholders"]);
}

#[tokio::test]
async fn every_async_call_gets_a_fresh_instance_unless_reuse_is_asked_for() {
    let engine = engine();
    let fresh = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    for _ in 0..3 {
        assert_eq!(transform(&fresh, "count").await.unwrap(), Ok("1".into()));
    }
    // A task the plugin leaves running ends with its instance.
    assert_eq!(
        transform(&fresh, "spawn").await.unwrap(),
        Ok("spawned".into())
    );
    assert_eq!(transform(&fresh, "count").await.unwrap(), Ok("1".into()));
    still_works(&fresh).await;

    let reused = builder(&engine)
        .reuse_instances(10)
        .load(guests::PLUGIN_ASYNC)
        .unwrap();
    assert_eq!(transform(&reused, "count").await.unwrap(), Ok("1".into()));
    assert_eq!(transform(&reused, "count").await.unwrap(), Ok("2".into()));
    // An instance that still runs a task of the plugin's is not reused: the
    // task would run on in the next call.
    assert_eq!(
        transform(&reused, "spawn").await.unwrap(),
        Ok("spawned".into())
    );
    assert_eq!(transform(&reused, "count").await.unwrap(), Ok("1".into()));
    assert_eq!(transform(&reused, "count").await.unwrap(), Ok("2".into()));
}

#[tokio::test]
async fn a_spinning_async_plugin_is_stopped_at_the_deadline() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    match transform(&plugin, "spin").await {
        Err(PluginError::DeadlineExceeded { plugin, timeout }) => {
            assert_eq!(plugin, "plugin_async");
            assert_eq!(timeout, Duration::from_secs(1));
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_fetch_the_host_never_answers_ends_at_the_deadline() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    let started = Instant::now();
    let err = transform_with(
        &plugin,
        "{greeting} {never}",
        Call::with(&[("greeting", "hi")]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PluginError::DeadlineExceeded { plugin, timeout }
            if plugin == "plugin_async" && *timeout == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    still_works(&plugin).await;
}

#[tokio::test]
async fn async_fuel_budgets_are_enforced() {
    let metering = engine_with(EngineSettings {
        consume_fuel: true,
        ..EngineSettings::default()
    });
    let plugin = builder(&metering)
        .timeout(Duration::from_secs(60))
        .fuel(5_000_000)
        .load(guests::PLUGIN_ASYNC)
        .unwrap();
    let err = transform(&plugin, "spin").await.unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::FuelExhausted {
                fuel: 5_000_000,
                ..
            }
        ),
        "{err:?}"
    );
    still_works(&plugin).await;
}

#[tokio::test]
async fn an_async_memory_bomb_is_the_memory_limit() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    let err = transform(&plugin, "memory").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `plugin_async` reached its memory limit of 16777216 bytes"
    );
    assert!(
        matches!(err, PluginError::MemoryLimit { limit, .. } if limit == 16 << 20),
        "{err:?}"
    );
    still_works(&plugin).await;
}

#[tokio::test]
async fn an_async_panic_is_a_trap_with_the_plugins_message() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    match transform(&plugin, "panic").await {
        Err(PluginError::Trap {
            plugin: name,
            message,
            backtrace,
        }) => {
            assert_eq!(name, "plugin_async");
            assert!(
                message.starts_with("wasm trap: wasm `unreachable` instruction executed: "),
                "{message}"
            );
            assert!(
                message.contains("async plugin: panicking on purpose"),
                "{message}"
            );
            let backtrace = backtrace.expect("a trap comes with its wasm backtrace");
            assert!(backtrace.contains("wasm function"), "{backtrace}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_host_error_in_an_async_import_is_the_hosts() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    // Beside a fetch that succeeds.
    let err = transform_with(
        &plugin,
        "{greeting} {down}",
        Call::with(&[("greeting", "hi")]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PluginError::Host(message)
            if message == "plugin `plugin_async`: the document store is down"),
        "{err:?}"
    );
    still_works(&plugin).await;
    // The same from the world's synchronous import.
    let err = transform(&plugin, "{full}").await.unwrap_err();
    assert!(
        matches!(&err, PluginError::Host(message)
            if message == "plugin `plugin_async`: the log is full"),
        "{err:?}"
    );
    still_works(&plugin).await;
}

#[tokio::test]
async fn wasi_03_capabilities_that_were_not_granted_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "allowed.txt", "granted contents");
    let engine = engine();
    let bare = builder(&engine).load(guests::PLUGIN_ASYNC).unwrap();
    let denied = |err: PluginError| match err {
        PluginError::Denied { capability, .. } => capability,
        other => panic!("expected Denied, got {other:?}"),
    };
    assert_eq!(
        denied(transform(&bare, "read:/etc/passwd").await.unwrap_err()),
        "wasi:filesystem (no directory was granted)"
    );
    for (input, capability) in [
        ("tcp", "wasi:sockets (TCP)"),
        ("udp", "wasi:sockets (UDP)"),
        ("lookup:localhost", "wasi:sockets (name lookup)"),
    ] {
        assert_eq!(
            denied(transform(&bare, input).await.unwrap_err()),
            capability,
            "{input}"
        );
    }
    still_works(&bare).await;

    // With a directory granted, the plugin reads inside it and nowhere else;
    // sockets stay denied.
    let granted = builder(&engine)
        .dir(dir.path(), "/data", FilesMode::ReadOnly)
        .load(guests::PLUGIN_ASYNC)
        .unwrap();
    assert_eq!(
        transform(&granted, "read:/data/allowed.txt").await.unwrap(),
        Ok("granted contents".into())
    );
    assert_eq!(
        transform(&granted, "read:/etc/passwd").await.unwrap(),
        Err("cannot read /etc/passwd: ErrorCode::NoEntry".into())
    );
    assert_eq!(
        denied(transform(&granted, "tcp").await.unwrap_err()),
        "wasi:sockets (TCP)"
    );
}

#[tokio::test]
async fn an_async_plugin_needs_an_engine_that_runs_async() {
    let sync_engine =
        PluginEngine::with_settings(&EngineSettings::default(), CompileCache::disabled()).unwrap();
    match builder(&sync_engine)
        .load(guests::PLUGIN_ASYNC)
        .unwrap_err()
    {
        PluginError::Invalid { plugin, reason } => {
            assert_eq!(plugin, "plugin_async");
            assert_eq!(
                reason,
                "its world has async functions (component-model async, as WASI 0.3 uses), \
                 but its engine does not run them (build the PluginEngine with \
                 `EngineSettings { wasi_03: true, .. }`)"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn synchronous_plugins_run_on_an_async_engine() {
    // A plugin of the synchronous `filter` world matches the async world's
    // bindings (an export's `async` is how the host calls it, not its
    // type), and is called the same way.
    let engine = engine();
    let upper = builder(&engine).load(guests::PLUGIN_UPPER).unwrap();
    let (output, call) = transform_with(&upper, "sync", Call::default())
        .await
        .unwrap();
    assert_eq!(output, Ok("SYNC".into()));
    assert_eq!(call.log, ["upper-casing 4 bytes"]);
    // And with the synchronous calls of its own world.
    let upper = engine
        .plugin()
        .link(|linker| {
            linker
                .root()
                .func_wrap("log", |_, (_message,): (String,)| Ok(()))
        })
        .load(guests::PLUGIN_UPPER)
        .unwrap();
    let output = upper
        .call(async |store, instance| {
            let transform = instance
                .get_typed_func::<(&[u8],), (Result<Vec<u8>, String>,)>(&mut *store, "transform")?;
            let (output,) = transform.call_async(&mut *store, (b"sync",)).await?;
            Ok(output)
        })
        .await
        .unwrap();
    assert_eq!(output, Ok(b"SYNC".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_async_calls_at_once_and_hostile_ones_harm_none_of_them() {
    let engine = engine();
    let plugin = Arc::new(builder(&engine).load(guests::PLUGIN_ASYNC).unwrap());
    let mut tasks = Vec::new();
    for i in 0..48 {
        let plugin = plugin.clone();
        tasks.push(tokio::spawn(async move {
            match i % 12 {
                0 => {
                    let err = transform(&plugin, "spin").await.unwrap_err();
                    assert!(
                        matches!(err, PluginError::DeadlineExceeded { .. }),
                        "{err:?}"
                    );
                }
                4 => {
                    let err = transform(&plugin, "{never}").await.unwrap_err();
                    assert!(
                        matches!(err, PluginError::DeadlineExceeded { .. }),
                        "{err:?}"
                    );
                }
                8 => {
                    let err = transform(&plugin, "panic").await.unwrap_err();
                    assert!(matches!(err, PluginError::Trap { .. }), "{err:?}");
                }
                _ => {}
            }
            let number = i.to_string();
            let call =
                Call::with(&[("task", "task"), ("number", &number)]).in_turns(&["number", "task"]);
            let (output, _) = transform_with(&plugin, "{task} {number}", call)
                .await
                .unwrap();
            assert_eq!(output, Ok(format!("task {i}")));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
