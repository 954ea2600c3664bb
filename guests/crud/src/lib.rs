//! A small CRUD service: JSON documents by id in the `items` store.
//!
//! - `PUT /items/ID` with a JSON body: stores it (400 if it is not JSON).
//! - `GET /items/ID`: the document, or 404.
//! - `DELETE /items/ID`: removes it.
//! - `GET /items`: every id, as a JSON array, read page by page.
//! - `GET /items?cursor=C`: one page of ids after cursor C, as
//!   `{"keys": [...], "cursor": ...}`.
//! - `POST /items/batch?ids=A,B`: the documents of A and B in one batch
//!   read, as a JSON object (missing ids are `null`).

use kit::state::{batch, describe, store};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

struct Crud;

const JSON: (&str, &[u8]) = ("content-type", b"application/json");

impl Guest for Crud {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let full = request.path_with_query().unwrap_or_default();
        let path = full.split('?').next().unwrap_or_default().to_string();
        let method = request.method();
        let bucket = match store::open("items") {
            Ok(bucket) => bucket,
            Err(err) => {
                kit::respond(
                    out,
                    500,
                    &[],
                    format!("cannot open store `items`: {}\n", describe(&err)).as_bytes(),
                );
                return;
            }
        };
        let id = path
            .strip_prefix("/items/")
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        let (status, json, body): (u16, bool, Vec<u8>) = match (method, id.as_deref()) {
            (Method::Put, Some(id)) => {
                let body = kit::read_body(&request);
                if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                    (400, false, b"the body is not JSON\n".to_vec())
                } else {
                    match bucket.set(id, &body) {
                        Ok(()) => (200, false, format!("stored {id}\n").into_bytes()),
                        Err(err) => (
                            500,
                            false,
                            format!("set failed: {}\n", describe(&err)).into_bytes(),
                        ),
                    }
                }
            }
            (Method::Get, Some(id)) => match bucket.get(id) {
                Ok(Some(document)) => (200, true, document),
                Ok(None) => (404, false, format!("no item {id}\n").into_bytes()),
                Err(err) => (
                    500,
                    false,
                    format!("get failed: {}\n", describe(&err)).into_bytes(),
                ),
            },
            (Method::Delete, Some(id)) => match bucket.delete(id) {
                Ok(()) => (200, false, format!("deleted {id}\n").into_bytes()),
                Err(err) => (
                    500,
                    false,
                    format!("delete failed: {}\n", describe(&err)).into_bytes(),
                ),
            },
            (Method::Get, None) if path == "/items" && full.contains("cursor=") => {
                let cursor = kit::query_param(&request, "cursor");
                match bucket.list_keys(cursor.as_deref()) {
                    Ok(page) => {
                        let json = serde_json::json!({ "keys": page.keys, "cursor": page.cursor });
                        (
                            200,
                            true,
                            serde_json::to_vec(&json).expect("page serializes"),
                        )
                    }
                    Err(err) => (
                        500,
                        false,
                        format!("list failed: {}\n", describe(&err)).into_bytes(),
                    ),
                }
            }
            (Method::Get, None) if path == "/items" => match all_keys(&bucket) {
                Ok(mut keys) => {
                    keys.sort();
                    (
                        200,
                        true,
                        serde_json::to_vec(&keys).expect("keys serialize"),
                    )
                }
                Err(err) => (
                    500,
                    false,
                    format!("list failed: {}\n", describe(&err)).into_bytes(),
                ),
            },
            (Method::Post, Some("batch")) => {
                let ids: Vec<String> = kit::query_param(&request, "ids")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .collect();
                match batch::get_many(&bucket, &ids) {
                    Ok(found) => {
                        let mut object = serde_json::Map::new();
                        for (id, value) in found {
                            let value = value
                                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                                .unwrap_or(serde_json::Value::Null);
                            object.insert(id, value);
                        }
                        (
                            200,
                            true,
                            serde_json::to_vec(&object).expect("object serializes"),
                        )
                    }
                    Err(err) => (
                        500,
                        false,
                        format!("batch failed: {}\n", describe(&err)).into_bytes(),
                    ),
                }
            }
            _ => (404, false, b"no such endpoint\n".to_vec()),
        };
        let headers: &[(&str, &[u8])] = if json { &[JSON] } else { &[] };
        kit::respond(out, status, headers, &body);
    }
}

/// Every key, following the cursor page by page.
fn all_keys(bucket: &store::Bucket) -> Result<Vec<String>, store::Error> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor.as_deref())?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

wasip2::http::proxy::export!(Crud);
