//! Bindings and helpers shared by Mayfly's WASI 0.3 guest components (the
//! `*-p3` guests), so that each guest is short: a handler is
//!
//! ```ignore
//! struct Hello;
//!
//! impl kit3::Handler for Hello {
//!     async fn handle(request: Request) -> Result<Response, ErrorCode> {
//!         kit3::http::respond(200, &[], "hi\n")
//!     }
//! }
//!
//! kit3::export_handler!(Hello);
//! ```
//!
//! The bindings come from `wit/service-p3` (`mayfly:service-p3`): its
//! `guest` world has every import a guest may use (`wasi:http@0.3.0` types
//! and client, `wasi:cli`, clocks, random and files `@0.3.0`, and the same
//! key-value, config and logging interfaces as the WASI 0.2 guests); a
//! component imports only what its code calls. The `handler` and `command`
//! worlds hold the two exports, `wasi:http/handler@0.3.0` and
//! `wasi:cli/run@0.3.0`, each with its own export macro. What a guest
//! shares with its 0.2 twin (and the state interfaces' one binding) is in
//! `common`.
//!
//! Rust's standard library on `wasm32-wasip2` still imports a few WASI 0.2
//! interfaces (`wasi:cli/*@0.2.x`, `wasi:io`; a panic's message goes to the
//! 0.2 stderr), so a host runs these components with 0.2 and 0.3 both
//! linked. Everything else a guest does on purpose goes through 0.3.

pub mod cli;
pub mod fs;
pub mod http;

/// Attacks shared by the hostile guests.
pub use common::attacks;
/// The state interfaces (`wasi:keyvalue`, `wasi:config`, `wasi:logging`),
/// synchronous, and imported by a 0.3 component as a 0.2 one imports them:
/// bound once, in `common`, for both worlds.
pub use common::state;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/service-p3",
        world: "mayfly:service-p3/guest",
        // The state interfaces are the 0.2 guests' own: one binding, so
        // that `common`'s logic takes either world's handles.
        with: {
            "wasi:keyvalue/store@0.2.0-draft2": common::state::store,
            "wasi:keyvalue/atomics@0.2.0-draft2": common::state::atomics,
            "wasi:keyvalue/batch@0.2.0-draft2": common::state::batch,
            "wasi:config/store@0.2.0-rc.1": common::state::config,
            "wasi:logging/logging@0.1.0-draft": common::state::logging,
        },
        generate_all,
    });
}

#[doc(hidden)]
pub mod handler {
    wit_bindgen::generate!({
        path: "../../wit/service-p3",
        world: "mayfly:service-p3/handler",
        with: {
            "wasi:http/types@0.3.0": crate::bindings::wasi::http::types,
            "wasi:clocks/types@0.3.0": crate::bindings::wasi::clocks::types,
        },
        pub_export_macro: true,
        export_macro_name: "export_handler",
        default_bindings_module: "::kit3::handler",
    });
}

#[doc(hidden)]
pub mod command {
    wit_bindgen::generate!({
        path: "../../wit/service-p3",
        world: "mayfly:service-p3/command",
        pub_export_macro: true,
        export_macro_name: "export_command",
        default_bindings_module: "::kit3::command",
    });
}

pub use bindings::wasi;
pub use bindings::{wit_future, wit_stream};
/// Runs a future beside the current task; the instance's task lasts until
/// every future spawned in it is done (so a response body can be written
/// after `handle` has returned the response).
pub use wit_bindgen::spawn_local as spawn;
/// Lets the host and the instance's other tasks run before this one goes
/// on.
pub use wit_bindgen::yield_async;

/// What a command implements: `wasi:cli/run@0.3.0`'s `run`.
pub use command::exports::wasi::cli::run::Guest as Command;
/// What an HTTP guest implements: `wasi:http/handler@0.3.0`'s `handle`.
pub use handler::exports::wasi::http::handler::Guest as Handler;

/// Exports a [`Command`] as the component's `wasi:cli/run@0.3.0`. The
/// crate must be a `cdylib`: a binary would also export `wasi:cli/run@0.2`
/// from the standard library.
pub use command::export_command;
/// Exports a [`Handler`] as the component's `wasi:http/handler@0.3.0`.
pub use handler::export_handler;

/// Waits `ms` milliseconds through `wasi:clocks/monotonic-clock@0.3.0`.
pub async fn sleep_ms(ms: u64) {
    wasi::clocks::monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
}
