//! Outbound HTTP from guests: deny by default, allow by pattern.
//!
//! `OutboundPolicy` is the `WasiHttpHooks` of every store. A guest that
//! calls `wasi:http/outgoing-handler.handle` reaches the network only when
//! the request's scheme, host and port match one of the component's
//! `allowed_outbound_hosts` patterns. Anything else gets the standard
//! `error-code.HTTP-request-denied` back, inside the guest (no trap, so a
//! well-written guest can report it), and the refusal is logged. Raw
//! sockets (`wasi:sockets`) are never granted.
//!
//! A request to `http://NAME.mayfly.internal/...` (granted like any other
//! host) goes to component NAME of the same app, in process, without a
//! socket: the `Dispatcher` the caller's store was made with (its
//! serving worker's) runs it in a fresh instance with NAME's own grants.
//! Each hop counts; past `MAX_HOPS` the call fails with `loop-detected`.
//! Only a pattern that names the component exactly grants the call: no
//! wildcard reaches an app's components, which may hold more grants than
//! the caller (an unrouted one, say).
//! NAME is matched without regard to case, and the call carries the
//! caller's `x-request-id` unless the guest set one. A store made without
//! a dispatcher (a plugin's, a command's) has no app to call into: such a
//! call fails with `destination-not-found`, and the reason is logged.
//!
//! A granted name is resolved by the host, and the request goes only to an
//! address the grant may reach: public addresses, unless a pattern names
//! the address (an IP literal, `localhost`) or the component has
//! `allow_private_networks`. Loopback, private, link-local and other
//! non-public answers are refused with `destination-IP-prohibited`, so a
//! public name pointed at 127.0.0.1 or 169.254.169.254 reaches nothing.
//! Each connection holds one of the instance's descriptors (see
//! [`crate::budget`]).
//!
//! [`HostPattern`] is always here; the policy itself, which needs
//! `wasmtime-wasi-http` (and with it hyper), comes with the `http`
//! feature.

#[cfg(feature = "http")]
mod address;
#[cfg(feature = "http")]
mod connect;
mod pattern;
#[cfg(feature = "http")]
mod policy;

pub use self::pattern::{HostPattern, INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN, internal_component};
#[cfg(feature = "http")]
pub use self::policy::{
    DISPATCH_QUEUE, Dispatcher, InternalCall, MAX_HOPS, OutboundPolicy, X_REQUEST_ID,
};
