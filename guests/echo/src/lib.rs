//! Echoes a request back: the body is streamed back chunk by chunk as it
//! arrives (never buffered whole), and the request line and headers come back
//! as `x-echo-*` response headers.
//!
//! With `?count` in the query it reads the whole body first and answers
//! `N bytes`, so a failed read (a body over the host's limit) happens before
//! any response is sent.

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingBody, IncomingRequest, Method, OutgoingBody, ResponseOutparam};

struct Echo;

const CHUNK: usize = 64 * 1024;

impl Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = method_name(&request.method());
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));

        if query.split('&').any(|pair| pair == "count") {
            count_body(request, out);
            return;
        }

        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("x-echo-method".into(), method.into_bytes()),
            ("x-echo-path".into(), path.as_bytes().to_vec()),
            ("x-echo-query".into(), query.as_bytes().to_vec()),
        ];
        for (name, value) in request.headers().entries() {
            headers.push((format!("x-echo-header-{name}"), value));
        }
        let borrowed: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();

        let (response, response_body) = kit::response_head(200, &borrowed);
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
    kit::respond(out, 200, &[], format!("{total} bytes\n").as_bytes());
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
