//! The webhook routes: GitHub talks to the server here.
//!
//! Every request goes through the same gate, in this order: the body is read
//! with a size limit (413), the signature is checked (401: nothing else
//! happens), then the event decides. Without a `webhook-secret` there is no
//! signature to check, so every event but a ping is refused (403) unless
//! `allow-unsigned-webhooks` says the network is closed. Only a push on a
//! tracked branch, or of a tag with a branch file of its name, records
//! anything: it records the builds as `queued` and hands them to the
//! scheduler; the answer does not wait for a build. A push of a commit
//! already queued, running or built within `replay-window` is a replay:
//! answered `duplicate`, it starts and cancels nothing.

use super::push::{self, Push};
use super::response::{self, Body};
use super::signature;
use crate::reloader::Reload;
use crate::state::{AppState, Trigger, TriggerError, Triggered};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_LENGTH};
use hyper::{Request, Response, StatusCode};
use std::time::Duration;
use zos_build_core::Enqueued;

/// The largest webhook body accepted (GitHub caps payloads at 25 MB, but a
/// push payload of more than a few hundred kilobytes is not a push we build).
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// How long a webhook's body may take to arrive whole: a client sending a
/// byte at a time holds a connection slot no longer than this.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer to a webhook when no `webhook-secret` is set.
pub const UNSIGNED_REFUSED: &str = "webhook-secret is not set: unsigned webhooks are refused \
     (set webhook-secret to the secret of the GitHub webhook, or allow-unsigned-webhooks: true \
     on a closed network)";

/// Which webhook a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `repository-push-endpoint`: pushes on tracked repositories.
    RepositoryPush,
    /// `monitor-update-endpoint`: pushes on the configuration repository.
    MonitorUpdate,
    /// `/hook/kernel` and the old `/build/<project>/hook`.
    Kernel,
}

/// A webhook request checked up to its event: the body and the event name.
struct Delivery {
    event: String,
    id: Option<String>,
    body: Bytes,
}

/// Answers a webhook request.
pub async fn handle(state: &AppState, hook: Hook, request: Request<Incoming>) -> Response<Body> {
    // The kernel hook answers the old service's words, or JSON when asked.
    let wants_json = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let delivery = match receive(state, request).await {
        Ok(delivery) => delivery,
        Err(response) => return response,
    };
    match (delivery.event.as_str(), hook) {
        ("ping", Hook::Kernel) => return kernel_answer(wants_json, "OK", None),
        ("ping", _) => return response::text(StatusCode::OK, "PONG"),
        ("push", _) => {}
        (other, _) => return response::ignored(format!("event {other:?} is not handled")),
    }
    let push = match push::parse(&delivery.body) {
        Ok(push) => push,
        Err(message) => return response::error(StatusCode::BAD_REQUEST, message),
    };
    if push.deleted {
        if hook == Hook::Kernel {
            return kernel_answer(wants_json, "DELETED", None);
        }
        return response::ignored(format!("{} was deleted: nothing to build", push.git_ref));
    }
    match hook {
        Hook::RepositoryPush => repository_push(state, delivery.id, push).await,
        Hook::MonitorUpdate => monitor_update(state, delivery.id, &push),
        Hook::Kernel => kernel_push(state, delivery.id, push, wants_json).await,
    }
}

/// A push on a kernel target (`kernel-targets`): one build of the kernel
/// pipeline for the pushed commit; a tag is a release build.
async fn kernel_push(
    state: &AppState,
    delivery: Option<String>,
    push: Push,
    wants_json: bool,
) -> Response<Body> {
    let Some(target) = state.kernel_target(push.repository.as_str()).cloned() else {
        return response::error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} is not a kernel target (see kernel-targets)",
                push.repository
            ),
        );
    };
    let Some((kind, name)) = push.target() else {
        return response::ignored(format!(
            "{} is neither a branch nor a tag: nothing to build",
            push.git_ref
        ));
    };
    let Some(commit) = push.commit.clone() else {
        return kernel_answer(wants_json, "DELETED", None);
    };
    let trigger = Trigger::push_of(
        kind,
        push.repository.clone(),
        name,
        commit,
        push.commits.to_string(),
        delivery,
    );
    match state.trigger_kernel(&target, trigger).await {
        Ok(Triggered {
            enqueued: Enqueued::Queued(records),
            ..
        }) => {
            let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            tracing::info!(repository = %push.repository, %kind, %name, builds = ?ids, "kernel push recorded");
            kernel_answer(wants_json, "STARTED", Some(&ids))
        }
        Ok(_) => response::json(StatusCode::OK, &serde_json::json!({"status": "duplicate"})),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a kernel push");
            response::error(StatusCode::INTERNAL_SERVER_ERROR, "cannot record the push")
        }
    }
}

/// The kernel hook's answer: the old service's plain word (`OK`, `STARTED`,
/// `DELETED`), or `{"status": "<word in lower case>", "builds": [...]}`
/// when the request's `Accept` asks for JSON.
fn kernel_answer(json: bool, word: &str, builds: Option<&[&str]>) -> Response<Body> {
    if !json {
        return response::text(StatusCode::OK, word.to_string());
    }
    let mut answer = serde_json::json!({"status": word.to_ascii_lowercase()});
    if let Some(builds) = builds {
        answer["builds"] = serde_json::json!(builds);
    }
    response::json(StatusCode::OK, &answer)
}

/// Reads the body (bounded) and checks the signature and the event header.
async fn receive(state: &AppState, request: Request<Incoming>) -> Result<Delivery, Response<Body>> {
    let too_large = || {
        response::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    };
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    // Limited stops reading as soon as the total passes the limit, so a
    // chunked body without a length cannot make us buffer more.
    let collected = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, MAX_BODY).collect());
    let Ok(collected) = collected.await else {
        return Err(response::error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {BODY_READ_TIMEOUT:?}"),
        ));
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(response::error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ))
        }
    };
    if let Some(secret) = &state.config.webhook_secret {
        let header = parts.headers.get(signature::HEADER).map(|v| v.as_bytes());
        if let Err(e) = signature::verify(secret.as_bytes(), &body, header) {
            tracing::warn!(error = %e, "webhook refused");
            return Err(response::error(StatusCode::UNAUTHORIZED, e.to_string()));
        }
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let event = header("x-github-event")
        .ok_or_else(|| response::error(StatusCode::BAD_REQUEST, "missing X-GitHub-Event header"))?;
    if state.config.webhook_secret.is_none()
        && !state.config.allow_unsigned_webhooks
        && event != "ping"
    {
        return Err(response::error(StatusCode::FORBIDDEN, UNSIGNED_REFUSED));
    }
    let id = header("x-github-delivery").filter(|id| !id.is_empty() && id.len() <= 128);
    Ok(Delivery { event, id, body })
}

/// A push on a tracked repository: a branch builds its branch file, a tag
/// the branch file named like the tag (see [`crate::catalog`]).
async fn repository_push(state: &AppState, delivery: Option<String>, push: Push) -> Response<Body> {
    let Some((kind, name)) = push.target() else {
        return response::ignored(format!(
            "{} is neither a branch nor a tag: nothing to build",
            push.git_ref
        ));
    };
    let Some(commit) = push.commit.clone() else {
        return response::ignored(format!("{} was deleted: nothing to build", push.git_ref));
    };
    let trigger = Trigger::push_of(
        kind,
        push.repository.clone(),
        name,
        commit,
        push.commits.to_string(),
        delivery.clone(),
    );
    match state.trigger(trigger).await {
        Ok(Triggered {
            enqueued: Enqueued::Duplicate,
            ..
        }) => {
            tracing::info!(delivery = ?delivery, repository = %push.repository, %kind, %name, "duplicate or replayed push ignored");
            response::json(StatusCode::OK, &serde_json::json!({"status": "duplicate"}))
        }
        Ok(Triggered {
            enqueued: Enqueued::Queued(records),
            commit,
        }) => {
            let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            tracing::info!(repository = %push.repository, %kind, %name, %commit, builds = ?ids, "push recorded");
            let message = match &state.scheduler {
                Some(_) => "queued: builds start as soon as a slot is free",
                None => "recorded as queued; this server was started without builds",
            };
            response::json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "success",
                    "builds": ids,
                    "message": message,
                }),
            )
        }
        Err(
            e @ (TriggerError::RepositoryNotTracked
            | TriggerError::BranchNotTracked
            | TriggerError::TagNotTracked(_)),
        ) => response::error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a push");
            response::error(StatusCode::INTERNAL_SERVER_ERROR, "cannot record the push")
        }
    }
}

/// A push on the configuration repository: reloads it in the background
/// (the reload is a build of its own in the history) and answers at once.
/// The configuration is read from a branch: a tag (or any other ref) pushed
/// there changes nothing, and loading its commit could bring back an old
/// configuration.
fn monitor_update(state: &AppState, delivery: Option<String>, push: &Push) -> Response<Body> {
    let Some(reloader) = state
        .reloader
        .as_ref()
        .filter(|r| r.is_configuration_push(push.repository.as_str()))
    else {
        return response::error(
            StatusCode::BAD_REQUEST,
            "repository not configured as configuration-repository",
        );
    };
    if push.branch.is_none() {
        return response::ignored(format!(
            "{} is not a branch: the configuration is read from the default branch",
            push.git_ref
        ));
    }
    let reloader = reloader.clone();
    let reload = Reload {
        delivery,
        branch: push.branch.clone(),
        commit: push.commit.as_ref().map(ToString::to_string),
    };
    tokio::spawn(async move { reloader.reload(reload).await });
    response::json(StatusCode::OK, &serde_json::json!({"status": "success"}))
}
