//! The in-process request path for the `hello` guest: new store, instantiate,
//! handle, read the whole response, drop. No sockets.
//!
//! Three engines run the same code path in the same process, so their ratio
//! is what the engine settings buy:
//!
//! - `mayfly`: Mayfly's engine (`EngineSettings::default()`).
//! - `wasmtime-pooling`: wasmtime's pooling allocator with its defaults (the
//!   allocator `wasmtime serve` picks).
//! - `wasmtime-on-demand`: wasmtime's default configuration, which maps and
//!   unmaps memory for every instance.
//!
//! Run with `cargo bench -p mayfly-serve --bench request_path`.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use mayfly_sandbox::{CompileCache, EngineSettings, Grants, RequestLimits};
use mayfly_serve::component::LoadedComponent;
use mayfly_serve::loader::Loader;
use mayfly_serve::manifest::{ComponentSpec, LimitFields, Source};
use mayfly_serve::metrics::Metrics;
use tokio::runtime::Runtime;
use tokio::task::LocalSet;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

fn engines() -> Vec<(&'static str, Engine)> {
    let mayfly = EngineSettings::default().build().unwrap();

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
        ("mayfly", mayfly),
        ("wasmtime-pooling", pooling),
        ("wasmtime-on-demand", on_demand),
    ]
}

/// The `hello` guest on `engine`, and the loader that keeps its engine's
/// epoch ticking.
fn load_hello(engine: Engine) -> (Loader, Arc<LoadedComponent>) {
    let spec = ComponentSpec {
        name: "hello".into(),
        source: Source::File(mayfly_guests::HELLO.into()),
        field: "bench".into(),
        limits: RequestLimits::default(),
        limit_fields: LimitFields::default(),
        grants: Grants::default(),
    };
    let loader = Loader::with_engine(
        engine,
        EngineSettings::default(),
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
    let response = mayfly_serve::request::handle(component, request, (), None).await;
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("hello: instantiate + handle + drop");
    for (name, engine) in engines() {
        let (_loader, component) = load_hello(engine);
        let local = LocalSet::new();
        let body = run(&runtime, &local, &component);
        assert_eq!(&body[..], b"Hello from Mayfly!\n");
        group.bench_function(name, |b| b.iter(|| run(&runtime, &local, &component)));
    }
    group.finish();
}

fn run(runtime: &Runtime, local: &LocalSet, component: &Arc<LoadedComponent>) -> Bytes {
    local.block_on(runtime, one_request(component))
}

criterion_group!(benches, request_path);
criterion_main!(benches);
