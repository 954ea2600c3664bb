//! `counter` and `counter-p3`: a visit counter kept in a key-value store.
//!
//! - `GET /count`: adds one to `visits` (atomically) and answers the new
//!   total, logging it through `wasi:logging`.
//! - `GET /count/peek`: the current total, without adding.
//! - `GET /count/cas-conflict`: reads `visits` for a compare-and-swap, lets
//!   another write change it, then swaps: answers what the swap reported.
//! - `GET /count/cas-add`: adds one through a compare-and-swap loop,
//!   answering the new total and how many conflicts it retried.
//! - `GET /count/cas-hold`: sets `held` to 1 MiB, then opens
//!   compare-and-swap handles on it (keeping them all) until one is
//!   refused; answers how many it held and why the next was refused, and
//!   whether one opens again once they are all dropped.
//! - `GET /count/open-loop?n=N`: opens the store N times, keeping every
//!   bucket; answers how many opened, how many were refused, and why the
//!   first was.
//! - `GET /count/log?context=C&message=M`: logs M with context C, as is.
//! - `?store=NAME` on any of them uses store NAME instead of `default`.

use crate::state::{atomics, describe, logging, store};

const KEY: &str = "visits";

/// The answer to a request for `path` (without its query), whose query
/// parameters `param` reads: its status and body.
pub fn answer(path: &str, param: impl Fn(&str) -> Option<String>) -> (u16, String) {
    let name = param("store").unwrap_or_else(|| "default".into());
    if path == "/count/open-loop" {
        let n = param("n").and_then(|n| n.parse().ok()).unwrap_or(1);
        return (200, open_loop(&name, n));
    }
    if path == "/count/log" {
        let context = param("context").unwrap_or_default();
        let message = param("message").unwrap_or_default();
        logging::log(logging::Level::Warn, &context, &message);
        return (200, "logged\n".into());
    }
    let bucket = match store::open(&name) {
        Ok(bucket) => bucket,
        Err(err) => {
            let status = if matches!(err, store::Error::AccessDenied) {
                403
            } else {
                500
            };
            return (
                status,
                format!("cannot open store `{name}`: {}\n", describe(&err)),
            );
        }
    };
    match path {
        "/count" => match atomics::increment(&bucket, KEY, 1) {
            Ok(total) => {
                logging::log(
                    logging::Level::Info,
                    "counter",
                    &format!("visit number {total}"),
                );
                (200, format!("visits: {total}\n"))
            }
            Err(err) => (500, format!("increment failed: {}\n", describe(&err))),
        },
        "/count/peek" => match bucket.get(KEY) {
            Ok(value) => {
                let text = value.map(|v| String::from_utf8_lossy(&v).into_owned());
                (
                    200,
                    format!("visits: {}\n", text.unwrap_or_else(|| "0".into())),
                )
            }
            Err(err) => (500, format!("get failed: {}\n", describe(&err))),
        },
        "/count/cas-conflict" => cas_conflict(&bucket),
        "/count/cas-add" => cas_add(&bucket),
        "/count/cas-hold" => cas_hold(&bucket),
        _ => (404, "no such counter endpoint\n".into()),
    }
}

fn cas_conflict(bucket: &store::Bucket) -> (u16, String) {
    let cas = match atomics::Cas::new(bucket, KEY) {
        Ok(cas) => cas,
        Err(err) => return (500, format!("cas failed: {}\n", describe(&err))),
    };
    // Another writer gets in between the read and the swap.
    if let Err(err) = bucket.set(KEY, b"1000") {
        return (500, format!("set failed: {}\n", describe(&err)));
    }
    match atomics::swap(cas, b"1") {
        Ok(()) => (200, "swapped, though the key had changed\n".into()),
        Err(atomics::CasError::CasFailed(now)) => {
            let current = now.current().ok().flatten().unwrap_or_default();
            (
                409,
                format!(
                    "conflict: the value is now {}\n",
                    String::from_utf8_lossy(&current)
                ),
            )
        }
        Err(atomics::CasError::StoreError(err)) => {
            (500, format!("swap failed: {}\n", describe(&err)))
        }
    }
}

fn cas_add(bucket: &store::Bucket) -> (u16, String) {
    let mut cas = match atomics::Cas::new(bucket, KEY) {
        Ok(cas) => cas,
        Err(err) => return (500, format!("cas failed: {}\n", describe(&err))),
    };
    let mut conflicts = 0;
    loop {
        let current = cas.current().ok().flatten();
        let value: i64 = current
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse().ok())
            .unwrap_or(0);
        let next = value + 1;
        match atomics::swap(cas, next.to_string().as_bytes()) {
            Ok(()) => return (200, format!("visits: {next} conflicts: {conflicts}\n")),
            Err(atomics::CasError::CasFailed(now)) => {
                conflicts += 1;
                cas = now;
            }
            Err(atomics::CasError::StoreError(err)) => {
                return (500, format!("swap failed: {}\n", describe(&err)));
            }
        }
    }
}

fn open_loop(name: &str, n: usize) -> String {
    // Every bucket is kept until the answer is written out.
    let mut buckets = Vec::new();
    let mut refused = 0;
    let mut first = None;
    for _ in 0..n {
        match store::open(name) {
            Ok(bucket) => buckets.push(bucket),
            Err(err) => {
                refused += 1;
                first.get_or_insert_with(|| describe(&err));
            }
        }
    }
    match first {
        Some(first) => format!(
            "opened {}, refused {refused} (first: {first})\n",
            buckets.len()
        ),
        None => format!("opened {}\n", buckets.len()),
    }
}

fn cas_hold(bucket: &store::Bucket) -> (u16, String) {
    if let Err(err) = bucket.set("held", &vec![b'x'; 1 << 20]) {
        return (500, format!("set failed: {}\n", describe(&err)));
    }
    let mut handles = Vec::new();
    let refused = loop {
        if handles.len() == 100 {
            return (500, "100 handles held, none refused\n".into());
        }
        match atomics::Cas::new(bucket, "held") {
            Ok(cas) => handles.push(cas),
            Err(err) => break describe(&err),
        }
    };
    let held = handles.len();
    drop(handles);
    let again = match atomics::Cas::new(bucket, "held") {
        Ok(_) => "ok".to_string(),
        Err(err) => describe(&err),
    };
    (
        200,
        format!("held {held}, then: {refused}\nafter dropping them: {again}\n"),
    )
}
