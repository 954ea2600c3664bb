//! Echoes a request back: the body is streamed back chunk by chunk as it
//! arrives (never buffered whole), and the request line and headers come back
//! as `x-echo-*` response headers.
//!
//! With `?count` in the query it reads the whole body first and answers
//! `N bytes`, so a failed read (a body over the host's limit) happens before
//! any response is sent. (What is echoed, and how, is `common::echo`.)

use std::io::Write as _;

use common::echo::CHUNK;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingBody, IncomingRequest, Method, OutgoingBody, ResponseOutparam};

struct Echo;

impl Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = method_name(&request.method());
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = common::query::split(&path_with_query);

        if common::echo::counts(query) {
            count_body(request, out);
            return;
        }

        let headers = common::echo::headers(method, path, query, request.headers().entries());
        let (response, response_body) = kit::response_head(200, &common::echo::borrowed(&headers));
        ResponseOutparam::set(out, Ok(response));

        let request_body = request.consume().expect("request body is consumed once");
        let mut input = request_body.stream().expect("request body stream");
        let mut output = response_body.write().expect("response body stream");
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = std::io::Read::read(&mut input, &mut buffer).expect("read request body");
            if n == 0 {
                break;
            }
            output.write_all(&buffer[..n]).expect("write response body");
        }
        output.flush().expect("flush response body");
        drop(input);
        drop(output);
        IncomingBody::finish(request_body);
        OutgoingBody::finish(response_body, None).expect("finish response body");
    }
}

fn count_body(request: IncomingRequest, out: ResponseOutparam) {
    let request_body = request.consume().expect("request body is consumed once");
    let mut input = request_body.stream().expect("request body stream");
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0usize;
    loop {
        let n = std::io::Read::read(&mut input, &mut buffer).expect("read request body");
        if n == 0 {
            break;
        }
        total += n;
    }
    kit::respond(out, 200, &[], common::echo::counted(total).as_bytes());
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

wasip2::http::proxy::export!(Echo);
