//! Reads its configuration through `wasi:config/store` (`common::config`).
//!
//! - `GET /config`: every value, one `key=value` per line, sorted.
//! - `GET /config?key=K`: the value of K, or 404.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct ConfigReader;

impl Guest for ConfigReader {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = common::config::answer(kit::query_param(&request, "key"));
        kit::respond(out, status, &[], body.as_bytes());
    }
}

wasip2::http::proxy::export!(ConfigReader);
