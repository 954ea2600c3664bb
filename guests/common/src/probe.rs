//! `probe` and `probe-p3`: whether anything survived from an earlier
//! request. A fresh instance always answers
//! `count=1 heap_items=1 pages_at_start=<initial>`; any other count means a
//! global, the heap or the memory size leaked across requests. `?grow=N`
//! grows linear memory by N pages after taking the reading, so a following
//! request can check that the growth did not carry over. `?dirty=N` writes
//! to N separate host pages (at most [`MAX_DIRTY`]), each its own run of
//! dirty memory, after checking that each is still zero, and adds
//! `dirty=N stale=S` to the reading, S the pages an earlier request's
//! writes survived in: the memory reset of a reused slot is tested by it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Lives in the data segment: reset only if the instance's memory is fresh.
static COUNT: AtomicU32 = AtomicU32::new(0);
/// Lives on the heap: reset only if the allocator's state is fresh too.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The most pages `?dirty=N` writes to.
pub const MAX_DIRTY: usize = 256;
/// Two host pages apart, in words, so that no two written pages are one run.
const STRIDE: usize = (8 << 10) / 8;
/// Zero-initialised (so not in the memory image), within the first few MiB
/// of linear memory that a reused slot keeps resident.
static PAGES: [AtomicU64; MAX_DIRTY * STRIDE] = [const { AtomicU64::new(0) }; MAX_DIRTY * STRIDE];

/// The response's headers.
pub const HEADERS: &[(&str, &[u8])] = &[("content-type", b"text/plain")];

/// Takes the reading for one request, whose `path?query` `target` gives
/// (called once the memory's size is read, so that nothing the request
/// allocates comes before it), and grows the memory as asked: the
/// response's body.
pub fn visit(target: impl FnOnce() -> String) -> String {
    let pages_at_start = core::arch::wasm32::memory_size(0);
    let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let target = target();
    let grow = crate::query::value(&target, "grow")
        .and_then(|pages| pages.parse::<usize>().ok())
        .unwrap_or(0);
    let dirty = crate::query::value(&target, "dirty")
        .and_then(|pages| pages.parse::<usize>().ok())
        .map(|pages| pages.min(MAX_DIRTY));
    let heap_items = {
        let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.push(target);
        seen.len()
    };
    if grow > 0 {
        core::arch::wasm32::memory_grow(0, grow);
    }
    match dirty {
        Some(pages) => {
            let stale = dirty_pages(pages);
            format!(
                "count={count} heap_items={heap_items} pages_at_start={pages_at_start} \
                 dirty={pages} stale={stale}\n"
            )
        }
        None => format!("count={count} heap_items={heap_items} pages_at_start={pages_at_start}\n"),
    }
}

/// Writes to `pages` pages of [`PAGES`], a stride apart; how many of them
/// were not zero before.
fn dirty_pages(pages: usize) -> usize {
    let mut stale = 0;
    for page in 0..pages {
        let word = &PAGES[page * STRIDE];
        if word.swap(1, Ordering::Relaxed) != 0 {
            stale += 1;
        }
    }
    stale
}
