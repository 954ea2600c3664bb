//! Calls another component of the app through `wasi:http/client@0.3.0`
//! and answers with what it got, so the host can test internal calls from
//! WASI 0.3 to 0.2 and back (`capabilities` makes the same calls from 0.2,
//! with `?op=fetch&url=U`, and answers the same way).
//!
//! - `?to=NAME&path=/x`: a GET to `http://NAME.mayfly.internal/x` (path
//!   `/` if not given).
//! - `?url=U`: a GET to U instead (so `?op=fetch&url=U` works as it does
//!   on `capabilities`).
//!
//! The answer is 200 with `STATUS BODY` of the callee's response; 403
//! `denied: ErrorCode::HttpRequestDenied` if the host refused the call,
//! 502 `denied: ErrorCode::...` for any other error code, 502
//! `body cut off: ErrorCode::...` if the callee's body failed, 400 for a
//! malformed URL.
//!
//! - `&forward=1`: answers with the callee's response itself instead: its
//!   status, headers, body and trailers, the body passed through as a
//!   stream as it arrives (the host's stream handed back to the host).
//! - `?op=getenv&name=N`: the value of environment variable N (404
//!   `environment variable not found` if not set), as `capabilities`
//!   answers, so each hop of a chain can show its own grants.

use kit3::http::{ErrorCode, Request, Response, query_param};

struct Chain;

impl kit3::Handler for Chain {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let headers: &[(&str, &[u8])] = &[("content-type", b"text/plain")];
        if query_param(&request, "op").as_deref() == Some("getenv") {
            let name = query_param(&request, "name").unwrap_or_default();
            return match kit3::cli::var(&name) {
                Some(value) => kit3::http::respond(200, headers, value),
                None => kit3::http::respond(404, headers, "environment variable not found"),
            };
        }
        let url = match (query_param(&request, "url"), query_param(&request, "to")) {
            (Some(url), _) => url,
            (None, Some(to)) => {
                let path = query_param(&request, "path").unwrap_or_default();
                let slash = if path.starts_with('/') { "" } else { "/" };
                format!("http://{to}.mayfly.internal{slash}{path}")
            }
            (None, None) => return kit3::http::respond(400, headers, "give to=NAME or url=U"),
        };
        if query_param(&request, "forward").as_deref() == Some("1") {
            return match kit3::http::get(&url).await {
                Ok(response) => forward(response),
                Err(err) => {
                    let (status, body) = kit3::http::fetch_answer(Err(err));
                    kit3::http::respond(status, headers, body)
                }
            };
        }
        let (status, body) = kit3::http::fetch_answer(kit3::http::get_all(&url).await);
        kit3::http::respond(status, headers, body)
    }
}

/// The callee's response as ours: its body and trailers are the host's
/// stream and future, handed back as they are.
fn forward(response: Response) -> Result<Response, ErrorCode> {
    let status = response.get_status_code();
    let headers = response.get_headers().clone();
    let (_, done) = kit3::wit_future::new(|| Ok(()));
    let (body, trailers) = Response::consume_body(response, done);
    let (ours, _transmitted) = Response::new(headers, Some(body), trailers);
    ours.set_status_code(status)
        .map_err(|()| kit3::http::internal(format!("invalid status {status}")))?;
    Ok(ours)
}

kit3::export_handler!(Chain);
