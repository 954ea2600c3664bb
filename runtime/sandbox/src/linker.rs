//! The linker every guest is instantiated with.

use wasmtime::component::Linker;

use crate::host::Host;
use crate::metered;
pub use crate::metered::defines;

/// A linker with every interface Mayfly provides: WASI 0.2 and 0.3 (whose
/// capabilities each store grants or not, the same for both), `wasi:http`
/// 0.2 and 0.3 (with the `http` feature), and the state interfaces (`wasi:keyvalue`, `wasi:config`,
/// `wasi:logging`, and Spin's variables and key-value: `fermyon:spin@2.0.0`, and
/// `spin:*@3.0.0` with WASI 0.3). Opening files and building headers are counted (in the
/// `metered` module).
///
/// The WASI 0.3 interfaces are there only if `wasi_03`, which the engine
/// must have been built with ([`EngineSettings::wasi_03`](crate::EngineSettings::wasi_03)).
pub fn linker(engine: &wasmtime::Engine, wasi_03: bool) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    if wasi_03 {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    }
    #[cfg(feature = "http")]
    {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        if wasi_03 {
            wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        }
    }
    mayfly_host_api::state::add_to_linker(&mut linker, |host: &mut Host| host.state_view())?;
    if wasi_03 {
        mayfly_host_api::state::add_async_to_linker(&mut linker, |host: &mut Host| {
            host.state_view()
        })?;
    }
    metered::add_to_linker(&mut linker, wasi_03)?;
    Ok(linker)
}
