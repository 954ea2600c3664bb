//! The imports whose host resources are counted: opening a file holds a
//! descriptor, building `wasi:http` headers (of WASI 0.2 and 0.3) holds
//! host memory. Each is
//! defined over wasmtime-wasi's own, charges the instance's
//! [`InstanceBudget`], then does what the original does.
//!
//! A file's descriptor is held for as long as anything holds the file (the
//! descriptor handle, or a stream read from it): the budget keeps a weak
//! reference to it, and gives the descriptor back once nothing does.

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};

use crate::host::Host;

/// The `wasi:filesystem` and `wasi:http` versions wasmtime-wasi defines
/// (imports of any 0.2 version link to them).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
const FILESYSTEM_TYPES_P3: &str = "wasi:filesystem/types@0.3.0";
#[cfg(feature = "http")]
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";
#[cfg(feature = "http")]
const HTTP_TYPES_P3: &str = "wasi:http/types@0.3.0";

/// Defines the counted imports over those `linker` already has.
/// The WASI 0.3 ones too if `wasi_03`.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>, wasi_03: bool) -> wasmtime::Result<()> {
    redefines(linker, FILESYSTEM_TYPES, &["[method]descriptor.open-at"])?;
    if wasi_03 {
        redefines(linker, FILESYSTEM_TYPES_P3, &["[method]descriptor.open-at"])?;
    }
    #[cfg(feature = "http")]
    let http_types: &[&str] = if wasi_03 {
        &[HTTP_TYPES, HTTP_TYPES_P3]
    } else {
        &[HTTP_TYPES]
    };
    #[cfg(feature = "http")]
    for types in http_types {
        redefines(
            linker,
            types,
            &[
                "[static]fields.from-list",
                "[method]fields.set",
                "[method]fields.append",
                "[method]fields.clone",
            ],
        )?;
    }
    linker.allow_shadowing(true);
    linker
        .instance(FILESYSTEM_TYPES)?
        .func_wrap_async("[method]descriptor.open-at", open_at)?;
    if wasi_03 {
        linker
            .instance(FILESYSTEM_TYPES_P3)?
            .func_wrap_concurrent("[method]descriptor.open-at", p3::open_at)?;
    }
    #[cfg(feature = "http")]
    fields::add_to_linker(linker, wasi_03)?;
    linker.allow_shadowing(false);
    Ok(())
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

type OpenAt = (
    Resource<Descriptor>,
    PathFlags,
    String,
    OpenFlags,
    DescriptorFlags,
);

/// What `descriptor.open-at` gives the guest: a descriptor, or why not.
type Opened = wasmtime::Result<(Result<Resource<Descriptor>, ErrorCode>,)>;

/// `descriptor.open-at`, holding one of the instance's descriptors for as
/// long as the file is open; `quota` when there is none left.
fn open_at(
    mut store: StoreContextMut<'_, Host>,
    (dir, path_flags, path, open_flags, flags): OpenAt,
) -> Box<dyn Future<Output = Opened> + Send + '_> {
    Box::new(async move {
        let host = store.data_mut();
        let Some(ticket) = host.holdings().file_ticket() else {
            return Ok((Err(ErrorCode::Quota),));
        };
        let mut filesystem = host.filesystem();
        let opened =
            HostDescriptor::open_at(&mut filesystem, dir, path_flags, path, open_flags, flags)
                .await;
        let opened = match opened {
            Ok(opened) => opened,
            Err(err) => return Ok((Err(err.downcast()?),)),
        };
        let file = match filesystem.table.get(&opened)? {
            Descriptor::File(file) => Arc::downgrade(&file.file),
            Descriptor::Dir(dir) => Arc::downgrade(&dir.dir),
        };
        ticket.hold_file(file);
        Ok((Ok(opened),))
    })
}

mod p3 {
    //! `descriptor.open-at` of WASI 0.3, counted as 0.2's is.

    use std::pin::Pin;
    use std::sync::Arc;

    use wasmtime::component::{Accessor, Resource};
    use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p3::bindings::filesystem::types::{
        DescriptorFlags, ErrorCode, HostDescriptorWithStore, OpenFlags, PathFlags,
    };

    use crate::host::Host;

    type OpenAt = (
        Resource<Descriptor>,
        PathFlags,
        String,
        OpenFlags,
        DescriptorFlags,
    );

    type Opened = wasmtime::Result<(Result<Resource<Descriptor>, ErrorCode>,)>;

    /// Holds one of the instance's descriptors for as long as the file is
    /// open; `quota` when there is none left.
    pub(super) fn open_at(
        accessor: &Accessor<Host>,
        (dir, path_flags, path, open_flags, flags): OpenAt,
    ) -> Pin<Box<dyn Future<Output = Opened> + Send + '_>> {
        Box::pin(async move {
            let Some(ticket) = accessor.with(|mut store| store.get().holdings().file_ticket())
            else {
                return Ok((Err(ErrorCode::Quota),));
            };
            let filesystem =
                accessor.with_getter::<WasiFilesystem>(|host: &mut Host| host.filesystem());
            let opened = <WasiFilesystem as HostDescriptorWithStore<Host>>::open_at(
                &filesystem,
                dir,
                path_flags,
                path,
                open_flags,
                flags,
            )
            .await;
            let opened = match opened {
                Ok(opened) => opened,
                Err(err) => return Ok((Err(err.downcast()?),)),
            };
            let file = accessor.with(|mut store| {
                let host = store.get();
                let filesystem = host.filesystem();
                match filesystem.table.get(&opened)? {
                    Descriptor::File(file) => Ok::<_, wasmtime::Error>(Arc::downgrade(&file.file)),
                    Descriptor::Dir(dir) => Ok(Arc::downgrade(&dir.dir)),
                }
            })?;
            ticket.hold_file(file);
            Ok((Ok(opened),))
        })
    }
}

#[cfg(feature = "http")]
mod fields {
    //! `wasi:http` header maps, charged by what they hold on the host.
    //!
    //! A map is shared with its clones until one of them changes, and then
    //! copied whole (by any change, `delete` included): a clone is charged
    //! the whole map when it is made, so the copy is paid for up front.

    use wasmtime::component::{Linker, Resource};
    use wasmtime_wasi_http::FieldMap;
    use wasmtime_wasi_http::WasiHttpView as _;
    use wasmtime_wasi_http::p2::bindings::http::types::HeaderError;

    use super::{HTTP_TYPES, HTTP_TYPES_P3};
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
                    charge(host, bytes)?;
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
                    charge(host, bytes)?;
                    let done = HostFields::set(&mut host.http(), fields, name, values);
                    Ok(($result(done)?,))
                },
            )?;
            types.func_wrap(
                "[method]fields.append",
                |mut store, (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
                    let host: &mut Host = store.data_mut();
                    charge(host, entry(name.len(), value.len()))?;
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
                    charge(host, bytes)?;
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

    /// Charges `bytes` of header data to the instance; past its cap, the
    /// guest traps with the reason.
    fn charge(host: &mut Host, bytes: usize) -> wasmtime::Result<()> {
        let holdings = host.holdings();
        match holdings.budget().charge_memory(bytes) {
            Ok(()) => Ok(()),
            Err(exhausted) => {
                holdings
                    .reporter
                    .report(&format!("headers refused: {exhausted}"));
                Err(wasmtime::format_err!("{exhausted}"))
            }
        }
    }

    /// [`header_result`], for WASI 0.3.
    fn header_result_p3<T>(
        result: Result<
            T,
            wasmtime_wasi::TrappableError<
                wasmtime_wasi_http::p3::bindings::http::types::HeaderError,
            >,
        >,
    ) -> wasmtime::Result<Result<T, wasmtime_wasi_http::p3::bindings::http::types::HeaderError>>
    {
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
