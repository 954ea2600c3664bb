//! What the tests of Mayfly's crates share (spin's `tests/testing-framework`
//! in spirit): the real server, started as its own process and talked to
//! over real sockets, and the helpers around it.
//!
//! - [`Server`]: `mayfly serve` on a free loopback port, its output kept,
//!   killed on drop (and its output shown if the test failed).
//! - [`Client`], [`get`], [`Held`], [`get_streamed`], [`in_flight`]: HTTP/1.1
//!   through hyper, every exchange bounded by [`PATIENCE`].
//! - [`raw`]: the one hand-written HTTP/1.1 client, for what hyper would
//!   not send or would hide (a stalled body, a response cut short), and for
//!   tests that want no async runtime.
//! - [`run_bounded`]: a command run to its end, or killed at a bound.
//! - [`Load`]: `GET`s on a few connections while something changes, every
//!   answer kept.
//!
//! Only a test target of the package that builds a binary knows where it
//! is (`env!("CARGO_BIN_EXE_mayfly")`), so the binary is named by the test
//! target, as a [`Binary`]:
//!
//! ```ignore
//! pub enum Mayfly {}
//! impl mayfly_testing::Binary for Mayfly {
//!     const PATH: &'static str = env!("CARGO_BIN_EXE_mayfly");
//! }
//! pub type Server = mayfly_testing::Server<Mayfly>;
//!
//! let server = Server::start(&app);
//! assert_eq!(get(server.addr, "/").await.status, 200);
//! ```

#![deny(missing_docs)]

mod client;
mod load;
mod process;
pub mod raw;
mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::{
    Body, Client, Held, Reply, Streamed, full, get, get_streamed, in_flight, rest_of_body,
};
pub use load::{Load, Seen};
pub use process::{run_bounded, run_bounded_for};
pub use server::{Binary, Server};

/// Generous bound for anything that should be quick, on a loaded 2-core box.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Writes `text` into `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
