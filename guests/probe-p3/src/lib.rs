//! Reports whether anything survived from an earlier request, like `probe`,
//! its WASI 0.2 twin, with the same reading (`common::probe`): a fresh
//! instance always answers `count=1 heap_items=1 pages_at_start=<initial>`.
//! `?grow=N` grows linear memory by N pages after taking the reading, so a
//! following request can check that the growth did not carry over.

use kit3::http::{ErrorCode, Request, Response};

struct Probe;

impl kit3::Handler for Probe {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let body = common::probe::visit(|| kit3::http::path_with_query(&request));
        kit3::http::respond(200, common::probe::HEADERS, body)
    }
}

kit3::export_handler!(Probe);
