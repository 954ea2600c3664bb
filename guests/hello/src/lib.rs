//! The smallest useful `wasi:http/proxy` component: answers every request with
//! a fixed greeting (`common::hello`). It is the workload of the request-path
//! benchmarks.

use common::hello::{GREETING, HEADERS};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        kit::respond(out, 200, HEADERS, GREETING.as_bytes());
    }
}

wasip2::http::proxy::export!(Hello);
