//! The in-process request path for the `hello` guest (and its WASI 0.3
//! twin): new store, instantiate, handle, read the whole response, drop. No
//! sockets.
//!
//! The rows run the same code path in the same process, so their ratio is
//! what the engine settings (and the guest's world) cost:
//!
//! - `mayfly`: Mayfly's engine (`EngineSettings::default()`).
//! - `mayfly-wasi-0.3-engine`: the same with WASI 0.3 support turned on
//!   (`EngineSettings::wasi_03`), still serving `hello`: what a WASI 0.2
//!   component pays in an app that also has a 0.3 one.
//! - `mayfly-wasi-0.3-guest`: that engine serving `hello-p3`, the WASI 0.3
//!   twin of `hello`.
//! - `wasmtime-pooling`: wasmtime's pooling allocator with its defaults (the
//!   allocator `wasmtime serve` picks).
//! - `wasmtime-on-demand`: wasmtime's default configuration, which maps and
//!   unmaps memory for every instance.
//!
//! A second group runs the Python (componentize-py) and JavaScript
//! (ComponentizeJS) hellos of `guests/python` and `guests/js` the same way,
//! on Mayfly's engine and on `wasmtime-pooling`: a fresh interpreter per
//! request. They are built by `guests/polyglot.sh` into the target
//! directory on first use (or taken from `MAYFLY_POLYGLOT_GUESTS`).
//!
//! Run with `cargo bench -p mayfly-serve --bench request_path`.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use mayfly_sandbox::{CompileCache, EngineSettings, Grants};
use mayfly_serve::component::LoadedComponent;
use mayfly_serve::limits::Limits;
use mayfly_serve::loader::Loader;
use mayfly_serve::manifest::{ComponentSpec, LimitFields, Source};
use mayfly_serve::metrics::Metrics;
use tokio::runtime::Runtime as Tokio;
use tokio::task::LocalSet;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// What each row runs: its engine, whether that engine has WASI 0.3
/// support, and the guest (`hello` or its WASI 0.3 twin `hello-p3`).
fn engines() -> Vec<(&'static str, Engine, bool, &'static str)> {
    let mayfly = EngineSettings::default().build().unwrap();
    // With WASI 0.3 support (component-model async), as an app with a 0.3
    // component gets it: each store carries the concurrency state.
    let wasi_03 = EngineSettings {
        wasi_03: true,
        ..EngineSettings::default()
    }
    .build()
    .unwrap();

    let mut pooling = Config::new();
    pooling
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(
            PoolingAllocationConfig::new(),
        ));
    let pooling = Engine::new(&pooling).unwrap();

    let mut on_demand = Config::new();
    on_demand.epoch_interruption(true);
    let on_demand = Engine::new(&on_demand).unwrap();

    vec![
        ("mayfly", mayfly, false, mayfly_guests::HELLO),
        (
            "mayfly-wasi-0.3-engine",
            wasi_03.clone(),
            true,
            mayfly_guests::HELLO,
        ),
        (
            "mayfly-wasi-0.3-guest",
            wasi_03,
            true,
            mayfly_guests::HELLO_P3,
        ),
        ("wasmtime-pooling", pooling, false, mayfly_guests::HELLO),
        ("wasmtime-on-demand", on_demand, false, mayfly_guests::HELLO),
    ]
}

/// The guest at `path` on `engine`, and the loader that keeps its engine's
/// epoch ticking.
fn load(engine: Engine, wasi_03: bool, path: &str) -> (Loader, Arc<LoadedComponent>) {
    let spec = ComponentSpec {
        name: "hello".into(),
        source: Source::File(path.into()),
        field: "bench".into(),
        limits: Limits::default(),
        limit_fields: LimitFields::default(),
        grants: Grants::default(),
        build: None,
    };
    let settings = EngineSettings {
        wasi_03,
        ..EngineSettings::default()
    };
    let loader = Loader::with_engine(
        engine,
        settings,
        CompileCache::disabled(),
        None,
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let component = loader.load(&spec, None).unwrap();
    (loader, component)
}

async fn one_request(component: &Arc<LoadedComponent>) -> Bytes {
    let request = http::Request::get("/")
        .header(http::header::HOST, "bench")
        .body(
            Empty::<Bytes>::new().map_err(|never| -> wasmtime_wasi_http::Error { match never {} }),
        )
        .unwrap();
    let response = mayfly_serve::request::handle(
        component,
        request,
        (),
        mayfly_serve::request::Origin::Direct,
    )
    .await;
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

/// The directory of the Python and JavaScript guests: `MAYFLY_POLYGLOT_GUESTS`,
/// or `guests/polyglot.sh`'s build into the target directory (which the
/// tests share).
fn polyglot_guests() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAYFLY_POLYGLOT_GUESTS") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("polyglot-guests");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guests/polyglot.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "guests/polyglot.sh failed");
    dir
}

fn polyglot(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = polyglot_guests();
    let mut group = c.benchmark_group("polyglot hello: instantiate + handle + drop");
    group.sample_size(20);
    let engines: Vec<_> = engines()
        .into_iter()
        .filter(|(name, ..)| ["mayfly", "wasmtime-pooling"].contains(name))
        .collect();
    for (language, file, greeting) in [
        ("python", "python-hello.wasm", &b"Hello from Python!\n"[..]),
        (
            "javascript",
            "js-hello.wasm",
            &b"Hello from JavaScript!\n"[..],
        ),
    ] {
        let path = dir.join(file);
        let path = path.to_str().unwrap();
        for (name, engine, wasi_03, _) in &engines {
            let (_loader, component) = load(engine.clone(), *wasi_03, path);
            let local = LocalSet::new();
            assert_eq!(&run(&runtime, &local, &component)[..], greeting);
            group.bench_function(format!("{language}/{name}"), |b| {
                b.iter(|| run(&runtime, &local, &component))
            });
        }
    }
    group.finish();
}

fn request_path(c: &mut Criterion) {
    // As `mayfly serve` does at start.
    // SAFETY: before this, the benchmark has started no thread of its own.
    unsafe { mayfly_serve::launch::errors_without_backtraces() };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("hello: instantiate + handle + drop");
    for (name, engine, wasi_03, guest) in engines() {
        let (_loader, component) = load(engine, wasi_03, guest);
        let local = LocalSet::new();
        let body = run(&runtime, &local, &component);
        assert_eq!(&body[..], b"Hello from Mayfly!\n");
        group.bench_function(name, |b| b.iter(|| run(&runtime, &local, &component)));
    }
    group.finish();
}

fn run(runtime: &Tokio, local: &LocalSet, component: &Arc<LoadedComponent>) -> Bytes {
    local.block_on(runtime, one_request(component))
}

criterion_group!(benches, request_path, polyglot);
criterion_main!(benches);
