//! The app manifest: a TOML file naming components and the routes they serve.
//!
//! ```toml
//! [component.hello]
//! source = "hello.wasm"          # relative to this file
//!
//! [component.api]
//! source = "target/api.wasm"
//!
//! [[route]]
//! path = "/"                     # exact path
//! component = "hello"
//!
//! [[route]]
//! path = "/api/..."              # `/api` and everything below it
//! component = "api"
//!
//! [limits]                       # for every component...
//! timeout = "10s"
//!
//! [component.api.limits]         # ...unless it sets its own
//! timeout = "2s"
//! memory = "64MiB"
//! ```
//!
//! Loading happens in two stages: [`ManifestFile`] is the file as written
//! (unknown fields are errors), and [`AppSpec`] is the validated result
//! (names checked, paths resolved, routes unambiguous). Limits that depend
//! on the server (`instances`, `memory`) are checked when the app loads,
//! against the server's real settings.
//!
//! A Spin manifest (`spin.toml`) is read too, and mapped onto the same
//! [`AppSpec`] ([`spin`]).
//!
//! The files here, in the order a manifest meets them: [`file`](mod@file) (the
//! serde types), `resolve` (checks and resolution, and
//! [`AppSpec::from_manifest`]), [`spec`] (the result), [`error`].

pub mod error;
pub mod file;
mod resolve;
pub mod spec;
pub mod spin;

pub use self::error::{ManifestError, toml_error};
pub use self::file::ManifestFile;
pub use self::resolve::{EnvLookup, component_name_from_file};
pub use self::spec::{AppKind, AppSpec, ComponentSpec, LimitFields, Source};
