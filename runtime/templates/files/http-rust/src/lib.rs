//! {{name}}: a Mayfly function in Rust, a `wasi:http/proxy` (WASI 0.2)
//! component. Every request runs in a fresh instance, thrown away when the
//! response is done: nothing survives from one request to the next.
//!
//! It answers every path with a greeting, from the `GREETING` variable that
//! `app.toml` grants (a component sees no variable it is not granted).

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Function;

impl Guest for Function {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let body = format!("{greeting} from Rust! You asked for {path}\n");

        let headers = Fields::new();
        headers
            .append("content-type", b"text/plain; charset=utf-8")
            .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let outgoing = response.body().expect("the body, taken once");
        ResponseOutparam::set(out, Ok(response));
        let mut stream = outgoing.write().expect("the body's stream, taken once");
        stream.write_all(body.as_bytes()).expect("the client is reading");
        stream.flush().expect("the client is reading");
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("a complete body");
    }
}

wasip2::http::proxy::export!(Function);
