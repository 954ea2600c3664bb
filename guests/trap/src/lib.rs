//! A guest that fails on purpose. By default it panics before it responds
//! (the client must get a 500). With `?when=mid-body` it sends the response
//! head and part of the body first, then panics (the client must see the
//! response cut short, never a connection left hanging).

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Trap;

impl Guest for Trap {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if kit::query_param(&request, "when").as_deref() == Some("mid-body") {
            let (response, body) = kit::response_head(200, &[("content-type", b"text/plain")]);
            ResponseOutparam::set(out, Ok(response));
            let mut stream = body.write().expect("response body stream");
            stream.write_all(b"partial").expect("write response body");
            stream.flush().expect("flush response body");
            panic!("trap guest: panicking mid-body on purpose");
        }
        panic!("trap guest: panicking before the response on purpose");
    }
}

wasip2::http::proxy::export!(Trap);
