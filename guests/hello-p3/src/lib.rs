//! The smallest useful `wasi:http/handler@0.3.0` component: answers every
//! request with the same greeting as `hello`, its WASI 0.2 twin.

use kit3::http::{ErrorCode, Request, Response};

struct Hello;

impl kit3::Handler for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        kit3::http::respond(
            200,
            &[("content-type", b"text/plain; charset=utf-8")],
            "Hello from Mayfly!\n",
        )
    }
}

kit3::export_handler!(Hello);
