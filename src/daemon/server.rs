//! The daemon's one HTTP server (axum): webhooks (docs/daemon.md), `/metrics`, `/healthz`, `/readyz` and
//! `/api/v1/status`.
//!
//! A webhook is answered at once: 404 when its endpoint has no credential configured (never open by
//! default), 413 over [`webhook::MAX_BODY`], 401 for a bad or missing credential (constant-time
//! comparison), 400 for a body that is not the endpoint's payload (202 for the distribution endpoint:
//! a registry retries a non-2xx notification forever and blocks its queue), else 202 — and its events go
//! to the daemon's loop as hints, never awaited.
//!
//! Must not: do the work an event asks for, or echo a credential or a payload in an answer or a log.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::environment::Environment;
use crate::secret::Secret;

use super::metrics::WebhookLabels;
use super::webhook::{self, Credential, Endpoint};
use super::{Message, Shared};

/// The credentials of each webhook endpoint, read from the environment when the config is loaded.
#[derive(Default)]
pub(crate) struct WebhookSecrets {
    endpoints: Vec<(Endpoint, Vec<Stored>)>,
}

enum Stored {
    Bearer(Secret),
    Hmac(Secret),
    PathToken(Secret),
}

impl WebhookSecrets {
    pub(crate) fn from_config(config: &Config, environment: &Environment) -> Self {
        let mut endpoints = Vec::new();
        for (name, auth) in config.daemon.webhooks.iter() {
            let Some(endpoint) = Endpoint::from_name(name) else {
                continue;
            };
            let mut stored = Vec::new();
            let secret =
                |name: &Option<String>| name.as_deref().and_then(|name| environment.secret(name));
            if let Some(token) = secret(&auth.token_env) {
                stored.push(match endpoint {
                    Endpoint::DockerHub | Endpoint::Quay => Stored::PathToken(token),
                    _ => Stored::Bearer(token),
                });
            }
            if let Some(key) = secret(&auth.secret_env) {
                stored.push(Stored::Hmac(key));
            }
            if !stored.is_empty() {
                endpoints.push((endpoint, stored));
            }
        }
        WebhookSecrets { endpoints }
    }

    fn credentials(&self, endpoint: Endpoint) -> Option<Vec<Credential<'_>>> {
        let (_, stored) = self
            .endpoints
            .iter()
            .find(|(known, _)| *known == endpoint)?;
        Some(
            stored
                .iter()
                .map(|stored| match stored {
                    Stored::Bearer(token) => Credential::Bearer(token.expose()),
                    Stored::Hmac(key) => Credential::Hmac(key.expose().as_bytes()),
                    Stored::PathToken(token) => Credential::PathToken(token.expose()),
                })
                .collect(),
        )
    }
}

/// Starts the server on a thread of its own, with its own single-threaded runtime: `/healthz`,
/// `/metrics` and the webhooks answer whatever the daemon's runtime is busy with (one thread runs its
/// loop, every poll and every reconcile step), and the idle server costs no CPU (no timer, one
/// `epoll_wait`). The listener, bound by the caller, moves to the new runtime.
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener.into_std()?)?
    };
    std::thread::Builder::new()
        .name("tagwatch-http".to_string())
        .spawn(move || runtime.block_on(serve(listener, shared, stop)))
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/webhook/{endpoint}", post(webhook_plain))
        .route("/webhook/{endpoint}/{token}", post(webhook_with_token))
        .layer(DefaultBodyLimit::max(webhook::MAX_BODY))
        .with_state(shared);
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(error = %error, "the HTTP server stopped");
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: a repository has not completed its first cycle\n",
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = super::metrics::Metrics::encode(&shared.registry);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let report = Arc::clone(&shared.report.lock().expect("report lock"));
    axum::Json(report).into_response()
}

async fn webhook_plain(
    State(shared): State<Arc<Shared>>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    webhook_request(shared, &endpoint, None, headers, body)
}

async fn webhook_with_token(
    State(shared): State<Arc<Shared>>,
    Path((endpoint, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    webhook_request(shared, &endpoint, Some(&token), headers, body)
}

fn webhook_request(
    shared: Arc<Shared>,
    name: &str,
    path_token: Option<&str>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let received = Instant::now();
    let count = |endpoint: &str, outcome: &str| {
        shared
            .metrics
            .webhook_events
            .get_or_create(&WebhookLabels {
                endpoint: endpoint.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    };
    let Some(endpoint) = Endpoint::from_name(name) else {
        return (StatusCode::NOT_FOUND, "no such webhook endpoint\n").into_response();
    };
    let label = endpoint.name();
    // Only the token-in-path endpoints take a second path segment.
    if path_token.is_some() != matches!(endpoint, Endpoint::DockerHub | Endpoint::Quay) {
        return (StatusCode::NOT_FOUND, "no such webhook endpoint\n").into_response();
    }
    let secrets = shared.webhooks.lock().expect("webhooks lock");
    let Some(expected) = secrets.credentials(endpoint) else {
        count(label, "not-configured");
        return (
            StatusCode::NOT_FOUND,
            "this webhook endpoint is off: no credential is configured for it\n",
        )
            .into_response();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            count(
                label,
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "too-large"
                } else {
                    "invalid"
                },
            );
            return (status, "the body could not be read (over 1 MiB?)\n").into_response();
        }
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    if let Err(error) = webhook::authenticate(endpoint, &expected, &header, path_token, &body) {
        count(label, "unauthorized");
        if let Some(unlogged) = refusal_log(label, "unauthorized", received) {
            tracing::warn!(endpoint = label, error = %error, unlogged, "webhook refused");
        }
        return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    }
    drop(secrets);
    let content_type = header("content-type");
    match webhook::parse(endpoint, content_type.as_deref(), &body) {
        Err(error) => {
            count(label, "invalid");
            if let Some(unlogged) = refusal_log(label, "invalid", received) {
                tracing::warn!(endpoint = label, error = %error, unlogged, "webhook payload not understood");
            }
            // A registry retries every non-2xx notification forever, blocking its queue: an
            // authenticated envelope it sent is acknowledged even when tagwatch cannot use it.
            let status = if endpoint == Endpoint::Distribution {
                StatusCode::ACCEPTED
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, format!("{error}\n")).into_response()
        }
        Ok(events) => {
            count(
                label,
                if events.is_empty() {
                    "ignored"
                } else {
                    "accepted"
                },
            );
            for event in events {
                tracing::info!(endpoint = label, image = %event.image, tag = ?event.tag, "webhook event");
                // Unbounded: a webhook never waits for the loop.
                let _ = shared.messages.send(Message::Event {
                    image: event.image,
                    tag: event.tag,
                    received,
                });
            }
            (StatusCode::ACCEPTED, "accepted\n").into_response()
        }
    }
}

/// How often a refused webhook request of one kind (endpoint, outcome) is logged: the first one, then at
/// most one per interval, with the count it left out. Anyone can send requests with a wrong credential,
/// and a flood of them (`bench/flood.sh` measured ~2,000 refusals and 500 KB of log lines a second)
/// must not become a flood of log lines; `tagwatch_webhook_events_total` still counts every request.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

static REFUSALS: LazyLock<Mutex<RefusalLog>> = LazyLock::new(Mutex::default);

/// Whether to log a refusal of this kind now: `Some(n)` with the number of refusals of the kind that were
/// not logged since the last line, `None` to stay quiet.
fn refusal_log(endpoint: &'static str, outcome: &'static str, now: Instant) -> Option<u64> {
    REFUSALS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .admit((endpoint, outcome), now)
}

/// Per kind of refusal: when it was last logged and how many were not logged since.
#[derive(Default)]
struct RefusalLog {
    kinds: HashMap<(&'static str, &'static str), (Instant, u64)>,
}

impl RefusalLog {
    fn admit(&mut self, kind: (&'static str, &'static str), now: Instant) -> Option<u64> {
        match self.kinds.get_mut(&kind) {
            Some((last, unlogged)) if now.duration_since(*last) < REFUSAL_LOG_INTERVAL => {
                *unlogged += 1;
                None
            }
            Some((last, unlogged)) => {
                *last = now;
                Some(std::mem::take(unlogged))
            }
            None => {
                self.kinds.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_kind_is_logged_first_then_once_per_interval_with_the_count_it_left_out() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        let kind = ("generic", "unauthorized");
        assert_eq!(log.admit(kind, start), Some(0));
        for step in 1..=999 {
            assert_eq!(
                log.admit(kind, start + Duration::from_millis(step * 5)),
                None
            );
        }
        // Another kind has its own interval.
        assert_eq!(log.admit(("generic", "invalid"), start), Some(0));
        assert_eq!(log.admit(kind, start + REFUSAL_LOG_INTERVAL), Some(999));
        assert_eq!(
            log.admit(kind, start + REFUSAL_LOG_INTERVAL + Duration::from_secs(1)),
            None
        );
        assert_eq!(log.admit(kind, start + REFUSAL_LOG_INTERVAL * 2), Some(1));
    }
}
