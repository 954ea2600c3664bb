//! Reports whether anything survived from an earlier request: the reading
//! of `common::probe` (a fresh instance always answers
//! `count=1 heap_items=1 pages_at_start=<initial>`). `?grow=N` grows linear
//! memory by N pages after taking the reading, so a following request can
//! check that the growth did not carry over.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Probe;

impl Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let body = common::probe::visit(|| request.path_with_query().unwrap_or_default());
        kit::respond(out, 200, common::probe::HEADERS, body.as_bytes());
    }
}

wasip2::http::proxy::export!(Probe);
