//! How an allowed outbound request reaches the network: resolve its host,
//! keep only the addresses the grant may reach (see [`super::address`]),
//! connect to one of those, and nowhere else.
//!
//! Connecting to the address that was checked, rather than handing the
//! name to a connector that resolves it again, is what makes the check
//! hold: a name whose DNS answer changes between the two (DNS rebinding)
//! still reaches only a checked address.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::address::non_public;
use crate::budget::FdTicket;

/// The default of each of [`RequestOptions`]' timeouts.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What drives the connection once the response head is in; it holds the
/// socket (and its descriptor ticket) until the exchange is over.
pub(super) type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Why a request did not go out, for the guest and for the operator.
pub(super) struct Refusal {
    pub(super) error: Error,
    /// Set when the operator should hear of it (a refused address).
    pub(super) reason: Option<String>,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Self {
            error,
            reason: None,
        }
    }
}

/// Sends `request` over a new connection to an address its host resolves
/// to: any address if `private_ok`, else public ones only. `ticket` pays
/// for the socket and is given back when the connection closes.
pub(super) async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    private_ok: bool,
    ticket: FdTicket,
) -> Result<(http::Response<WasiBody>, Io), Refusal> {
    let uri = request.uri().clone();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);

    // One deadline for resolving, connecting, TLS and the handshake.
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let connecting = async {
        let addresses = resolve(host, port, private_ok).await?;
        connect(&addresses).await
    };
    let stream = tokio::time::timeout_at(deadline, connecting)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let stream: Box<dyn Stream> = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(Error::InvalidDnsNameError)?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?);
        Box::new(
            tokio::time::timeout_at(deadline, tls.connect(name, stream))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?,
        )
    } else {
        Box::new(stream)
    };
    let (mut sender, connection) = tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(Error::from)?;

    // The connection is to the server itself, not a proxy: the request
    // line carries only the path.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

    let mut connection = Box::pin(connection);
    let mut connection_done = false;
    let response = tokio::time::timeout(first_byte_timeout, async {
        let sent = sender.send_request(request);
        tokio::pin!(sent);
        loop {
            tokio::select! {
                biased;
                response = &mut sent => break response.map_err(Error::from),
                closed = &mut connection, if !connection_done => {
                    closed.map_err(Error::from)?;
                    connection_done = true;
                }
            }
        }
    })
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;

    let io: Io = Box::new(async move {
        let _ticket = ticket;
        if !connection_done {
            connection.await.map_err(|err| {
                if err.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(err)
                }
            })?;
        }
        Ok(())
    });
    let response = response.map(|body| {
        TimedBody {
            body,
            between_bytes: between_bytes_timeout,
            timer: Box::pin(tokio::time::sleep(between_bytes_timeout)),
        }
        .boxed_unsync()
    });
    Ok((response, io))
}

/// The addresses `host` resolves to that may be reached: all of them if
/// `private_ok`, else the public ones. None left is a refusal, with the
/// reason for the operator.
async fn resolve(host: &str, port: u16, private_ok: bool) -> Result<Vec<SocketAddr>, Refusal> {
    let resolved: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|err| Error::DnsError {
                rcode: Some(err.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    if private_ok {
        return Ok(resolved);
    }
    let mut refused = None;
    let reachable: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|address| match non_public(address.ip()) {
            None => true,
            Some(why) => {
                refused.get_or_insert((address.ip(), why));
                false
            }
        })
        .collect();
    match refused {
        Some((ip, why)) if reachable.is_empty() => Err(Refusal {
            error: Error::DestinationIpProhibited,
            reason: Some(format!(
                "`{host}` resolves to {ip}, a {why} address, which only a grant naming it \
                 reaches (an IP literal or `localhost` in allowed_outbound_hosts, or \
                 allow_private_networks)"
            )),
        }),
        _ if reachable.is_empty() => Err(Error::DestinationNotFound.into()),
        _ => Ok(reachable),
    }
}

/// A connection to the first of `addresses` that accepts one.
async fn connect(addresses: &[SocketAddr]) -> Result<TcpStream, Refusal> {
    let mut last = Error::DestinationNotFound;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Error::ConnectionRefused;
            }
            Err(err) => last = Error::Connect(err),
        }
    }
    Err(last.into())
}

/// A connection, in the clear or over TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The TLS client settings, made once: the web's root certificates, safe
/// protocol versions.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(config))
        })
        .clone()
        .ok_or(Error::TlsProtocolError)
}

/// A response body that fails when the server pauses longer than
/// `between_bytes` between frames.
struct TimedBody {
    body: Incoming,
    between_bytes: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.between_bytes;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) if err.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Error::from(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
