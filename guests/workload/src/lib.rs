//! The work `mayfly compare` measures, shared by the command (`main.rs`,
//! built as a component and as a native executable) and the HTTP handler
//! (`workload-http`), so every mode runs the same code.

/// The start-up dominated workload: nothing but an answer.
pub fn trivial() -> &'static str {
    "ok"
}

/// The most records `json` builds, so that a request cannot ask for an
/// unbounded document.
pub const MAX_RECORDS: usize = 1_000_000;

/// Builds a JSON document of `records` records (at most [`MAX_RECORDS`]),
/// serialises it, parses it back and transforms it (totals and upper-cased
/// names); returns a one-line summary.
pub fn json(records: usize) -> String {
    let records = records.min(MAX_RECORDS);
    let document: Vec<serde_json::Value> = (0..records)
        .map(|i| serde_json::json!({ "id": i, "name": format!("item-{i}"), "price": i % 97, "tags": ["a", "b"] }))
        .collect();
    let text = serde_json::to_string(&document).expect("serialise");
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&text).expect("parse");
    let total: u64 = parsed.iter().filter_map(|r| r["price"].as_u64()).sum();
    let names: Vec<String> = parsed
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_uppercase))
        .collect();
    format!(
        "records={} bytes={} total={total} last={}",
        parsed.len(),
        text.len(),
        names.last().cloned().unwrap_or_default()
    )
}
