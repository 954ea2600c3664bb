//! The one hand-written HTTP/1.1 client of the tests: bytes as given, for
//! what a well-behaved client would not send (a body that stalls, a head
//! too large) or would hide (a response cut short), and plain blocking
//! GETs for tests that run no async runtime.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::PATIENCE;

/// How long the blocking client waits to connect, and for each read: long
/// enough for a task that is still starting on a loaded machine.
const BOUND: Duration = Duration::from_secs(2 * PATIENCE.as_secs());

/// `GET path` over a new connection: the status and the body. Panics if
/// there is no response.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path).unwrap_or_else(|| panic!("GET {path} from {addr} failed"))
}

/// `GET path` over a new connection: the status and the body, or `None`
/// if the connection or the response failed.
pub fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = send_get(addr, path)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    parse_response(&response)
}

/// Sends `GET path` (with `connection: close`) over a new connection, and
/// returns the connection for its response to be read.
pub fn send_get(addr: SocketAddr, path: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, BOUND).ok()?;
    stream.set_read_timeout(Some(BOUND)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    Some(stream)
}

/// A whole response's status and body (de-chunked), or `None` if it has
/// no head.
pub fn parse_response(response: &[u8]) -> Option<(u16, String)> {
    let response = String::from_utf8_lossy(response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

/// The data of a chunked body, up to its last chunk (or as far as it is
/// whole).
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Sends `request` (a head, and maybe the start of a body) as it is, then
/// `chunks` one by one (write errors ignored: the server may answer and
/// close first), and returns whatever the server answered until it closed
/// the connection, reset it, or sent nothing for [`PATIENCE`].
pub async fn exchange(
    addr: SocketAddr,
    request: impl Into<Vec<u8>>,
    chunks: Vec<Vec<u8>>,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request = request.into();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(&request).await?;
        for chunk in chunks {
            writer.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(PATIENCE, reader.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    writing.abort();
    String::from_utf8_lossy(&answer).into_owned()
}
