//! The plugin library: a host program's own world (`wit/plugin`), Mayfly's
//! sandbox, a typed error for every way a plugin can fail, and calls from
//! many tasks at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly::cache::CompileCache;
use mayfly::engine::EngineSettings;
use mayfly::manifest::FilesMode;
use mayfly::plugin::{Plugin, PluginBuilder, PluginEngine, PluginError};

use crate::guests;
use crate::harness::{PATIENCE, write_file};

wasmtime::component::bindgen!({
    path: "../wit/plugin",
    world: "filter",
    exports: { default: async },
});

fn engine() -> PluginEngine {
    PluginEngine::with_settings(&EngineSettings::default(), CompileCache::disabled()).unwrap()
}

fn builder(engine: &PluginEngine) -> PluginBuilder {
    engine
        .plugin()
        .timeout(Duration::from_secs(1))
        .memory(16 << 20)
        .require_export("transform")
}

async fn transform(plugin: &Plugin, input: &str) -> Result<Result<String, String>, PluginError> {
    let started = Instant::now();
    let output = plugin
        .call(async |store, instance| {
            let filter = Filter::new(&mut *store, instance)?;
            filter.call_transform(&mut *store, input.as_bytes()).await
        })
        .await;
    assert!(
        started.elapsed() < PATIENCE,
        "the call took {:?}",
        started.elapsed()
    );
    output.map(|result| result.map(|bytes| String::from_utf8(bytes).unwrap()))
}

/// The plugin still works normally after whatever happened before.
async fn still_works(plugin: &Plugin) {
    assert_eq!(transform(plugin, "fine").await.unwrap(), Ok("fine".into()));
}

#[tokio::test]
async fn a_well_behaved_plugin_transforms_and_refuses() {
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
async fn every_call_gets_a_fresh_instance_unless_reuse_is_asked_for() {
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
            ..
        }) => {
            assert_eq!(name, "plugin_hostile");
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
    let invalid = |err: PluginError| match err {
        PluginError::Invalid { reason, .. } => reason,
        other => panic!("expected Invalid, got {other:?}"),
    };
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
        "granted directory /no/such/dir does not exist or is not a directory"
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
