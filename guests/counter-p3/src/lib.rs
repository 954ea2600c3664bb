//! A visit counter kept in the `default` key-value store, like `counter`,
//! its WASI 0.2 twin, with the same routes and answers (`common::counter`):
//! a WASI 0.3 component importing the same (synchronous) `wasi:keyvalue`,
//! `wasi:config` and `wasi:logging` interfaces as the 0.2 guests.
//!
//! - `GET /count...`: `common::counter`'s routes.
//! - `GET /config`: every configuration value, one `key=value` per line,
//!   sorted; `GET /config?key=K`: the value of K, or 404 (as
//!   `config-reader` answers, `common::config`).

use kit3::http::{ErrorCode, Request, Response, query_param};

struct Counter;

impl kit3::Handler for Counter {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = kit3::http::path(&request);
        let (status, body) = if path == "/config" {
            common::config::answer(query_param(&request, "key"))
        } else {
            common::counter::answer(&path, |name| query_param(&request, name))
        };
        kit3::http::respond(status, &[], body)
    }
}

kit3::export_handler!(Counter);
