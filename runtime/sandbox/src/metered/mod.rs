//! The imports whose host resources are counted. Each is defined over
//! wasmtime-wasi's (or wasmtime-wasi-http's) own, charges the instance's
//! [`InstanceBudget`](mayfly_host_api::budget::InstanceBudget) or checks a
//! bound, then does what the original does:
//!
//! - `files`: opening a file holds a descriptor;
//! - `fields`: building `wasi:http` headers holds host memory;
//! - `requests`: an outbound request's method and scheme are bounded, its
//!   authority and path charged as host memory, and a WASI 0.2 body's
//!   buffer leased for as long as the body lives (WASI 0.3 bodies are
//!   leased by the store's `wasi:http` hooks, see
//!   [`mayfly_host_api::body_buffer`]).
//!
//! A guest past its host memory is stopped (the call traps with the
//! reason, which the operator sees); a method or scheme past its bound is
//! refused with the error the function has for it.

#[cfg(feature = "http")]
mod fields;
mod files;
#[cfg(feature = "http")]
mod requests;

use wasmtime::component::Linker;

use crate::host::Host;

/// The `wasi:filesystem` and `wasi:http` versions wasmtime-wasi defines
/// (imports of any 0.2 version link to them).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
const FILESYSTEM_TYPES_P3: &str = "wasi:filesystem/types@0.3.0";
#[cfg(feature = "http")]
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";
#[cfg(feature = "http")]
const HTTP_TYPES_P3: &str = "wasi:http/types@0.3.0";

/// The `wasi:http/types` functions redefined here, of WASI 0.2 and 0.3.
#[cfg(feature = "http")]
const HTTP_COUNTED: &[&str] = &[
    "[static]fields.from-list",
    "[method]fields.set",
    "[method]fields.append",
    "[method]fields.clone",
];
#[cfg(feature = "http")]
const HTTP_COUNTED_P2: &[&str] = &[
    "[method]outgoing-request.set-method",
    "[method]outgoing-request.set-scheme",
    "[method]outgoing-request.set-authority",
    "[method]outgoing-request.set-path-with-query",
    "[method]outgoing-request.body",
    "[method]outgoing-response.body",
];
#[cfg(feature = "http")]
const HTTP_COUNTED_P3: &[&str] = &[
    "[method]request.set-method",
    "[method]request.set-scheme",
    "[method]request.set-authority",
    "[method]request.set-path-with-query",
];

/// Defines the counted imports over those `linker` already has.
/// The WASI 0.3 ones too if `wasi_03`.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>, wasi_03: bool) -> wasmtime::Result<()> {
    redefines(linker, FILESYSTEM_TYPES, &["[method]descriptor.open-at"])?;
    if wasi_03 {
        redefines(linker, FILESYSTEM_TYPES_P3, &["[method]descriptor.open-at"])?;
    }
    #[cfg(feature = "http")]
    {
        redefines(linker, HTTP_TYPES, HTTP_COUNTED)?;
        redefines(linker, HTTP_TYPES, HTTP_COUNTED_P2)?;
        if wasi_03 {
            redefines(linker, HTTP_TYPES_P3, HTTP_COUNTED)?;
            redefines(linker, HTTP_TYPES_P3, HTTP_COUNTED_P3)?;
        }
    }
    linker.allow_shadowing(true);
    files::add_to_linker(linker, wasi_03)?;
    #[cfg(feature = "http")]
    {
        fields::add_to_linker(linker, wasi_03)?;
        requests::add_to_linker(linker, wasi_03)?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Charges `bytes` of host memory to the instance, for what it built
/// (headers, request targets); past its cap, the guest traps with the
/// reason.
#[cfg(feature = "http")]
fn charge(host: &mut Host, what: &str, bytes: usize) -> wasmtime::Result<()> {
    let holdings = host.holdings();
    match holdings.budget().charge_memory(bytes) {
        Ok(()) => Ok(()),
        Err(exhausted) => {
            holdings
                .reporter
                .report(&format!("{what} refused: {exhausted}"));
            Err(wasmtime::format_err!("{exhausted}"))
        }
    }
}

/// Fails unless `linker` already defines each of `names` in `instance`:
/// a version here that is not wasmtime-wasi's would put the counted
/// function beside the original, and nothing would be counted.
fn redefines(linker: &mut Linker<Host>, instance: &str, names: &[&str]) -> wasmtime::Result<()> {
    for name in names {
        if !defines(linker, instance, name)? {
            wasmtime::bail!(
                "`{instance}` has no `{name}` to count: wasmtime-wasi defines another version"
            );
        }
    }
    Ok(())
}

/// Whether `linker` defines `name` in `instance`. It asks by defining the
/// name with shadowing off, which fails for a name that is there already;
/// a name that was not there is then defined (as a function that does
/// nothing), so a caller told `false` must fail. Leaves shadowing off.
pub fn defines<T: 'static>(
    linker: &mut Linker<T>,
    instance: &str,
    name: &str,
) -> wasmtime::Result<bool> {
    linker.allow_shadowing(false);
    let mut defined = linker.instance(instance)?;
    Ok(defined.func_new(name, |_, _, _, _| Ok(())).is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_functions_wasmtime_wasi_defines_are_redefined() {
        let engine = crate::EngineSettings {
            wasi_03: true,
            ..crate::EngineSettings::default()
        }
        .build()
        .unwrap();
        // The linker Mayfly builds redefines them all.
        let mut linker = crate::linker::linker(&engine, true).unwrap();
        // A version wasmtime-wasi does not define is refused, loudly.
        let err = redefines(
            &mut linker,
            "wasi:filesystem/types@0.2.99",
            &["[method]descriptor.open-at"],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`wasi:filesystem/types@0.2.99` has no `[method]descriptor.open-at` to count: \
             wasmtime-wasi defines another version"
        );
    }
}
