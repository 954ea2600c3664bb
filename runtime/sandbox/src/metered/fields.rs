//! `wasi:http` header maps, charged by what they hold on the host.
//!
//! A map is shared with its clones until one of them changes, and then
//! copied whole (by any change, `delete` included): a clone is charged
//! the whole map when it is made, so the copy is paid for up front.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::FieldMap;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::http::types::HeaderError;

use super::{HTTP_TYPES, HTTP_TYPES_P3, charge};
use crate::host::Host;

type Entries = Vec<(String, Vec<u8>)>;

/// What one entry costs besides its name and value: the name and value
/// structures and the map's index (wasmtime's own estimate is 72
/// bytes, without the index).
const ENTRY_COST: usize = 128;

/// What an entry of `name` and `value_len` bytes costs.
fn entry(name: usize, value_len: usize) -> usize {
    name.saturating_add(value_len).saturating_add(ENTRY_COST)
}

/// The four counted functions of one `wasi:http/types` version, over
/// that version's `HostFields` (the two versions share `FieldMap`).
macro_rules! counted {
    ($linker:expr, $instance:expr, $HostFields:path, $result:path) => {{
        use $HostFields as HostFields;
        let mut types = $linker.instance($instance)?;
        types.func_wrap(
            "[static]fields.from-list",
            |mut store, (entries,): (Entries,)| {
                let host: &mut Host = store.data_mut();
                let bytes = entries
                    .iter()
                    .map(|(name, value)| entry(name.len(), value.len()))
                    .fold(0usize, usize::saturating_add);
                charge(host, "headers", bytes)?;
                let made = HostFields::from_list(&mut host.http(), entries);
                Ok(($result(made)?,))
            },
        )?;
        types.func_wrap(
            "[method]fields.set",
            |mut store, (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
                let host: &mut Host = store.data_mut();
                let bytes = values
                    .iter()
                    .map(|value| entry(name.len(), value.len()))
                    .fold(0usize, usize::saturating_add);
                charge(host, "headers", bytes)?;
                let done = HostFields::set(&mut host.http(), fields, name, values);
                Ok(($result(done)?,))
            },
        )?;
        types.func_wrap(
            "[method]fields.append",
            |mut store, (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
                let host: &mut Host = store.data_mut();
                charge(host, "headers", entry(name.len(), value.len()))?;
                let done = HostFields::append(&mut host.http(), fields, name, value);
                Ok(($result(done)?,))
            },
        )?;
        types.func_wrap(
            "[method]fields.clone",
            |mut store, (fields,): (Resource<FieldMap>,)| {
                let host: &mut Host = store.data_mut();
                let bytes = host
                    .http()
                    .table
                    .get(&fields)?
                    .iter()
                    .map(|(name, value)| entry(name.as_str().len(), value.len()))
                    .fold(0usize, usize::saturating_add);
                charge(host, "headers", bytes)?;
                Ok((HostFields::clone(&mut host.http(), fields)?,))
            },
        )?;
    }};
}

pub(super) fn add_to_linker(linker: &mut Linker<Host>, wasi_03: bool) -> wasmtime::Result<()> {
    counted!(
        linker,
        HTTP_TYPES,
        wasmtime_wasi_http::p2::bindings::http::types::HostFields,
        header_result
    );
    if !wasi_03 {
        return Ok(());
    }
    counted!(
        linker,
        HTTP_TYPES_P3,
        wasmtime_wasi_http::p3::bindings::http::types::HostFields,
        header_result_p3
    );
    Ok(())
}

/// [`header_result`], for WASI 0.3.
fn header_result_p3<T>(
    result: Result<
        T,
        wasmtime_wasi::TrappableError<wasmtime_wasi_http::p3::bindings::http::types::HeaderError>,
    >,
) -> wasmtime::Result<Result<T, wasmtime_wasi_http::p3::bindings::http::types::HeaderError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => Ok(Err(err.downcast()?)),
    }
}

/// A header operation's result for the guest: its error code, or a trap
/// for an error that is not one.
fn header_result<T>(
    result: Result<T, wasmtime_wasi_http::p2::HeaderError>,
) -> wasmtime::Result<Result<T, HeaderError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => Ok(Err(err.downcast()?)),
    }
}
