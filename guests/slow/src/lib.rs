//! Waits before it answers: `?ms=N` sleeps N milliseconds (at most a minute)
//! through `wasi:clocks`, then responds `slept N ms`. Used to have requests in
//! flight on purpose, for example during a graceful shutdown.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

const MAX_MS: u64 = 60_000;

struct Slow;

impl Guest for Slow {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let ms = kit::query_param(&request, "ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(100)
            .min(MAX_MS);
        kit::sleep_ms(ms);
        let body = format!("slept {ms} ms\n");
        kit::respond(out, 200, &[("content-type", b"text/plain")], body.as_bytes());
    }
}

wasip2::http::proxy::export!(Slow);
