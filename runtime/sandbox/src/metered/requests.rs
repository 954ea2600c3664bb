//! What a guest's outbound request (and, for bodies, its response) keeps
//! on the host, of WASI 0.2 and 0.3:
//!
//! - a method or scheme of its own (`other(s)`) is a token: one longer than
//!   [`MAX_TOKEN`] bytes is refused with the function's error, as any
//!   invalid one is;
//! - an authority or a path with query is charged to the instance's host
//!   memory, as headers are (`TARGET_COST` more than its length);
//! - a WASI 0.2 body (`outgoing-request.body`, `outgoing-response.body`)
//!   leases its buffer ([`BODY_BUFFER`]) from the instance's host memory
//!   for as long as the body lives, sent or not.

use mayfly_host_api::body_buffer::{BODY_BUFFER, LeasedBody};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtxView, WasiHttpView as _};

use super::{HTTP_TYPES, HTTP_TYPES_P3, charge};
use crate::host::Host;

/// The longest method or scheme a guest may give a request, in bytes. Real
/// ones are a few letters (the longest registered method,
/// `UPDATEREDIRECTREF`, has 17); the `http` crate's own bound on a scheme
/// is the same.
pub const MAX_TOKEN: usize = 64;

/// What a request target (authority, path with query) costs besides its
/// length: the string and the parsed form the host keeps beside it.
const TARGET_COST: usize = 64;

/// What a target (`None`: no target) costs.
fn target(text: Option<&str>) -> usize {
    text.map_or(0, str::len).saturating_add(TARGET_COST)
}

/// Whether a method or scheme of its own is too long.
fn too_long(own: &str) -> bool {
    own.len() > MAX_TOKEN
}

/// The four functions of one version's request type that set what the
/// request keeps: `$prefix` is the type's name in the function names
/// (`outgoing-request`, `request`), `$Functions` the host trait that does
/// what each does.
macro_rules! targets {
    ($types:expr, $prefix:literal, $Request:ty, $Functions:path, $Method:path, $Scheme:path) => {{
        use $Functions as Functions;
        use $Method as Method;
        use $Scheme as Scheme;
        $types.func_wrap(
            concat!("[method]", $prefix, ".set-method"),
            |mut store, (request, method): (Resource<$Request>, Method)| {
                if let Method::Other(own) = &method
                    && too_long(own)
                {
                    return Ok((Err(()),));
                }
                let host: &mut Host = store.data_mut();
                Ok((Functions::set_method(&mut host.http(), request, method)?,))
            },
        )?;
        $types.func_wrap(
            concat!("[method]", $prefix, ".set-scheme"),
            |mut store, (request, scheme): (Resource<$Request>, Option<Scheme>)| {
                if let Some(Scheme::Other(own)) = &scheme
                    && too_long(own)
                {
                    return Ok((Err(()),));
                }
                let host: &mut Host = store.data_mut();
                Ok((Functions::set_scheme(&mut host.http(), request, scheme)?,))
            },
        )?;
        $types.func_wrap(
            concat!("[method]", $prefix, ".set-authority"),
            |mut store, (request, authority): (Resource<$Request>, Option<String>)| {
                let host: &mut Host = store.data_mut();
                charge(host, "request authority", target(authority.as_deref()))?;
                Ok((Functions::set_authority(
                    &mut host.http(),
                    request,
                    authority,
                )?,))
            },
        )?;
        $types.func_wrap(
            concat!("[method]", $prefix, ".set-path-with-query"),
            |mut store, (request, path): (Resource<$Request>, Option<String>)| {
                let host: &mut Host = store.data_mut();
                charge(host, "request path", target(path.as_deref()))?;
                Ok((Functions::set_path_with_query(
                    &mut host.http(),
                    request,
                    path,
                )?,))
            },
        )?;
    }};
}

/// Defines the counted functions of WASI 0.2 (and 0.3 if `wasi_03`).
pub(super) fn add_to_linker(linker: &mut Linker<Host>, wasi_03: bool) -> wasmtime::Result<()> {
    use wasmtime_wasi_http::p2::bindings::http::types as p2;
    use wasmtime_wasi_http::p2::types::{HostOutgoingRequest, HostOutgoingResponse};

    let mut types = linker.instance(HTTP_TYPES)?;
    targets!(
        types,
        "outgoing-request",
        HostOutgoingRequest,
        p2::HostOutgoingRequest,
        p2::Method,
        p2::Scheme
    );
    // A WASI 0.2 body's buffer is made when the guest asks for the body.
    types.func_wrap(
        "[method]outgoing-request.body",
        |mut store, (request,): (Resource<HostOutgoingRequest>,)| {
            let host: &mut Host = store.data_mut();
            leased_body(
                host,
                request,
                |http, request| p2::HostOutgoingRequest::body(http, request),
                |request| &mut request.body,
            )
        },
    )?;
    types.func_wrap(
        "[method]outgoing-response.body",
        |mut store, (response,): (Resource<HostOutgoingResponse>,)| {
            let host: &mut Host = store.data_mut();
            leased_body(
                host,
                response,
                |http, response| p2::HostOutgoingResponse::body(http, response),
                |response| &mut response.body,
            )
        },
    )?;
    if wasi_03 {
        use wasmtime_wasi_http::p3::bindings::http::types as p3;
        let mut types = linker.instance(HTTP_TYPES_P3)?;
        targets!(
            types,
            "request",
            wasmtime_wasi_http::p3::Request,
            p3::HostRequest,
            p3::Method,
            p3::Scheme
        );
    }
    Ok(())
}

/// What a WASI 0.2 body function gives the guest: the body, or `Err` if it
/// was taken already.
type Body = Result<Resource<HostOutgoingBody>, ()>;

/// Makes the body of `owner` (a request or response) as `make` does, with
/// its buffer leased from the instance's host memory for as long as the
/// body lives (held by the body `field` of `owner` points at).
fn leased_body<T: 'static>(
    host: &mut Host,
    owner: Resource<T>,
    make: impl FnOnce(&mut WasiHttpCtxView<'_>, Resource<T>) -> wasmtime::Result<Body>,
    field: impl FnOnce(&mut T) -> &mut Option<WasiBody>,
) -> wasmtime::Result<(Body,)> {
    let lease = lease(host)?;
    let rep = owner.rep();
    let body = make(&mut host.http(), owner)?;
    if body.is_ok() {
        let http = host.http();
        let held = field(http.table.get_mut(&Resource::<T>::new_borrow(rep))?);
        *held = held.take().map(|body| LeasedBody::wrap(body, lease));
    }
    Ok((body,))
}

/// A lease of one body buffer from the instance's host memory; past its
/// cap, the guest traps with the reason.
fn lease(host: &mut Host) -> wasmtime::Result<mayfly_host_api::budget::MemoryLease> {
    let holdings = host.holdings();
    match holdings.budget().lease_memory(BODY_BUFFER) {
        Ok(lease) => Ok(lease),
        Err(exhausted) => {
            holdings
                .reporter
                .report(&format!("body refused: {exhausted}"));
            Err(wasmtime::format_err!("{exhausted}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_or_scheme_of_its_own_is_bounded() {
        assert!(!too_long("PATCH"));
        assert!(!too_long(&"M".repeat(MAX_TOKEN)));
        assert!(too_long(&"M".repeat(MAX_TOKEN + 1)));
        assert_eq!(target(None), TARGET_COST);
        assert_eq!(target(Some("/a")), 2 + TARGET_COST);
    }
}
