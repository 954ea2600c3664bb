//! Load while something changes: `GET` on a few connections, each answer
//! kept with its time, until stopped. What the tests of swaps (deploys,
//! rollbacks, `--watch`, rebuilds) run to show that no request failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Request;
use tokio::task::JoinHandle;

use crate::PATIENCE;
use crate::client::{Client, full};

/// One answer the load got: when its request started and ended, its status
/// (0 if the exchange itself failed) and its body (or the failure).
pub struct Seen {
    /// When the request was sent.
    pub started: Instant,
    /// When its answer was whole.
    pub ended: Instant,
    /// Its status, or 0.
    pub status: u16,
    /// Its body, or why there was none.
    pub body: String,
}

/// `GET path` on each of several connections, one request after another,
/// until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<Vec<Seen>>>,
}

impl Load {
    /// Starts the load on `connections` connections to `addr`.
    pub fn start(addr: SocketAddr, path: &'static str, connections: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let clients = (0..connections)
            .map(|_| {
                let (stop, answered) = (stop.clone(), answered.clone());
                tokio::spawn(async move {
                    let mut client = Client::connect(addr).await;
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let request = Request::get(path).body(full("")).unwrap();
                        let (status, body) = match client.send(request).await {
                            Ok(reply) => (reply.status.as_u16(), reply.text()),
                            Err(err) => (0, format!("request failed: {err}")),
                        };
                        let ended = Instant::now();
                        seen.push(Seen {
                            started,
                            ended,
                            status,
                            body,
                        });
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    seen
                })
            })
            .collect();
        Self {
            stop,
            answered,
            clients,
        }
    }

    /// Waits until at least `at_least` has passed and `requests` more have
    /// been answered (failing the test if that takes [`PATIENCE`]).
    pub async fn more_answers(&self, requests: usize, at_least: Duration) {
        let started = Instant::now();
        let target = self.answered.load(Ordering::Relaxed) + requests;
        tokio::time::sleep(at_least).await;
        while self.answered.load(Ordering::Relaxed) < target {
            assert!(
                started.elapsed() < PATIENCE,
                "the load got only {} answers",
                self.answered.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the load: every answer it got, connection by connection.
    pub async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Vec::new();
        for client in self.clients {
            seen.extend(client.await.unwrap());
        }
        seen
    }
}
