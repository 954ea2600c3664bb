//! The smallest useful `wasi:http/proxy` component: answers every request with
//! a fixed greeting. It is the workload of the request-path benchmarks.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        kit::respond(
            out,
            200,
            &[("content-type", b"text/plain; charset=utf-8")],
            b"Hello from Mayfly!\n",
        );
    }
}

wasip2::http::proxy::export!(Hello);
