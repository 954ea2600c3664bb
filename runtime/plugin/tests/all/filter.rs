//! The plugin library: a host program's own world (`wit/plugin`, with an
//! import the host provides), Mayfly's sandbox, a typed error for every way
//! a plugin can fail, and calls from many tasks at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly_plugin::{
    CompileCache, EngineSettings, FilesMode, Host, HostError, Plugin, PluginBuilder, PluginEngine,
    PluginError,
};
use mayfly_testing::{PATIENCE, write_file};
use wasmtime::component::HasSelf;

use crate::guests;

wasmtime::component::bindgen!({
    path: "../../wit/plugin",
    world: "filter",
    exports: { default: async },
});

/// Most `log` lines the host keeps per call.
const MAX_LINES: usize = 100;

/// What one call logged through the host's `log` import.
#[derive(Debug, Default)]
struct Lines {
    kept: Vec<String>,
    dropped: usize,
}

impl FilterImports for Host {
    fn log(&mut self, message: String) {
        if let Some(lines) = self.user_mut::<Lines>() {
            if lines.kept.len() < MAX_LINES {
                lines.kept.push(message);
            } else {
                lines.dropped += 1;
            }
        }
    }
}

fn engine() -> PluginEngine {
    PluginEngine::with_settings(&EngineSettings::default(), CompileCache::disabled()).unwrap()
}

/// The filter world's plugins: the host's `log` linked, exports checked.
fn builder(engine: &PluginEngine) -> PluginBuilder {
    bare_builder(engine)
        .link(|linker| Filter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
        .check(|pre| FilterPre::new(pre.clone()).map(drop))
}

/// Limits only: nothing linked, nothing checked.
fn bare_builder(engine: &PluginEngine) -> PluginBuilder {
    engine
        .plugin()
        .timeout(Duration::from_secs(1))
        .memory(16 << 20)
        .require_export("transform")
}

/// Calls `transform`: its result, and what it logged.
async fn transform_logged(
    plugin: &Plugin,
    input: &str,
) -> Result<(Result<String, String>, Lines), PluginError> {
    let call = plugin.call(async |store, instance| {
        store.data_mut().set_user(Lines::default());
        let filter = Filter::new(&mut *store, instance)?;
        let output = filter.call_transform(&mut *store, input.as_bytes()).await?;
        let lines = store.data_mut().take_user::<Lines>().unwrap_or_default();
        Ok((output, lines))
    });
    let output = tokio::time::timeout(PATIENCE, call)
        .await
        .unwrap_or_else(|_| panic!("the call took longer than {PATIENCE:?}"));
    output.map(|(result, lines)| (result.map(|bytes| String::from_utf8(bytes).unwrap()), lines))
}

async fn transform(plugin: &Plugin, input: &str) -> Result<Result<String, String>, PluginError> {
    transform_logged(plugin, input)
        .await
        .map(|(result, _)| result)
}

fn invalid(err: PluginError) -> String {
    match err {
        PluginError::Invalid { reason, .. } => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The plugin still works normally after whatever happened before.
async fn still_works(plugin: &Plugin) {
    assert_eq!(transform(plugin, "fine").await.unwrap(), Ok("fine".into()));
}

#[tokio::test]
pub(crate) async fn a_well_behaved_plugin_transforms_and_refuses() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_UPPER).unwrap();
    assert_eq!(plugin.name(), "plugin_upper");
    assert_eq!(
        transform(&plugin, "hello, plugin").await.unwrap(),
        Ok("HELLO, PLUGIN".into())
    );
    assert_eq!(
        transform(&plugin, "").await.unwrap(),
        Err("nothing to transform: the input is empty".into())
    );
}

#[tokio::test]
pub(crate) async fn every_call_gets_a_fresh_instance_unless_reuse_is_asked_for() {
    let engine = engine();
    let fresh = builder(&engine).load(guests::PLUGIN_HOSTILE).unwrap();
    for _ in 0..5 {
        assert_eq!(transform(&fresh, "count").await.unwrap(), Ok("1".into()));
    }
    let reused = builder(&engine)
        .reuse_instances(3)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    let mut counts = Vec::new();
    for _ in 0..7 {
        counts.push(transform(&reused, "count").await.unwrap().unwrap());
    }
    assert_eq!(counts, ["1", "2", "3", "1", "2", "3", "1"]);
    // An instance whose call failed is never used again.
    assert!(matches!(
        transform(&reused, "trap").await,
        Err(PluginError::Trap { .. })
    ));
    assert_eq!(transform(&reused, "count").await.unwrap(), Ok("1".into()));
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_HOSTILE).unwrap();
    let started = Instant::now();
    match transform(&plugin, "loop").await {
        Err(PluginError::DeadlineExceeded { plugin, timeout }) => {
            assert_eq!(plugin, "plugin_hostile");
            assert_eq!(timeout, Duration::from_secs(1));
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_memory_bomb_is_reported_as_the_memory_limit() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_HOSTILE).unwrap();
    let err = transform(&plugin, "memory").await.unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryLimit { limit, .. } if limit == 16 << 20),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "plugin `plugin_hostile` reached its memory limit of 16777216 bytes"
    );
    still_works(&plugin).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_plugins_message() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_HOSTILE).unwrap();
    match transform(&plugin, "trap").await {
        Err(PluginError::Trap {
            plugin: name,
            message,
            backtrace,
        }) => {
            assert_eq!(name, "plugin_hostile");
            let backtrace = backtrace.expect("a trap comes with its wasm backtrace");
            assert!(
                backtrace.contains("wasm function") && backtrace.contains("0x"),
                "{backtrace}"
            );
            assert!(
                message.starts_with("wasm trap: wasm `unreachable` instruction executed: "),
                "{message}"
            );
            assert!(
                message.contains("hostile plugin: panicking on purpose"),
                "{message}"
            );
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    still_works(&plugin).await;
}

#[tokio::test]
async fn capabilities_that_were_not_granted_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "allowed.txt", "granted contents");
    let engine = engine();
    let bare = builder(&engine).load(guests::PLUGIN_HOSTILE).unwrap();
    let denied = |err: PluginError| match err {
        PluginError::Denied { capability, .. } => capability,
        other => panic!("expected Denied, got {other:?}"),
    };
    assert_eq!(
        denied(transform(&bare, "read:/etc/passwd").await.unwrap_err()),
        "wasi:filesystem (no directory was granted)"
    );
    assert_eq!(
        denied(transform(&bare, "connect:127.0.0.1:22").await.unwrap_err()),
        "wasi:sockets (TCP)"
    );
    assert_eq!(
        transform(&bare, "read:/etc/passwd")
            .await
            .unwrap_err()
            .to_string(),
        "plugin `plugin_hostile` was denied wasi:filesystem (no directory was granted)"
    );
    still_works(&bare).await;

    // With a directory granted, the plugin reads inside it and nowhere else.
    let granted = builder(&engine)
        .dir(dir.path(), "/data", FilesMode::ReadOnly)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    assert_eq!(
        transform(&granted, "read:/data/allowed.txt").await.unwrap(),
        Ok("granted contents".into())
    );
    assert_eq!(
        transform(&granted, "read:/etc/passwd").await.unwrap(),
        Err("cannot read /etc/passwd: No such file or directory (os error 44)".into())
    );
    assert_eq!(
        transform(&granted, "read:/data/../../etc/passwd")
            .await
            .unwrap(),
        Err("cannot read /data/../../etc/passwd: Operation not permitted (os error 63)".into())
    );
    // Sockets stay denied whatever else is granted.
    assert_eq!(
        denied(
            transform(&granted, "connect:127.0.0.1:22")
                .await
                .unwrap_err()
        ),
        "wasi:sockets (TCP)"
    );
}

#[tokio::test]
async fn fuel_budgets_are_enforced() {
    let metering = PluginEngine::with_settings(
        &EngineSettings {
            consume_fuel: true,
            ..EngineSettings::default()
        },
        CompileCache::disabled(),
    )
    .unwrap();
    let plugin = builder(&metering)
        .timeout(Duration::from_secs(60))
        .fuel(5_000_000)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    let err = transform(&plugin, "loop").await.unwrap_err();
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

    // A fuel budget on an engine that does not meter fuel is a mistake.
    let err = builder(&engine())
        .fuel(1)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("it has a fuel budget, but its engine does not meter fuel"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_plugins_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let text = write_file(dir.path(), "text.wasm", "not wasm");
    assert!(
        invalid(builder(&engine).load(&text).unwrap_err()).starts_with("not a WebAssembly file"),
    );
    let missing = invalid(
        builder(&engine)
            .load(dir.path().join("missing.wasm"))
            .unwrap_err(),
    );
    assert!(missing.starts_with("cannot read "), "{missing}");
    // An HTTP component is a component, but not for this world.
    let wrong_world = invalid(builder(&engine).load(guests::HELLO).unwrap_err());
    assert!(
        wrong_world.starts_with(
            "it does not export `transform`, so it was not built for this host's world \
             (it exports: wasi:http/incoming-handler@"
        ),
        "{wrong_world}"
    );
    let bad_grant = invalid(
        builder(&engine)
            .dir(Path::new("/no/such/dir"), "/data", FilesMode::ReadOnly)
            .load(guests::PLUGIN_UPPER)
            .unwrap_err(),
    );
    assert_eq!(
        bad_grant,
        "cannot grant a directory at `/data`: /no/such/dir: No such file or directory (os error 2)"
    );
    let forever = invalid(
        builder(&engine)
            .timeout(Duration::MAX)
            .load(guests::PLUGIN_UPPER)
            .unwrap_err(),
    );
    assert!(
        forever.starts_with("its timeout of ")
            && forever.ends_with(" is too long to be a deadline"),
        "{forever}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_call_at_once_and_a_hostile_call_harms_none_of_them() {
    let engine = engine();
    let upper = Arc::new(builder(&engine).load(guests::PLUGIN_UPPER).unwrap());
    let hostile = Arc::new(builder(&engine).load(guests::PLUGIN_HOSTILE).unwrap());
    let mut tasks = Vec::new();
    for i in 0..64 {
        let upper = upper.clone();
        let hostile = hostile.clone();
        tasks.push(tokio::spawn(async move {
            if i % 16 == 0 {
                let err = transform(&hostile, "loop").await.unwrap_err();
                assert!(
                    matches!(err, PluginError::DeadlineExceeded { .. }),
                    "{err:?}"
                );
            } else if i % 8 == 0 {
                let err = transform(&hostile, "trap").await.unwrap_err();
                assert!(matches!(err, PluginError::Trap { .. }), "{err:?}");
            }
            let input = format!("task {i}");
            let output = transform(&upper, &input).await.unwrap();
            assert_eq!(output, Ok(input.to_uppercase()));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn the_hosts_own_import_is_called_with_per_call_state() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_UPPER).unwrap();
    let (output, lines) = transform_logged(&plugin, "hello").await.unwrap();
    assert_eq!(output, Ok("HELLO".into()));
    assert_eq!(lines.kept, ["upper-casing 5 bytes"]);
    // Every call starts with its own state.
    let (output, lines) = transform_logged(&plugin, "").await.unwrap();
    assert_eq!(
        output,
        Err("nothing to transform: the input is empty".to_string())
    );
    assert_eq!(lines.kept, ["refused: empty input"]);

    // A plugin calling the import without end is bounded by what the host
    // keeps (and by its deadline).
    let hostile = builder(&engine)
        .timeout(Duration::from_secs(20))
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    let (output, lines) = transform_logged(&hostile, "flood").await.unwrap();
    assert_eq!(output, Ok("flooded".into()));
    assert_eq!(lines.kept.len(), MAX_LINES);
    assert_eq!(lines.dropped, 1_000_000 - MAX_LINES);
}

#[tokio::test]
async fn an_import_the_host_did_not_link_makes_the_plugin_invalid() {
    let engine = engine();
    // The filter world's `log`, not linked.
    let reason = invalid(
        bare_builder(&engine)
            .load(guests::PLUGIN_UPPER)
            .unwrap_err(),
    );
    assert!(
        reason.starts_with(
            "it imports something this host does not provide: \
             component imports function `log`, but a matching implementation \
             was not found in the linker"
        ),
        "{reason}"
    );
    // An interface nobody provides.
    let unknown = wat::parse_str(
        r#"(component
            (import "example:missing/api@1.0.0" (instance
                (export "lookup" (func (param "key" string) (result string)))))
        )"#,
    )
    .unwrap();
    let reason = invalid(engine.plugin().load_bytes(&unknown).unwrap_err());
    assert!(
        reason.contains("component imports instance `example:missing/api@1.0.0`"),
        "{reason}"
    );
}

/// A component exporting `transform` with the wrong type.
const WRONG_TYPE: &str = r#"(component
    (core module $m (func (export "t") (result i32) i32.const 7))
    (core instance $i (instantiate $m))
    (func $t (result u32) (canon lift (core func $i "t")))
    (export "transform" (func $t))
)"#;

/// A component exporting a `transform` of the right type, whose core
/// function has `fields` (a table, say) beside its memory and runs `body`,
/// which leaves a pointer to the result in the memory.
fn transform_wat(fields: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
    (core module $m
        (memory (export "mem") 1)
        {fields}
        (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024)
        (func (export "t") (param i32 i32) (result i32) {body}))
    (core instance $i (instantiate $m))
    (func $t (param "input" (list u8)) (result (result (list u8) (error string)))
        (canon lift (core func $i "t") (memory (core memory $i "mem"))
            (realloc (core func $i "realloc"))))
    (export "transform" (func $t))
)"#
    ))
    .unwrap()
}

/// A `transform` that returns a list outside its memory.
const BAD_POINTER: &str = "
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 12) (i32.const 0x7fff0000))
    (i32.store (i32.const 16) (i32.const 100))
    i32.const 8";

#[tokio::test]
async fn plugins_that_break_the_contract_are_blamed_not_the_host() {
    let engine = engine();
    let wrong_type = wat::parse_str(WRONG_TYPE).unwrap();
    // Checked at load: invalid.
    let reason = invalid(builder(&engine).load_bytes(&wrong_type).unwrap_err());
    assert!(
        reason.starts_with(
            "it does not match the host's bindings: type-checking export func `transform`: "
        ),
        "{reason}"
    );
    // Unchecked: the call says the plugin misbehaved.
    let unchecked = bare_builder(&engine).load_bytes(&wrong_type).unwrap();
    match transform(&unchecked, "x").await {
        Err(PluginError::Misbehaved { plugin, reason }) => {
            assert_eq!(plugin, "plugin");
            assert!(
                reason.starts_with("type-checking export func `transform`: "),
                "{reason}"
            );
        }
        other => panic!("expected Misbehaved, got {other:?}"),
    }

    // A result that cannot be read.
    let bad_pointer = builder(&engine)
        .load_bytes(&transform_wat("", BAD_POINTER))
        .unwrap();
    match transform(&bad_pointer, "x").await {
        Err(PluginError::Misbehaved { reason, .. }) => {
            assert!(
                reason.contains("list pointer/length out of bounds of memory"),
                "{reason}"
            );
        }
        other => panic!("expected Misbehaved, got {other:?}"),
    }

    // The host's own failure stays the host's.
    let plugin = builder(&engine).load(guests::PLUGIN_UPPER).unwrap();
    let err = plugin
        .call(async |_, _| Err::<(), _>(HostError::new("the database is down").into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::Host(message) if message == "plugin `plugin_upper`: the database is down"),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_initial_memory_above_the_cap_is_the_memory_limit() {
    let engine = engine();
    // 1 GiB of initial memory, against a 16 MiB cap.
    let huge = wat::parse_str(
        r#"(component
            (core module $m (memory (export "mem") 16384))
            (core instance $i (instantiate $m))
        )"#,
    )
    .unwrap();
    let plugin = engine.plugin().memory(16 << 20).load_bytes(&huge).unwrap();
    let err = plugin.call(async |_, _| Ok(())).await.unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryLimit { limit, .. } if limit == 16 << 20),
        "{err:?}"
    );
}

/// A `transform` that grows a table of one element by 10,000 elements,
/// and traps if the growth was refused; else it returns an empty list.
const TABLE_GROWER: &str = "
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 10000)) (i32.const -1))
        (then unreachable))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 12) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 0))
    i32.const 8";

#[tokio::test]
async fn table_growth_past_the_cap_is_the_table_limit() {
    let engine = engine();
    let grower = transform_wat("(table $t 1 funcref)", TABLE_GROWER);
    // Under the cap, the growth succeeds and the call returns.
    let roomy = builder(&engine).load_bytes(&grower).unwrap();
    assert_eq!(transform(&roomy, "x").await.unwrap(), Ok(String::new()));
    // Past it, the plugin is refused the growth and dies of it.
    let tight = builder(&engine)
        .table_elements(5_000)
        .load_bytes(&grower)
        .unwrap();
    let err = transform(&tight, "x").await.unwrap_err();
    assert!(
        matches!(err, PluginError::TableLimit { limit: 5_000, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "plugin `plugin` reached its table limit of 5000 elements"
    );
    // The next call starts clean, and fails the same way, not worse.
    let again = transform(&tight, "x").await.unwrap_err();
    assert!(matches!(again, PluginError::TableLimit { .. }), "{again:?}");
}

#[tokio::test]
async fn too_many_resources_is_the_resource_limit() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "file.txt", "contents");
    let engine = engine();
    let plugin = builder(&engine)
        .dir(dir.path(), "/data", FilesMode::ReadOnly)
        .max_resources(50)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    let err = transform(&plugin, "hold:/data/file.txt").await.unwrap_err();
    assert!(
        matches!(err, PluginError::ResourceLimit { limit: 50, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "plugin `plugin_hostile` reached its limit of 50 resources"
    );
    still_works(&plugin).await;
}

#[tokio::test]
async fn udp_and_name_lookups_are_denied() {
    let engine = engine();
    let plugin = builder(&engine).load(guests::PLUGIN_HOSTILE).unwrap();
    let denied = |err: PluginError| match err {
        PluginError::Denied { capability, .. } => capability,
        other => panic!("expected Denied, got {other:?}"),
    };
    assert_eq!(
        denied(transform(&plugin, "udp:127.0.0.1:0").await.unwrap_err()),
        "wasi:sockets (UDP)"
    );
    assert_eq!(
        denied(transform(&plugin, "lookup:localhost").await.unwrap_err()),
        "wasi:sockets (name lookup)"
    );
}

#[tokio::test]
async fn a_reused_instance_starts_each_call_clean() {
    let engine = engine();
    let plugin = builder(&engine)
        .reuse_instances(10)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    // What an earlier call said on stderr is not a later trap's message.
    assert_eq!(
        transform(&plugin, "say:earlier noise").await.unwrap(),
        Ok("earlier noise".into())
    );
    match transform(&plugin, "trap").await {
        Err(PluginError::Trap { message, .. }) => {
            assert!(!message.contains("earlier noise"), "{message}");
            assert!(
                message.contains("hostile plugin: panicking on purpose"),
                "{message}"
            );
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    // A refusal of memory an earlier call survived does not make a later
    // trap a memory limit.
    assert_eq!(
        transform(&plugin, "try-alloc").await.unwrap(),
        Ok("ok".into())
    );
    assert_eq!(transform(&plugin, "count").await.unwrap(), Ok("2".into()));
    let err = transform(&plugin, "trap").await.unwrap_err();
    assert!(matches!(err, PluginError::Trap { .. }), "{err:?}");

    // User state a call left behind is gone when the instance is reused.
    let plugin = builder(&engine)
        .reuse_instances(10)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    let count = async |leave_state: bool| {
        plugin
            .call(async |store, instance| {
                let leftover = store.data_mut().user_mut::<Lines>().is_some();
                if leave_state {
                    store.data_mut().set_user(Lines::default());
                }
                let filter = Filter::new(&mut *store, instance)?;
                let output = filter.call_transform(&mut *store, b"count").await?;
                Ok((output, leftover))
            })
            .await
            .unwrap()
    };
    assert_eq!(count(true).await, (Ok(b"1".to_vec()), false));
    // The same instance (its count goes on), without the state.
    assert_eq!(count(false).await, (Ok(b"2".to_vec()), false));
}

#[tokio::test]
async fn a_reused_instance_keeps_counting_the_memory_it_holds() {
    let engine = engine();
    let plugin = builder(&engine)
        .memory(16 << 20)
        .reuse_instances(10)
        .load(guests::PLUGIN_HOSTILE)
        .unwrap();
    // Each call leaks 5 MiB into the same instance: the memory cap is the
    // instance's, so it runs out within 16 MiB however many calls it takes.
    for _ in 0..2 {
        assert_eq!(
            transform(&plugin, "leak:5").await.unwrap(),
            Ok("leaked 5 MiB".into())
        );
    }
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        outcomes.push(transform(&plugin, "leak:5").await);
    }
    assert!(
        outcomes.iter().any(|outcome| matches!(
            outcome,
            Err(PluginError::MemoryLimit { limit, .. }) if *limit == 16 << 20
        )),
        "{outcomes:?}"
    );
    // The instance that ran out is gone; a fresh one has room again.
    assert_eq!(
        transform(&plugin, "leak:5").await.unwrap(),
        Ok("leaked 5 MiB".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_slot_in_use_is_overloaded() {
    let engine = PluginEngine::with_settings(
        &EngineSettings {
            max_instances: 1,
            ..EngineSettings::default()
        },
        CompileCache::disabled(),
    )
    .unwrap();
    let looping = Arc::new(
        builder(&engine)
            .timeout(Duration::from_secs(5))
            .load(guests::PLUGIN_HOSTILE)
            .unwrap(),
    );
    let quick = builder(&engine).load(guests::PLUGIN_UPPER).unwrap();
    let task = tokio::spawn({
        let looping = looping.clone();
        async move { transform(&looping, "loop").await }
    });
    // Let the loop take the only slot before anything else asks for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While the loop holds it, other calls are turned away.
    let err = loop {
        match transform(&quick, "quick").await {
            Err(err) => break err,
            Ok(_) => {
                assert!(!task.is_finished(), "the loop never took the slot");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    assert!(
        matches!(&err, PluginError::Overloaded { plugin } if plugin == "plugin_upper"),
        "{err:?}"
    );
    assert!(matches!(
        task.await.unwrap(),
        Err(PluginError::DeadlineExceeded { .. })
    ),);
    // The slot is free again.
    assert_eq!(
        transform(&quick, "quick").await.unwrap(),
        Ok("QUICK".into())
    );
}

/// On one thread, a looping call yields: quick calls started after it all
/// finish long before its deadline.
#[tokio::test(flavor = "current_thread")]
async fn a_looping_call_does_not_block_other_calls() {
    let engine = engine();
    let looping = Arc::new(
        builder(&engine)
            .timeout(Duration::from_secs(10))
            .load(guests::PLUGIN_HOSTILE)
            .unwrap(),
    );
    let upper = Arc::new(builder(&engine).load(guests::PLUGIN_UPPER).unwrap());
    let started = Instant::now();
    let slow = tokio::spawn({
        let looping = looping.clone();
        async move { transform(&looping, "loop").await }
    });
    // Let the loop start spinning.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut quick = Vec::new();
    for i in 0..24 {
        let upper = upper.clone();
        quick.push(tokio::spawn(async move {
            let input = format!("quick {i}");
            assert_eq!(
                transform(&upper, &input).await.unwrap(),
                Ok(input.to_uppercase())
            );
        }));
    }
    for task in quick {
        task.await.unwrap();
    }
    assert!(
        !slow.is_finished(),
        "the quick calls only finished after the loop's deadline ({:?})",
        started.elapsed()
    );
    let err = slow.await.unwrap().unwrap_err();
    assert!(
        matches!(err, PluginError::DeadlineExceeded { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(9));
}
