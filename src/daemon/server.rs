//! The daemon's one HTTP server (axum): webhooks (SPEC §8), `/metrics`, `/healthz`, `/readyz` and
//! `/api/v1/status`.
//!
//! A webhook is answered at once: 404 when its endpoint has no credential configured (never open by
//! default), 413 over [`webhook::MAX_BODY`], 401 for a bad or missing credential (constant-time
//! comparison), 400 for a body that is not the endpoint's payload (202 for the distribution endpoint:
//! a registry retries a non-2xx notification forever and blocks its queue), else 202 — and its events go
//! to the daemon's loop as hints, never awaited.
//!
//! Must not: do the work an event asks for, or echo a credential or a payload in an answer or a log.

use std::sync::Arc;
use std::sync::atomic::Ordering;

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

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
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
    let report = shared.report.lock().expect("report lock").clone();
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
        tracing::warn!(endpoint = label, error = %error, "webhook refused");
        return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    }
    drop(secrets);
    let content_type = header("content-type");
    match webhook::parse(endpoint, content_type.as_deref(), &body) {
        Err(error) => {
            count(label, "invalid");
            tracing::warn!(endpoint = label, error = %error, "webhook payload not understood");
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
                    received,
                });
            }
            (StatusCode::ACCEPTED, "accepted\n").into_response()
        }
    }
}
