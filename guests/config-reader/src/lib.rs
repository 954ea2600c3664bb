//! Reads its configuration through `wasi:config/store`.
//!
//! - `GET /config`: every value, one `key=value` per line, sorted.
//! - `GET /config?key=K`: the value of K, or 404.

use kit::state::config;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct ConfigReader;

impl Guest for ConfigReader {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = match kit::query_param(&request, "key") {
            Some(key) => match config::get(&key) {
                Ok(Some(value)) => (200, value),
                Ok(None) => (404, format!("{key} is not set\n")),
                Err(err) => (500, format!("config error: {err:?}\n")),
            },
            None => match config::get_all() {
                Ok(mut all) => {
                    all.sort();
                    (200, all.iter().map(|(k, v)| format!("{k}={v}\n")).collect())
                }
                Err(err) => (500, format!("config error: {err:?}\n")),
            },
        };
        kit::respond(out, status, &[], body.as_bytes());
    }
}

wasip2::http::proxy::export!(ConfigReader);
