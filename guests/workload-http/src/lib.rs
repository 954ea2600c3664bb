//! `mayfly compare`'s workload behind `wasi:http/proxy`, for the HTTP
//! variant: the same code as the `workload` command, answering
//!
//! - `GET /trivial`: `ok`
//! - `GET /json/N`: the summary of the N-record JSON workload
//!
//! with the same text the command prints, so the CGI-style container host
//! and `mayfly serve` are compared on identical answers.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Workload;

impl Guest for Workload {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        let answer = match path.strip_prefix('/').unwrap_or(path).split_once('/') {
            None if path == "/trivial" => Some(workload::trivial().to_string()),
            Some(("json", records)) => records.parse().ok().map(workload::json),
            _ => None,
        };
        match answer {
            Some(text) => kit::respond(
                out,
                200,
                &[("content-type", b"text/plain")],
                format!("{text}\n").as_bytes(),
            ),
            None => kit::respond(out, 404, &[], b"try /trivial or /json/N\n"),
        }
    }
}

wasip2::http::proxy::export!(Workload);
