//! A visit counter kept in the `default` key-value store: the routes and
//! answers of `common::counter` (`/count`, `/count/peek`, the
//! compare-and-swap and open-loop routes, `/count/log`; `?store=NAME` for
//! another store), served over `wasi:http/proxy`.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Counter;

impl Guest for Counter {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, _) = common::query::split(&path_with_query);
        let (status, body) = common::counter::answer(path, |name| kit::query_param(&request, name));
        kit::respond(out, status, &[], body.as_bytes());
    }
}

wasip2::http::proxy::export!(Counter);
