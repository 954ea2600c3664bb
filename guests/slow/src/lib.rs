//! Waits before it answers: `?ms=N` sleeps N milliseconds (at most a minute)
//! through `wasi:clocks`, then responds `slept N ms`. With `&head_first=1` it
//! sends the response head and a first line (`sleeping`) before it sleeps, so
//! a client can tell that its request is in flight.

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, OutgoingBody, ResponseOutparam};

const MAX_MS: u64 = 60_000;

struct Slow;

impl Guest for Slow {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let ms = kit::query_param(&request, "ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(100)
            .min(MAX_MS);
        let done = format!("slept {ms} ms\n");
        if kit::query_param(&request, "head_first").as_deref() != Some("1") {
            kit::sleep_ms(ms);
            kit::respond(
                out,
                200,
                &[("content-type", b"text/plain")],
                done.as_bytes(),
            );
            return;
        }
        let (response, body) = kit::response_head(200, &[("content-type", b"text/plain")]);
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().expect("response body stream");
        stream
            .write_all(b"sleeping\n")
            .expect("write response body");
        stream.flush().expect("flush response body");
        kit::sleep_ms(ms);
        stream
            .write_all(done.as_bytes())
            .expect("write response body");
        stream.flush().expect("flush response body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish response body");
    }
}

wasip2::http::proxy::export!(Slow);
