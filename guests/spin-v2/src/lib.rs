//! A component of a Spin app, written against the published spin-sdk 5.2
//! exactly as a Spin user writes one (`#[http_component]`, Spin's
//! variables, key-value and outbound HTTP), so that Mayfly is shown to run
//! Spin apps unmodified. Routes, on the path's last segment:
//!
//! - `/hello` -> `Hello from a Spin component!`
//! - `/variable?name=N` -> the component variable's value, or Spin's error
//!   (`undefined: ...`, `invalid-name: ...`)
//! - `/count` -> `visits: N`, counted in the `default` store
//! - `/keys` -> the `default` store's keys, one per line
//! - `/store?label=L` -> `opened`, or Spin's error opening the store
//! - `/call?url=U` -> `STATUS BODY` of a GET to U, or the send error
//! - `/headers` -> the request's `spin-*` headers, `name: value` a line,
//!   sorted
//! - anything else -> `spin-v2 at PATH`

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::{Error as KvError, Store};
use spin_sdk::variables;

#[http_component]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let path = request.path().to_string();
    let query = request.query().to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    };
    let body = match path.rsplit('/').next().unwrap_or_default() {
        "hello" => "Hello from a Spin component!".to_string(),
        "variable" => match variables::get(&param("name").unwrap_or_default()) {
            Ok(value) => value,
            Err(variables::Error::Undefined(message)) => format!("undefined: {message}"),
            Err(variables::Error::InvalidName(message)) => format!("invalid-name: {message}"),
            Err(other) => format!("error: {other:?}"),
        },
        "count" => {
            let store = Store::open_default()?;
            let visits = store
                .get("visits")?
                .and_then(|bytes| String::from_utf8(bytes).ok()?.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            store.set("visits", visits.to_string().as_bytes())?;
            format!("visits: {visits}")
        }
        "keys" => Store::open_default()?.get_keys()?.join("\n"),
        "store" => match Store::open(&param("label").unwrap_or_default()) {
            Ok(_) => "opened".to_string(),
            Err(KvError::AccessDenied) => "access-denied".to_string(),
            Err(other) => format!("error: {other:?}"),
        },
        "call" => {
            let url = param("url").unwrap_or_default();
            let outbound = Request::get(url).build();
            match spin_sdk::http::send::<_, Response>(outbound).await {
                Ok(response) => format!(
                    "{} {}",
                    response.status(),
                    String::from_utf8_lossy(response.body())
                ),
                Err(err) => format!("send failed: {err}"),
            }
        }
        "headers" => {
            let mut lines: Vec<String> = request
                .headers()
                .filter(|(name, _)| name.starts_with("spin-"))
                .map(|(name, value)| format!("{name}: {}", value.as_str().unwrap_or("?")))
                .collect();
            lines.sort();
            lines.join("\n")
        }
        _ => format!("spin-v2 at {path}"),
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(body)
        .build())
}
