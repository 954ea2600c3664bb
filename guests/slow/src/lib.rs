//! Waits before it answers (`common::slow`): `?ms=N` sleeps N milliseconds
//! (at most a minute) through `wasi:clocks`, then responds `slept N ms`.
//! With `&head_first=1` it sends the response head and a first line
//! (`sleeping`) before it sleeps, so a client can tell that its request is
//! in flight.

use std::io::Write as _;

use common::slow::{HEADERS, Nap, SLEEPING};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, OutgoingBody, ResponseOutparam};

struct Slow;

impl Guest for Slow {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let nap = Nap::asked(|name| kit::query_param(&request, name));
        let done = nap.done();
        if !nap.head_first {
            kit::sleep_ms(nap.ms);
            kit::respond(out, 200, HEADERS, done.as_bytes());
            return;
        }
        let (response, body) = kit::response_head(200, HEADERS);
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().expect("response body stream");
        stream
            .write_all(SLEEPING.as_bytes())
            .expect("write response body");
        stream.flush().expect("flush response body");
        kit::sleep_ms(nap.ms);
        stream
            .write_all(done.as_bytes())
            .expect("write response body");
        stream.flush().expect("flush response body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish response body");
    }
}

wasip2::http::proxy::export!(Slow);
