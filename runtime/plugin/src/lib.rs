//! # mayfly-plugin
//!
//! Embedding untrusted plugins in any Rust program.
//!
//! Mayfly supplies the sandbox; the host program keeps its own WIT world.
//! The host generates bindings for its world with wasmtime's
//! [`bindgen!`](wasmtime::component::bindgen), loads a plugin once through a
//! [`PluginEngine`] (compiled through the same cache as `mayfly serve`,
//! linked, pre-instantiated), declares what the plugin may reach and how much
//! it may use with a [`PluginBuilder`], and then calls it: every
//! [`Plugin::call`] runs in a fresh instance with its own store, deadline,
//! memory cap and fuel, unless the plugin was declared stateless with
//! [`PluginBuilder::reuse_instances`].
//!
//! The host's world may import functions of its own for the plugin to call:
//! link them with [`PluginBuilder::link`] and the `add_to_linker` that
//! `bindgen!` generated, implemented on Mayfly's [`Host`] (the store's
//! data). Per-call state for them goes in the store with
//! [`Host::set_user`] and is reached with [`Host::user_mut`].
//!
//! ```
//! use std::time::Duration;
//! use mayfly_plugin::Host;
//! use mayfly_plugin::{PluginEngine, PluginError};
//! use wasmtime::component::HasSelf;
//!
//! // The host's own world: a `log` import, a `transform` export.
//! wasmtime::component::bindgen!({
//!     inline: "
//!         package example:filter;
//!         world filter {
//!             import log: func(message: string);
//!             export transform: func(input: list<u8>) -> result<list<u8>, string>;
//!         }
//!     ",
//!     exports: { default: async },
//! });
//!
//! /// This call's log: the host keeps at most 100 lines.
//! #[derive(Default)]
//! struct Lines(Vec<String>);
//!
//! impl FilterImports for Host {
//!     fn log(&mut self, message: String) {
//!         if let Some(Lines(lines)) = self.user_mut::<Lines>() {
//!             if lines.len() < 100 {
//!                 lines.push(message);
//!             }
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), PluginError> {
//! # let path = mayfly_guests::PLUGIN_UPPER;
//! let engine = PluginEngine::new()?;
//! let plugin = engine
//!     .plugin()
//!     .timeout(Duration::from_millis(500))
//!     .memory(16 << 20)
//!     .env("MODE", "strict")
//!     .link(|linker| Filter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
//!     // A plugin built for another world is refused here, not at a call.
//!     .check(|pre| FilterPre::new(pre.clone()).map(drop))
//!     .load(path)?;
//!
//! let (output, Lines(lines)) = plugin
//!     .call(async |store, instance| {
//!         store.data_mut().set_user(Lines::default());
//!         let filter = Filter::new(&mut *store, instance)?;
//!         let output = filter.call_transform(&mut *store, b"some text").await?;
//!         Ok((output, store.data_mut().take_user::<Lines>().unwrap_or_default()))
//!     })
//!     .await?;
//! assert_eq!(output, Ok(b"SOME TEXT".to_vec()));
//! assert_eq!(lines, ["upper-casing 9 bytes"]);
//! # Ok(())
//! # }
//! ```
//!
//! A plugin can do nothing it was not granted. Files, environment variables
//! and (with the `http` feature) outbound HTTP hosts are granted with the
//! builder; raw sockets and name lookups never are. A plugin that reaches for a file system without a
//! directory grant, or for a socket, is stopped, and the call fails with
//! [`PluginError::Denied`]. Its stdout and stderr are captured, 16 KiB per
//! call at most, and never printed: what it wrote on stderr is attached to
//! a [`PluginError::Trap`]. Whatever the plugin does (loop, exhaust its
//! memory, panic, recurse without end, return values that break the
//! component model's rules), the call returns a [`PluginError`] and the host
//! goes on; calls from many threads and tasks at once are safe.
//!
//! The crate depends on the sandbox alone: no HTTP server, no key-value
//! backend, no command-line parser. Its one feature, `http`, gives plugins
//! outbound HTTP through `wasi:http` (`PluginBuilder::allow_host`) and
//! brings wasmtime-wasi-http and hyper with it.
//!
//! ## Async worlds
//!
//! A world may declare functions `async` (component-model async, as WASI
//! 0.3 does): the plugin then awaits the host's async imports, may have
//! several pending at once, and may run tasks of its own. Such plugins need
//! an engine built with [`EngineSettings::wasi_03`], which also links the
//! WASI 0.3 interfaces (granted and denied as the 0.2 ones are); any other
//! engine refuses them at load with a [`PluginError::Invalid`] that says
//! so. For an async import, `bindgen!` generates a `*WithStore` trait,
//! implemented on `HasSelf<Host>`: its function gets an
//! [`Accessor`](wasmtime::component::Accessor), through which it reaches the
//! store (and the call's user value) only between its awaits. The host
//! calls an async export inside the store's event loop,
//! [`Store::run_concurrent`](wasmtime::Store::run_concurrent), within
//! [`Plugin::call`]: the same deadline, limits and [`PluginError`]s apply,
//! whether the plugin spins, or waits on an import that never answers.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use mayfly_plugin::{CompileCache, EngineSettings, Host, HostError, PluginEngine, PluginError};
//! use wasmtime::component::{Accessor, HasSelf};
//!
//! wasmtime::component::bindgen!({
//!     inline: "
//!         package example:templates;
//!         world async-filter {
//!             import log: func(message: string);
//!             import fetch: async func(key: string) -> option<list<u8>>;
//!             export transform: async func(input: list<u8>) -> result<list<u8>, string>;
//!         }
//!     ",
//!     // `fetch` may fail on the host's side, with a `HostError`.
//!     imports: { "fetch": trappable },
//! });
//!
//! /// The documents this call may fetch.
//! struct Documents(HashMap<String, Vec<u8>>);
//!
//! impl AsyncFilterImports for Host {
//!     fn log(&mut self, _message: String) {}
//! }
//!
//! impl AsyncFilterImportsWithStore<Host> for HasSelf<Host> {
//!     async fn fetch(
//!         accessor: &Accessor<Host, Self>,
//!         key: String,
//!     ) -> wasmtime::Result<Option<Vec<u8>>> {
//!         // The store is reached between awaits only (a real host would
//!         // then await its database, holding no borrow of the store).
//!         accessor.with(|mut access| {
//!             let Some(Documents(documents)) = access.get().user_mut::<Documents>() else {
//!                 return Err(HostError::new("no documents for this call").into());
//!             };
//!             Ok(documents.get(&key).cloned())
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), PluginError> {
//! # let path = mayfly_guests::PLUGIN_ASYNC;
//! let settings = EngineSettings { wasi_03: true, ..EngineSettings::default() };
//! let engine = PluginEngine::with_settings(&settings, CompileCache::disabled())?;
//! let plugin = engine
//!     .plugin()
//!     .timeout(Duration::from_millis(500))
//!     .link(|linker| AsyncFilter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
//!     .check(|pre| AsyncFilterPre::new(pre.clone()).map(drop))
//!     .load(path)?;
//!
//! let output = plugin
//!     .call(async |store, instance| {
//!         let documents = HashMap::from([("name".to_string(), b"Ada".to_vec())]);
//!         store.data_mut().set_user(Documents(documents));
//!         let filter = AsyncFilter::new(&mut *store, instance)?;
//!         // The export, and the imports it awaits, run in the event loop.
//!         store
//!             .run_concurrent(async |accessor| {
//!                 filter.call_transform(accessor, b"Hello, {name}!".to_vec()).await
//!             })
//!             .await?
//!     })
//!     .await?;
//! assert_eq!(output, Ok(b"Hello, Ada!".to_vec()));
//! # Ok(())
//! # }
//! ```
//!
//! The call is over once the export has returned its result: tasks the
//! plugin left running are dropped with its instance, and an instance
//! still running some is never reused.

#![deny(missing_docs)]

mod builder;
mod call;
mod engine;
mod error;

pub use builder::PluginBuilder;
pub use call::{MAX_IDLE_INSTANCES, Plugin};
pub use engine::PluginEngine;
pub use error::{HostError, PluginError};
/// The sandbox's parts a host program needs: the store's data (on which the
/// host implements its world's imports), directory modes, the compile
/// cache and the engine settings.
pub use mayfly_sandbox::{CompileCache, EngineSettings, FilesMode, Host};
