//! Waits before it answers, like `slow`, its WASI 0.2 twin (with the same
//! parameters and answers, `common::slow`), through `wasi:clocks@0.3.0` (an
//! `async` wait, not a blocking poll):
//!
//! - `?ms=N`: sleeps N milliseconds (at most a minute; 100 if not given),
//!   then responds `slept N ms`.
//! - `&head_first=1`: sends the response head and a first line
//!   (`sleeping`) before it sleeps, so a client can tell that its request
//!   is in flight.
//! - `?drip=N`: sends the head at once, then N lines (at most 600),
//!   `drip 1/N` to `drip N/N`, the first at once and then one every
//!   100 ms, so a client can check that each arrives as it is written.

use common::slow::{HEADERS, Nap, SLEEPING};
use kit3::http::{ErrorCode, Request, Response};

const MAX_DRIPS: u32 = 600;
const DRIP_MS: u64 = 100;

struct Slow;

impl kit3::Handler for Slow {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        if let Some(drips) = kit3::http::query_param(&request, "drip") {
            let drips = drips.parse::<u32>().unwrap_or(0).min(MAX_DRIPS);
            let (response, mut body) = kit3::http::response(200, HEADERS)?;
            kit3::spawn(async move {
                for i in 1..=drips {
                    if i > 1 {
                        kit3::sleep_ms(DRIP_MS).await;
                    }
                    if !body.write(format!("drip {i}/{drips}\n")).await {
                        return;
                    }
                }
                body.finish(None).await;
            });
            return Ok(response);
        }

        let nap = Nap::asked(|name| kit3::http::query_param(&request, name));
        let (ms, done) = (nap.ms, nap.done());
        if !nap.head_first {
            kit3::sleep_ms(ms).await;
            return kit3::http::respond(200, HEADERS, done);
        }
        let (response, mut body) = kit3::http::response(200, HEADERS)?;
        kit3::spawn(async move {
            if body.write(SLEEPING).await {
                kit3::sleep_ms(ms).await;
                body.write(done).await;
            }
            body.finish(None).await;
        });
        Ok(response)
    }
}

kit3::export_handler!(Slow);
