//! A component of a Spin app, written against the published spin-sdk 7
//! (the current major: `#[http_service]` on `wasi:http/handler@0.3.0`, the
//! async `spin:variables@3.0.0` and `spin:key-value@3.0.0`) exactly as a
//! Spin user writes one. The routes of `spin-v2`, its 5.x twin, on the
//! path's last segment:
//!
//! - `/hello` -> `Hello from a Spin 3 component!`
//! - `/variable?name=N` -> the component variable's value, or Spin's error
//! - `/count` -> `visits: N`, counted in the `default` store
//! - `/keys` -> the `default` store's keys, one per line (a stream)
//! - `/store?label=L` -> `opened`, or Spin's error opening the store
//! - anything else -> `spin-v3 at PATH`

use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::key_value::{Error as KvError, Store};
use spin_sdk::variables;

#[http_service]
async fn handle(request: Request) -> String {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    };
    let answer = match path.rsplit('/').next().unwrap_or_default() {
        "hello" => Ok("Hello from a Spin 3 component!".to_string()),
        "variable" => Ok(match variables::get(param("name").unwrap_or_default()).await {
            Ok(value) => value,
            Err(variables::Error::Undefined(message)) => format!("undefined: {message}"),
            Err(variables::Error::InvalidName(message)) => format!("invalid-name: {message}"),
            Err(other) => format!("error: {other:?}"),
        }),
        "count" => count().await,
        "keys" => keys().await,
        "store" => Ok(match Store::open(param("label").unwrap_or_default()).await {
            Ok(_) => "opened".to_string(),
            Err(KvError::AccessDenied) => "access-denied".to_string(),
            Err(other) => format!("error: {other:?}"),
        }),
        _ => Ok(format!("spin-v3 at {path}")),
    };
    answer.unwrap_or_else(|err| format!("error: {err:?}"))
}

async fn count() -> Result<String, KvError> {
    let store = Store::open_default().await?;
    let visits = store
        .get("visits")
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok()?.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    store.set("visits", visits.to_string().as_bytes()).await?;
    Ok(format!("visits: {visits}"))
}

async fn keys() -> Result<String, KvError> {
    let store = Store::open_default().await?;
    Ok(store.get_keys().await.collect().await?.join("\n"))
}
