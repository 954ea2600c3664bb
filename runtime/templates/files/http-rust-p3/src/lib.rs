//! {{name}}: a Mayfly function in Rust, a `wasi:http/handler@0.3.0`
//! (WASI 0.3) component: `handle` is async, and bodies are streams. Every
//! request runs in a fresh instance, thrown away when the response is
//! done: nothing survives from one request to the next.
//!
//! It answers every path with a greeting, from the `GREETING` variable that
//! `app.toml` grants (a component sees no variable it is not granted).

wit_bindgen::generate!({
    path: "wit",
    world: "mayfly:service-p3/service",
    generate_all,
});

use exports::wasi::http::handler::Guest;
use wasi::http::types::{ErrorCode, Fields, Request, Response};

struct Function;

impl Guest for Function {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
        let path = request.get_path_with_query().unwrap_or_else(|| "/".into());
        let body = format!("{greeting} from Rust on WASI 0.3! You asked for {path}\n");

        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .map_err(|err| ErrorCode::InternalError(Some(format!("{err:?}"))))?;
        let (mut contents, reader) = wit_stream::new();
        let (trailers, trailers_reader) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(headers, Some(reader), trailers_reader);
        // The body is written once the host has the response, in a task of
        // its own: the instance lasts until it is done.
        wit_bindgen::spawn_local(async move {
            contents.write_all(body.into_bytes()).await;
            drop(contents);
            let _ = trailers.write(Ok(None)).await;
        });
        Ok(response)
    }
}

export!(Function);
