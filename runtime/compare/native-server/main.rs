//! The native side of `mayfly compare`'s cold start through containerd: a
//! minimal HTTP/1.1 server that answers as the `workload-http` component
//! does, by running the native workload (`/workload`, the same source) in a
//! fresh process per request, CGI style, and answering with what it
//! printed:
//!
//! - `GET /trivial`: `workload trivial` (`ok`)
//! - `GET /json/N`: `workload json N`
//!
//! It is the whole of a runc container's image besides the workload, so it
//! uses the standard library alone and is linked statically
//! (`runtime/compare/build.rs` compiles it with rustc). It listens on
//! `MAYFLY_LISTEN` (default `0.0.0.0:8080`), as the Mayfly shim does, says
//! `Serving the native workload on http://ADDR` once it does, and answers
//! each connection once (`connection: close`). It has no signal handling:
//! as a container's first process it ignores SIGTERM, and is stopped with
//! SIGKILL.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The workload, beside this server in the image.
const WORKLOAD: &str = "/workload";
/// The longest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let listen = std::env::var("MAYFLY_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let addr: SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(err) => fail(&format!("MAYFLY_LISTEN `{listen}`: {err}")),
    };
    let listener = match TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(err) => fail(&format!("cannot listen on {addr}: {err}")),
    };
    let bound = listener.local_addr().unwrap_or(addr);
    println!("Serving the native workload on http://{bound}");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                std::thread::spawn(move || answer(stream));
            }
            Err(err) => eprintln!("accept: {err}"),
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// Reads one request from `stream` and answers it.
fn answer(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let (status, body) = match read_head(&mut stream) {
        Some(head) => respond(&head),
        None => (400, "a GET request, please\n".to_string()),
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// The request's head, up to its blank line.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(head).ok()
}

/// The status and body for a request whose head is `head`.
fn respond(head: &str) -> (u16, String) {
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (request_line.next(), request_line.next().unwrap_or_default());
    if method != Some("GET") {
        return (400, "a GET request, please\n".into());
    }
    let path = target.split('?').next().unwrap_or_default();
    let args: Vec<&str> = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        None if path == "/trivial" => vec!["trivial"],
        Some(("json", records)) if records.parse::<u32>().is_ok() => vec!["json", records],
        _ => return (404, "try /trivial or /json/N\n".into()),
    };
    let output = Command::new(WORKLOAD)
        .args(&args)
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    match output {
        Ok(output) if output.status.success() => {
            (200, String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(output) => (500, format!("the workload ended: {}\n", output.status)),
        Err(err) => (500, format!("cannot run the workload: {err}\n")),
    }
}
