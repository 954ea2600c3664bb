//! The last step: the guest's response, or the host's own answer when it
//! gave none.

use std::sync::Arc;

use http::Response;
use http_body_util::BodyExt as _;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::body::GuestBody;
use super::gather::gather;
use super::invoke::Answer;
use super::refusal::Refusal;
use super::run::{Running, report};
use crate::component::LoadedComponent;

/// What the client gets: the guest's response, its head gathered with the
/// body it has ready; else a [`Refusal`] for why there is none (too many
/// headers, an error code, the client's own fault, how the guest ended).
pub(super) async fn answer(
    component: &Arc<LoadedComponent>,
    head: Answer,
    running: Running,
) -> Response<HyperOutgoingBody> {
    let Running {
        ended,
        hand_over,
        shared,
        request_id,
        budget,
    } = running;
    let refusal = match head.head().await {
        Ok(Ok(response))
            if response.headers().len() > component.limits().http.max_response_headers =>
        {
            report(
                component,
                &request_id,
                &format!("sent {} response headers", response.headers().len()),
            );
            Refusal::too_many_response_headers(component, response.headers().len())
        }
        Ok(Ok(response)) => {
            let response = response.map(|body| {
                GuestBody::new(body, shared, component.clone(), request_id.clone()).boxed_unsync()
            });
            let response = gather(response).await;
            let _ = hand_over.send(());
            return response;
        }
        Ok(Err(code)) => {
            report(
                component,
                &request_id,
                &format!("responded with error code {code}"),
            );
            match shared.fault.get() {
                Some(fault) => Refusal::client(component, *fault),
                None => Refusal::error_code(component, &code),
            }
        }
        // The guest dropped the response without setting it: it trapped, ran
        // out of time, or returned without answering.
        Err(_) => {
            drop(hand_over);
            let ended = ended.await;
            match (shared.fault.get(), ended) {
                (Some(fault), _) => Refusal::client(component, *fault),
                (None, Ok(ended)) => {
                    if matches!(ended, mayfly_sandbox::Ended::Finished) {
                        report(
                            component,
                            &request_id,
                            "returned without sending a response",
                        );
                    }
                    Refusal::ended(component, &ended, budget)
                }
                (None, Err(join)) => {
                    report(
                        component,
                        &request_id,
                        &format!("guest task failed: {join}"),
                    );
                    Refusal::task_failed(component)
                }
            }
        }
    };
    refusal.answer(Some(&component.metrics))
}
