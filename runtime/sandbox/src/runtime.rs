//! The one floor every use of Mayfly stands on: a wasmtime engine with its
//! epoch ticker, the linker with every interface Mayfly provides, and the
//! compile cache. `mayfly serve`, plugins, `mayfly run` and `mayfly
//! compare` each make one [`Runtime`] and ask it for components; nothing
//! else builds an engine or starts a ticker.
//!
//! Loading a component goes the same way for all of them: the bytes are
//! checked ([`binary`]: WebAssembly, a component, not a
//! WASI 0.3 one on an engine without component-model async), compiled
//! through the cache, and pre-instantiated against the linker; each step's
//! failure is a [`LoadError`] the caller puts its own name on.

use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use crate::binary::{self, BinaryError};
use crate::cache::{CacheOutcome, CompileCache};
use crate::engine::EngineSettings;
use crate::epoch::EpochTicker;
use crate::host::Host;

/// An engine, its epoch ticker (stopped when the runtime is dropped), its
/// linker and its compile cache.
pub struct Runtime {
    engine: Engine,
    settings: EngineSettings,
    linker: Linker<Host>,
    cache: CompileCache,
    _ticker: EpochTicker,
}

/// Why a runtime could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine's configuration was refused.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The epoch ticker's thread could not start.
    #[error("cannot start the epoch ticker: {0}")]
    Ticker(std::io::Error),
    /// The linker could not be built.
    #[error("cannot link Mayfly's interfaces: {0}")]
    Linker(String),
}

/// Why a component could not be loaded. The caller names the component
/// (a manifest field, a plugin, a file) around it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a component.
    #[error(transparent)]
    Binary(#[from] BinaryError),
    /// A component that needs component-model async (WASI 0.3, or a world
    /// with async functions), on an engine without it.
    #[error("it is a WASI 0.3 component, and this engine runs WASI 0.2 only")]
    NeedsWasi03,
    /// The component does not validate or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// It imports something the linker does not provide.
    #[error("it cannot be linked: {0}")]
    Link(String),
}

impl Runtime {
    /// A runtime with `settings`, compiling through `cache`.
    pub fn new(settings: EngineSettings, cache: CompileCache) -> Result<Self, RuntimeError> {
        let engine = settings
            .build()
            .map_err(|err| RuntimeError::Engine(format!("{err:#}")))?;
        Self::with_engine(engine, settings, cache)
    }

    /// A runtime on an `engine` the caller configured (to measure other
    /// engine configurations, say); `settings` still say what it runs
    /// (WASI 0.3 or not) and what components are checked against.
    pub fn with_engine(
        engine: Engine,
        settings: EngineSettings,
        cache: CompileCache,
    ) -> Result<Self, RuntimeError> {
        let ticker = EpochTicker::start(&engine).map_err(RuntimeError::Ticker)?;
        let linker = crate::linker::linker(&engine, settings.wasi_03)
            .map_err(|err| RuntimeError::Linker(format!("{err:#}")))?;
        Ok(Self {
            engine,
            settings,
            linker,
            cache,
            _ticker: ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What the engine was built with.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The linker with every interface Mayfly provides. A plugin host
    /// clones it to add its own world's functions.
    pub fn linker(&self) -> &Linker<Host> {
        &self.linker
    }

    /// The compile cache.
    pub fn cache(&self) -> &CompileCache {
        &self.cache
    }

    /// Checks `bytes` and compiles them (through the cache): the component,
    /// and whether the cache had it.
    ///
    /// On an engine without component-model async, a component that needs
    /// it is [`LoadError::NeedsWasi03`]: one that exports a WASI 0.3 world
    /// (seen before compiling), or any other whose validation fails for
    /// want of the feature (async functions, streams, futures).
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, CacheOutcome), LoadError> {
        binary::check_component(bytes)?;
        let needs_async = || !self.settings.wasi_03;
        if needs_async() && binary::exports_wasi_03(bytes) {
            return Err(LoadError::NeedsWasi03);
        }
        self.cache
            .load_or_compile(&self.engine, bytes)
            .map_err(|err| {
                if needs_async() && wants_async(&err) {
                    LoadError::NeedsWasi03
                } else {
                    LoadError::Invalid(format!("{err:#}"))
                }
            })
    }

    /// `component`, linked and ready to instantiate, against this
    /// runtime's linker.
    pub fn instantiate_pre(&self, component: &Component) -> Result<InstancePre<Host>, LoadError> {
        self.instantiate_pre_with(&self.linker, component)
    }

    /// [`Runtime::instantiate_pre`] against `linker` (one a plugin host
    /// made from [`Runtime::linker`]).
    pub fn instantiate_pre_with(
        &self,
        linker: &Linker<Host>,
        component: &Component,
    ) -> Result<InstancePre<Host>, LoadError> {
        linker
            .instantiate_pre(component)
            .map_err(|err| LoadError::Link(format!("{err:#}")))
    }

    /// Whether `component` exports a name that starts with `prefix` (as
    /// `wasi:cli/run@0.2`).
    pub fn exports(&self, component: &Component, prefix: &str) -> bool {
        component
            .component_type()
            .exports(&self.engine)
            .any(|(name, _)| name.starts_with(prefix))
    }
}

/// Whether a component failed to compile only because its engine lacks
/// component-model async: what the validator says of an async function, a
/// stream or future type, or an async option or built-in when that feature
/// is off.
fn wants_async(err: &wasmtime::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .to_string()
            .contains("the component model async feature")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(wasi_03: bool) -> Runtime {
        let settings = EngineSettings {
            max_instances: 4,
            wasi_03,
            ..EngineSettings::default()
        };
        Runtime::new(settings, CompileCache::disabled()).unwrap()
    }

    #[test]
    fn a_component_is_checked_compiled_and_linked() {
        let runtime = runtime(false);
        let (component, outcome) = runtime
            .compile(&std::fs::read(mayfly_guests::HELLO).unwrap())
            .unwrap();
        assert!(matches!(outcome, CacheOutcome::NotCached(_)));
        assert!(runtime.exports(&component, "wasi:http/incoming-handler@0.2"));
        runtime.instantiate_pre(&component).unwrap();
    }

    #[test]
    fn what_is_not_a_loadable_component_is_refused_saying_why() {
        let runtime = runtime(false);
        assert!(matches!(
            runtime.compile(b"not wasm"),
            Err(LoadError::Binary(_))
        ));
        let p3 = std::fs::read(mayfly_guests::HELLO_P3).unwrap();
        assert_eq!(
            runtime.compile(&p3).unwrap_err().to_string(),
            "it is a WASI 0.3 component, and this engine runs WASI 0.2 only"
        );
        let importer =
            wat::parse_str(r#"(component (import "nobody:provides/this" (func)))"#).unwrap();
        let (component, _) = runtime.compile(&importer).unwrap();
        let Err(err) = runtime.instantiate_pre(&component) else {
            panic!("a component that imports what nobody provides was linked");
        };
        let err = err.to_string();
        assert!(err.starts_with("it cannot be linked: "), "{err}");
        assert!(err.contains("nobody:provides/this"), "{err}");
    }
}
