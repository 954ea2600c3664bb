//! Echoes a request back, like `echo`, its WASI 0.2 twin: the request line
//! and headers come back as `x-echo-*` response headers, and the body is
//! copied to the response body chunk by chunk as it arrives (a `stream<u8>`
//! in, a `stream<u8>` out; never buffered whole). The body ends with the
//! trailer `x-echoed-bytes: N` (declared in a `trailer` header; a client
//! sees it if it sent `TE: trailers`).
//!
//! - `?count`: reads the whole body first and answers `N bytes`, so a failed
//!   read (a body over the host's limit) happens before any response is
//!   sent.
//! - `?fail-after=N`: after echoing N bytes, ends the response body with an
//!   error (`internal-error`) instead of trailers: a guest error mid-body,
//!   which the client must see as a response cut short.
//!
//! A request body that fails (cut off by the client or the host's limit)
//! makes it panic, as `echo` does. (What is echoed is `common::echo`.)

use kit3::http::{ErrorCode, Incoming, Request, Response};

struct Echo;

impl kit3::Handler for Echo {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let method = kit3::http::method_name(&request.get_method());
        let path_with_query = kit3::http::path_with_query(&request);
        let (path, query) = common::query::split(&path_with_query);

        if common::echo::counts(query) {
            let total = Incoming::request(request)
                .count()
                .await
                .unwrap_or_else(|code| panic!("read request body: {code:?}"));
            return kit3::http::respond(200, &[], common::echo::counted(total));
        }
        let fail_after = kit3::http::query_value(&path_with_query, "fail-after")
            .and_then(|n| n.parse::<usize>().ok());

        let mut headers =
            common::echo::headers(method, path, query, request.get_headers().copy_all());
        headers.push(("trailer".into(), b"x-echoed-bytes".to_vec()));
        let (response, mut output) = kit3::http::response(200, &common::echo::borrowed(&headers))?;

        let mut input = Incoming::request(request);
        kit3::spawn(async move {
            let mut total = 0usize;
            loop {
                if fail_after == Some(total) {
                    let reason = format!("echo-p3: failing after {total} bytes on purpose");
                    output.fail(kit3::http::internal(reason)).await;
                    return;
                }
                let Some(mut chunk) = input.read().await else {
                    break;
                };
                if let Some(limit) = fail_after {
                    chunk.truncate(limit - total);
                }
                total += chunk.len();
                if !output.write(chunk).await {
                    return;
                }
            }
            if let Err(code) = input.end().await {
                panic!("read request body: {code:?}");
            }
            if fail_after.is_some() {
                // The body ended before the failure point: fail now.
                let reason = format!("echo-p3: failing after {total} bytes on purpose");
                output.fail(kit3::http::internal(reason)).await;
                return;
            }
            let trailers = kit3::http::fields(&[("x-echoed-bytes", total.to_string().as_bytes())]);
            output.finish(trailers.ok()).await;
        });
        Ok(response)
    }
}

kit3::export_handler!(Echo);
