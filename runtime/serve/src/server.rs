//! The HTTP server: one listening socket, a few worker threads, graceful
//! shutdown.
//!
//! Each worker is a single-threaded tokio runtime that accepts from a
//! listening socket of its own and runs its connections and their guests
//! on its own thread. Nothing migrates between threads mid-request, so a
//! request's instance, store and buffers stay in one core's caches, and no
//! work-stealing scheduler sits between hyper and the guest. The workers'
//! sockets share the port (`SO_REUSEPORT`), and the kernel spreads new
//! connections over them: from one shared socket, the first worker to wake
//! took every connection of a burst (16 clients connecting at once all
//! landed on one worker, leaving the other idle).
//!
//! Connections are capped across workers: at the cap, a worker holds the
//! client it has just accepted and accepts no other (the kernel's backlog
//! holds the rest) until the oldest idle connection has closed to make
//! room (see `connections`), so a flood of connections delays new ones
//! instead of failing work in flight. Clients are bounded in time at every step: the request head
//! (`header_timeout`, which also ends idle keep-alive connections), each
//! pause in a request body (`body_timeout`), and each wait for the client
//! to read the response (`write_timeout`).
//!
//! After each request a worker keeps polling its sockets for a moment
//! (`busy_poll`) before it sleeps, so that a connection's next request
//! finds it awake.
//!
//! On shutdown, workers stop accepting and close their listening sockets (so
//! new connections are refused at once), let in-flight requests (and guests
//! still finishing after their response) complete within the grace period,
//! then close.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_util::task::TaskTracker;

use mayfly_host_api::outbound::{DISPATCH_QUEUE, Dispatcher, InternalCall};

use crate::busy_poll::BusyPoll;
use crate::connections::{Connections, Place};
use crate::live::LiveApp;
use crate::metrics::{ClientTimeout, Metrics};
use crate::request;
use crate::socket::ClientSocket;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads (each with its own event loop).
    pub workers: usize,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's headers, and how
    /// long a keep-alive connection may sit idle.
    pub header_timeout: Duration,
    /// Longest pause in a request body; past it, reading the body fails in
    /// the guest, and the client gets 408 unless the guest answers itself.
    pub body_timeout: Duration,
    /// Slowest pace of a request body once `body_rate_grace` has passed, in
    /// bytes per second over the time spent waiting for it (0: no bound);
    /// past it, as past `body_timeout`.
    pub min_body_rate: u64,
    /// The waiting a request body gets before its pace counts.
    pub body_rate_grace: Duration,
    /// Longest a response may wait for the client to read it; past it, the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Most client connections served at once, over all workers; past it,
    /// a worker holds the next client until an idle connection has closed
    /// to make room (so up to one more per worker is open, waiting).
    pub max_connections: usize,
    /// Largest request head (request line and headers) a client may send;
    /// beyond it, 431. At least 8 KiB.
    pub max_header_bytes: usize,
    /// The most a worker keeps polling for the next request after one,
    /// before it sleeps (see `busy_poll`); zero turns busy polling off.
    pub busy_poll: Duration,
}

/// The default connection cap: the host's half of the descriptors (guests
/// get the other half, see `mayfly_host_api::budget`), less some for
/// listeners, stores and the compile cache.
pub fn default_max_connections() -> usize {
    let host_share = mayfly_host_api::budget::ProcessBudget::get().limit();
    host_share.saturating_sub(256).max(64)
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            shutdown_grace: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            min_body_rate: 1 << 10,
            body_rate_grace: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            max_header_bytes: 64 << 10,
            busy_poll: Duration::from_micros(100),
        }
    }
}

/// How a server run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Every in-flight request finished within the grace period.
    Drained,
    /// The grace period ran out with requests still in flight.
    GraceExpired,
}

/// Bound listening sockets, one per worker, not yet serving.
pub struct Server {
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) for `workers` workers: a
    /// socket each, on the same port.
    pub fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<Self> {
        let first = listen(addr)?;
        // (The port the first one got, if `addr` asked for any.)
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers.max(1) {
            listeners.push(listen(local_addr)?);
        }
        Ok(Self {
            listeners,
            local_addr,
        })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `app` until `shutdown` resolves, then drains: workers stop
    /// accepting and in-flight requests get `options.shutdown_grace` to finish.
    pub async fn run(
        self,
        app: Arc<LiveApp>,
        options: &ServeOptions,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<Shutdown> {
        let (stop, stopped) = watch::channel(false);
        let connections = Arc::new(Connections::new(options.max_connections));
        let mut results = Vec::with_capacity(self.listeners.len());
        // Each worker holds the only handle on its socket: when it stops
        // accepting, the socket closes, and new connections are refused
        // rather than left in a backlog for nobody.
        for (index, listener) in self.listeners.into_iter().enumerate() {
            let worker = Worker {
                app: app.clone(),
                stopped: stopped.clone(),
                options: options.clone(),
                connections: connections.clone(),
            };
            let (result, receiver) = oneshot::channel();
            std::thread::Builder::new()
                .name(format!("mayfly-worker-{index}"))
                .spawn(move || {
                    let _ = result.send(worker.run(listener));
                })?;
            results.push(receiver);
        }
        shutdown.await;
        app.drain();
        let _ = stop.send(true);

        let mut outcome = Shutdown::Drained;
        for result in results {
            match result.await {
                Ok(Ok(Shutdown::Drained)) => {}
                Ok(Ok(Shutdown::GraceExpired)) => outcome = Shutdown::GraceExpired,
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(std::io::Error::other("a worker thread panicked")),
            }
        }
        Ok(outcome)
    }
}

/// A listening socket on `addr`, which other sockets may share.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted server rebind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    // The other workers' sockets bind the same port. (Linux lets only
    // sockets of the same user share it.)
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(std::net::TcpListener::from(socket))
}

struct Worker {
    app: Arc<LiveApp>,
    stopped: watch::Receiver<bool>,
    options: ServeOptions,
    /// The cap on client connections, shared by every worker.
    connections: Arc<Connections>,
}

impl Worker {
    fn run(self, listener: std::net::TcpListener) -> std::io::Result<Shutdown> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.serve(listener))
    }

    async fn serve(self, listener: std::net::TcpListener) -> std::io::Result<Shutdown> {
        let mut stopped = self.stopped.clone();
        // Calls between components of the app, made by guests on this
        // thread: every store made here gets this dispatcher.
        let (dispatcher, calls) = tokio::sync::mpsc::channel(DISPATCH_QUEUE);
        tokio::task::spawn_local(dispatch_internal(self.app.clone(), calls));
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let tracker = TaskTracker::new();
        let busy_poll = BusyPoll::new(self.options.busy_poll);
        if let Some(busy_poll) = &busy_poll {
            tokio::task::spawn_local(busy_poll.clone().run());
        }
        loop {
            // At the cap, a client that arrives waits (and this worker
            // accepts no other) until a connection makes room.
            let accepted = async {
                let stream = accept_or_back_off(&listener, "server").await;
                let place = self.connections.place().await;
                (place, stream)
            };
            tokio::select! {
                (place, stream) = accepted => {
                    let connection = Connection {
                        app: self.app.clone(),
                        dispatcher: dispatcher.clone(),
                        stopped: self.stopped.clone(),
                        tracker: tracker.clone(),
                        options: self.options.clone(),
                        place: Arc::new(place),
                        busy_poll: busy_poll.clone(),
                    };
                    tracker.spawn_local(connection.serve(stream));
                }
                _ = stopped.wait_for(|stopped| *stopped) => break,
            }
        }
        drop(listener);
        tracker.close();
        match tokio::time::timeout(self.options.shutdown_grace, tracker.wait()).await {
            Ok(()) => Ok(Shutdown::Drained),
            Err(_) => Ok(Shutdown::GraceExpired),
        }
    }
}

/// The next connection on `listener`. An accept that fails (out of file
/// descriptors, say) is logged for `what` and retried after a short pause,
/// rather than in a spin. Cancel-safe.
pub async fn accept_or_back_off(listener: &TcpListener, what: &str) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => return stream,
            Err(err) => {
                tracing::warn!("{what}: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves the internal calls of this worker's guests, each in a fresh
/// instance of the component called, whose own calls go where its
/// caller's do (this worker's dispatcher).
async fn dispatch_internal(
    app: Arc<LiveApp>,
    mut calls: tokio::sync::mpsc::Receiver<InternalCall>,
) {
    while let Some(call) = calls.recv().await {
        let Some(component) = app.current().component(&call.component).cloned() else {
            let _ = call.reply.send(None);
            continue;
        };
        tokio::task::spawn_local(async move {
            let origin = request::Origin::Component(&call.chain);
            let response = request::handle(&component, call.request, (), origin).await;
            let _ = call.reply.send(Some(response));
        });
    }
}

struct Connection {
    app: Arc<LiveApp>,
    dispatcher: Dispatcher,
    stopped: watch::Receiver<bool>,
    tracker: TaskTracker,
    options: ServeOptions,
    /// This connection's place under the cap, given back when it closes.
    place: Arc<Place>,
    /// This worker's busy polling, told when each request starts and ends.
    busy_poll: Option<Rc<BusyPoll>>,
}

impl Connection {
    async fn serve(mut self, stream: tokio::net::TcpStream) {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        let metrics = self.app.current().metrics().clone();
        let _open = OpenConnection::count(&metrics);
        let app = self.app;
        let dispatcher = self.dispatcher;
        let tracker = self.tracker;
        let max_header_bytes = self.options.max_header_bytes;
        let client = request::ClientBody {
            pause: self.options.body_timeout,
            min_rate: self.options.min_body_rate,
            grace: self.options.body_rate_grace,
            watch: Some(self.place.body_watch()),
        };
        let place = self.place.clone();
        let busy_poll = self.busy_poll.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let client = client.clone();
            let polling = busy_poll.as_ref().map(|poll| Polling::start(poll.clone()));
            let busy = place.busy();
            // The version a request starts with is the one it finishes on.
            let app = app.current();
            let guard = tracker.token();
            let dispatcher = dispatcher.clone();
            async move {
                if request::head_size(&request) > max_header_bytes {
                    let refusal = request::Refusal::head_too_large_for_server(max_header_bytes);
                    return Ok::<_, Infallible>(refusal.answer(None));
                }
                // Busy until the guest is done, body and all.
                let guard = (guard, busy, polling);
                let origin = request::Origin::Client {
                    peer,
                    body: client,
                    dispatcher: &dispatcher,
                };
                Ok(request::dispatch(&app, request, guard, origin).await)
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.header_timeout)
            // Hyper's floor is 8 KiB. Hyper stops reading a head somewhere
            // between this and twice this, with 431; `head_size` makes the
            // limit exact.
            .max_buf_size(self.options.max_header_bytes.max(8 << 10));
        let socket = ClientSocket::new(stream, self.options.write_timeout);
        let connection = builder.serve_connection(TokioIo::new(socket), service);
        tokio::pin!(connection);
        // Shutdown, or the cap needing room: the request in flight (if
        // any) is finished, then the connection closes.
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            _ = self.stopped.wait_for(|stopped| *stopped) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            _ = self.place.asked_to_close() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(err) = ended
            && let Some(timeout) = client_timeout(&err)
        {
            metrics.client_timeout(timeout);
        }
    }
}

/// A request, as this worker's busy polling sees it: started when made,
/// ended when dropped (with the guest).
struct Polling(Rc<BusyPoll>);

impl Polling {
    fn start(poll: Rc<BusyPoll>) -> Self {
        poll.started();
        Self(poll)
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// A connection counted in `mayfly_open_connections` while it lives.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn count(metrics: &Arc<Metrics>) -> Self {
        metrics.connections().inc();
        Self(metrics.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections().dec();
    }
}

/// Which client timeout ended a connection, if one did: hyper's own for
/// the request head, or the socket's write timeout.
fn client_timeout(err: &hyper::Error) -> Option<ClientTimeout> {
    if err.is_timeout() {
        return Some(ClientTimeout::Head);
    }
    let mut source = std::error::Error::source(err);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return Some(ClientTimeout::Write);
        }
        source = err.source();
    }
    None
}
