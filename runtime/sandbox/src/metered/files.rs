//! Opening a file holds one of the instance's descriptors (WASI 0.2 and
//! 0.3's `descriptor.open-at`).
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

use super::{FILESYSTEM_TYPES, FILESYSTEM_TYPES_P3};
use crate::host::Host;

/// Defines the counted `open-at` of WASI 0.2 (and 0.3 if `wasi_03`) over
/// wasmtime-wasi's.
pub(super) fn add_to_linker(linker: &mut Linker<Host>, wasi_03: bool) -> wasmtime::Result<()> {
    linker
        .instance(FILESYSTEM_TYPES)?
        .func_wrap_async("[method]descriptor.open-at", open_at)?;
    if wasi_03 {
        linker
            .instance(FILESYSTEM_TYPES_P3)?
            .func_wrap_concurrent("[method]descriptor.open-at", p3::open_at)?;
    }
    Ok(())
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
