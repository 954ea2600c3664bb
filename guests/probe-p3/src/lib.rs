//! Reports whether anything survived from an earlier request, like `probe`,
//! its WASI 0.2 twin. A fresh instance always answers
//! `count=1 heap_items=1 pages_at_start=<initial>`; any other count means a
//! global, the heap or the memory size leaked across requests. `?grow=N`
//! grows linear memory by N pages after taking the reading, so a following
//! request can check that the growth did not carry over.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use kit3::http::{ErrorCode, Request, Response};

/// Lives in the data segment: reset only if the instance's memory is fresh.
static COUNT: AtomicU32 = AtomicU32::new(0);
/// Lives on the heap: reset only if the allocator's state is fresh too.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Probe;

impl kit3::Handler for Probe {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let pages_at_start = core::arch::wasm32::memory_size(0);
        let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        let heap_items = {
            let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            seen.push(kit3::http::path_with_query(&request));
            seen.len()
        };
        let grow = kit3::http::query_param(&request, "grow")
            .and_then(|pages| pages.parse::<usize>().ok())
            .unwrap_or(0);
        if grow > 0 {
            core::arch::wasm32::memory_grow(0, grow);
        }
        let body =
            format!("count={count} heap_items={heap_items} pages_at_start={pages_at_start}\n");
        kit3::http::respond(200, &[("content-type", b"text/plain")], body)
    }
}

kit3::export_handler!(Probe);
