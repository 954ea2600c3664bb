//! The first step: what is refused before any instance is made, and a turn
//! at the component's gate.

use std::time::Instant;

use bytes::Bytes;
use http::{Request, header};
use hyper::body::Body;

use super::body::drain_in_background;
use super::head::{declared_length, head_size};
use super::refusal::Refusal;
use crate::component::LoadedComponent;
use crate::gate::Turn;

/// `request`, admitted to `component`, with its turn: its `Host` is one
/// (RFC 9112), its head and declared body are within the component's
/// limits, and a turn came before `deadline`. A refused request's body is
/// drained in the background, so that its client reads the answer.
pub(super) async fn admit<B>(
    component: &LoadedComponent,
    request: Request<B>,
    deadline: Instant,
) -> Result<(Request<B>, Turn), Refusal>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    match request.headers().get_all(header::HOST).iter().count() {
        0 if request.uri().authority().is_none() => return Err(Refusal::missing_host()),
        0 | 1 => {}
        _ => return Err(Refusal::two_hosts()),
    }
    let limits = &component.limits().http;
    if let Some(max) = limits.max_request_head
        && head_size(&request) > max
    {
        drain_in_background(request.into_body());
        return Err(Refusal::head_too_large(component, max));
    }
    if declared_length(&request).is_some_and(|length| length > limits.max_request_body) {
        drain_in_background(request.into_body());
        return Err(Refusal::body_too_large(component, true));
    }
    match component.gate.enter(deadline).await {
        Some(turn) => Ok((request, turn)),
        None => Err(Refusal::component_busy(component)),
    }
}
