//! The smallest useful `wasi:http/handler@0.3.0` component: answers every
//! request with the same greeting (`common::hello`) as `hello`, its WASI 0.2
//! twin.

use common::hello::{GREETING, HEADERS};
use kit3::http::{ErrorCode, Request, Response};

struct Hello;

impl kit3::Handler for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        kit3::http::respond(200, HEADERS, GREETING)
    }
}

kit3::export_handler!(Hello);
