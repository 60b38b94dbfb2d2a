//! One registry as the client sees it: its base URL, HTTP client (TLS settings, timeouts), concurrency
//! limit, credentials and cached tokens. Every request goes through [`Endpoint::send`], which owns the
//! retry loop, the authentication flow and the size limit of answers, so no other code retries,
//! authenticates or buffers a body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::auth::{Challenge, Credentials, parse_challenge, resolve_credentials};
use super::error::{ErrorClass, RegistryError, classify};
use super::settings::RegistrySettings;
use crate::backoff::{Backoff, parse_retry_after};
use crate::environment::Environment;
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API_HOST};
use crate::secret::Secret;

/// Connecting never takes longer than this, even with a long request timeout: a dead host should fail
/// fast and be retried.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(10);
/// A token is renewed this long before its announced expiry, to absorb clock skew and request latency.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime the token spec prescribes when a token service omits `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Error bodies are read for their OCI codes up to this size; the rest is not read.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The largest token answer read: a token is a JWT of a few kilobytes.
const MAX_TOKEN_BYTES: usize = 1024 * 1024;
/// The longest wait inside one call: a `Retry-After` beyond it ends the call with its rate-limited
/// error (the scheduler waits instead), so a call lasts at most its attempts' request timeouts plus
/// three such waits, whatever the registry asks for.
const MAX_WAIT_IN_CALL: Duration = crate::backoff::DEFAULT_MAX_DELAY;

/// A completed response: headers and the whole body, read up to the limit the caller named.
pub struct Answer {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub struct Endpoint {
    /// The host as image references name it (`docker.io`, `127.0.0.1:5000`).
    pub host: String,
    /// `scheme://api-host[:port]`.
    pub base: Url,
    http: reqwest::Client,
    limit: Semaphore,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
    /// The registry answered 400 to a listing's `n`: later listings are sent without it.
    page_size_refused: AtomicBool,
    /// Told about every HTTP exchange: the registry's host and the outcome (metrics).
    observer: Option<Observer>,
}

/// Called once per HTTP exchange with the registry's host and one of `ok`, `unauthorized`,
/// `rate-limited`, `server-error`, `client-error`, `transport-error`.
pub type Observer = Arc<dyn Fn(&str, &'static str) + Send + Sync>;

#[derive(Default)]
struct AuthState {
    scheme: Option<KnownScheme>,
    tokens: HashMap<String, CachedToken>,
    /// One lock per scope, held while that scope's token is fetched: a burst of requests for one
    /// repository fetches one token, and a slow token service answer for one repository never holds up
    /// another's. One entry per repository ever asked for, like `tokens`.
    fetching: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

#[derive(Clone)]
enum KnownScheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct CachedToken {
    token: Secret,
    renew_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: Option<String>,
}

impl Endpoint {
    pub fn new(
        settings: &RegistrySettings,
        environment: &Environment,
    ) -> Result<Self, RegistryError> {
        let host = normalize_host(&settings.host);
        let invalid = |reason: String| RegistryError::Settings {
            host: host.clone(),
            reason,
        };
        let api_host = if host == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            host.as_str()
        };
        // `insecure` means plain HTTP, unless a CA file says how to verify TLS (settings.rs).
        let scheme = if settings.insecure && settings.ca_file.is_none() {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .map_err(|error| invalid(format!("not a valid host[:port]: {error}")))?;

        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(CONNECT_TIMEOUT_MAX))
            .pool_max_idle_per_host(settings.max_concurrency.max(1))
            .tcp_nodelay(true);
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|error| {
                invalid(format!("cannot read CA file {}: {error}", path.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                invalid(format!(
                    "{} holds no PEM certificate: {error}",
                    path.display()
                ))
            })?;
            if certificates.is_empty() {
                return Err(invalid(format!(
                    "{} holds no PEM certificate",
                    path.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|error| invalid(format!("cannot build the HTTP client: {error}")))?;
        Ok(Endpoint {
            credentials: resolve_credentials(settings, environment)?,
            host,
            base,
            http,
            limit: Semaphore::new(settings.max_concurrency.max(1)),
            auth: Mutex::new(AuthState::default()),
            page_size_refused: AtomicBool::new(false),
            observer: None,
        })
    }

    /// Tells `observer` about every exchange.
    pub fn observed(mut self, observer: Option<Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Whether this registry refused a listing's `n` (so listings go without it).
    pub fn page_size_refused(&self) -> bool {
        self.page_size_refused.load(Ordering::Relaxed)
    }

    /// Remembers that this registry answers 400 to `n`.
    pub fn refuse_page_size(&self) {
        self.page_size_refused.store(true, Ordering::Relaxed);
    }

    /// `base` joined with an absolute API path (`/v2/…`) and optional query.
    pub fn url(&self, path_and_query: &str) -> Url {
        let mut url = self.base.clone();
        match path_and_query.split_once('?') {
            Some((path, query)) => {
                url.set_path(path);
                url.set_query(Some(query));
            }
            None => url.set_path(path_and_query),
        }
        url
    }

    /// Sends one request for `repository` with retries (backoff, `Retry-After`) and authentication.
    /// A non-2xx answer becomes an error; 404 is reported as a `Status` error with its OCI codes. A
    /// body longer than `max_body` bytes is [`RegistryError::TooLarge`], detected while it streams in:
    /// no more than `max_body` bytes are ever buffered.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        accept: &str,
        repository: &str,
        max_body: usize,
    ) -> Result<Answer, RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let mut backoff = Backoff::default();
        let mut attempts = 0u32;
        let mut challenge_answered = false;
        loop {
            attempts += 1;
            let (authorization, sent_token) = self.authorization(&scope, repository).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, accept);
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let permit = self.limit.acquire().await.expect("semaphore never closed");
            // The body is read under the permit too: the limit counts requests the registry is serving.
            let outcome = exchange(request, &url, url.as_str(), max_body).await?;
            drop(permit);
            if let Some(observer) = &self.observer {
                let label = match &outcome {
                    Err(_) => "transport-error",
                    Ok((status, ..)) if status.is_success() => "ok",
                    Ok((StatusCode::UNAUTHORIZED, ..)) => "unauthorized",
                    Ok((StatusCode::TOO_MANY_REQUESTS, ..)) => "rate-limited",
                    Ok((status, ..)) if status.is_server_error() => "server-error",
                    Ok(_) => "client-error",
                };
                observer(&self.host, label);
            }
            let (status, headers, body, elsewhere) = match outcome {
                Ok(outcome) => outcome,
                Err(error) if is_certificate_error(&error) => {
                    return Err(RegistryError::Certificate {
                        url: url.to_string(),
                        source: error,
                    });
                }
                Err(error) => match backoff.next_delay(None) {
                    Some(delay) => {
                        tracing::debug!(url = %url, error = %error, ?delay, "request failed, retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    None => {
                        return Err(RegistryError::Unreachable {
                            url: url.to_string(),
                            attempts,
                            source: error,
                        });
                    }
                },
            };
            if status.is_success() {
                return Ok(Answer { headers, body });
            }
            // A redirect led to another host (a CDN for blobs, or anyone): what it serves is taken,
            // but it never gets credentials. It would receive the registry's password at a token
            // realm of its choosing, and its challenge would replace the registry's own.
            if let Some(elsewhere) = elsewhere
                && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            {
                return Err(self.unauthorized(
                    repository,
                    format!(
                        "a redirect led to {elsewhere}, which asks for credentials (HTTP {}); they are only sent to the registry itself",
                        status.as_u16()
                    ),
                ));
            }
            if status == StatusCode::UNAUTHORIZED {
                let challenge = headers
                    .get(WWW_AUTHENTICATE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(parse_challenge);
                if let Some(challenge) = challenge
                    && !challenge_answered
                {
                    challenge_answered = true;
                    attempts -= 1;
                    self.answer_challenge(challenge, &scope, repository, sent_token.as_ref())
                        .await?;
                    continue;
                }
                return Err(self.unauthorized(
                    repository,
                    "the registry rejected the credentials (HTTP 401)".to_string(),
                ));
            }
            // Docker Hub signals its pull limit as 403 + TOOMANYREQUESTS in some versions: that is not
            // an access problem, and `failure` classifies it.
            if status == StatusCode::FORBIDDEN
                && !error_codes(&body)
                    .iter()
                    .any(|code| code == "TOOMANYREQUESTS")
            {
                return Err(self.unauthorized(repository, "access denied (HTTP 403)".to_string()));
            }
            let failure = failure(url.as_str(), status, &headers, &body, attempts);
            if let Some(delay) = retry_delay(&failure, &mut backoff) {
                tracing::warn!(url = %url, status = status.as_u16(), ?delay, "registry asked to retry");
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(failure);
        }
    }

    fn unauthorized(&self, repository: &str, reason: String) -> RegistryError {
        let reason = if self.credentials.is_none() {
            format!("{reason}; no credentials are configured for it")
        } else {
            reason
        };
        RegistryError::Unauthorized {
            host: self.host.clone(),
            repository: repository.to_string(),
            reason,
        }
    }

    /// The `Authorization` header for a request in `scope` (and the Bearer token in it), fetching a
    /// token first when the registry is known to want one and none is cached.
    async fn authorization(
        &self,
        scope: &str,
        repository: &str,
    ) -> Result<(Option<HeaderValue>, Option<Secret>), RegistryError> {
        let (scheme, cached) = {
            let state = self.auth.lock().expect("auth state lock");
            let cached = state
                .tokens
                .get(scope)
                .filter(|token| token.renew_at > Instant::now())
                .map(|token| token.token.clone());
            (state.scheme.clone(), cached)
        };
        match scheme {
            None => Ok((None, None)),
            Some(KnownScheme::Basic) => Ok((self.credentials.as_ref().map(basic_header), None)),
            Some(KnownScheme::Bearer { realm, service }) => {
                let token = match cached {
                    Some(token) => token,
                    None => {
                        self.fetch_token(&realm, service.as_deref(), scope, repository)
                            .await?
                    }
                };
                Ok((Some(bearer_header(&token)), Some(token)))
            }
        }
    }

    /// Answers a `401`'s challenge. `sent_token` is the token the refused request carried: it is dropped
    /// from the cache, but a token another request fetched meanwhile is kept.
    async fn answer_challenge(
        &self,
        challenge: Challenge,
        scope: &str,
        repository: &str,
        sent_token: Option<&Secret>,
    ) -> Result<(), RegistryError> {
        match challenge {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(self.unauthorized(
                        repository,
                        "the registry requires HTTP basic authentication".to_string(),
                    ));
                }
                self.auth.lock().expect("auth state lock").scheme = Some(KnownScheme::Basic);
            }
            Challenge::Bearer { realm, service, .. } => {
                // Our own scope, not the challenge's: it is what every request for this repository needs,
                // and the cache key must not depend on what one answer happened to say.
                {
                    let mut state = self.auth.lock().expect("auth state lock");
                    state.scheme = Some(KnownScheme::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    });
                    if sent_token.is_some()
                        && state.tokens.get(scope).map(|cached| &cached.token) == sent_token
                    {
                        state.tokens.remove(scope);
                    }
                }
                self.fetch_token(&realm, service.as_deref(), scope, repository)
                    .await?;
            }
        }
        Ok(())
    }

    /// Exchanges the credentials (or nothing, anonymously) for a Bearer token at the challenge's realm
    /// and caches it until shortly before it expires. One fetch per scope at a time: a request that
    /// finds its scope's token being fetched waits for that fetch and uses its token; other scopes do
    /// not wait.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        repository: &str,
    ) -> Result<Secret, RegistryError> {
        let gate = self
            .auth
            .lock()
            .expect("auth state lock")
            .fetching
            .entry(scope.to_string())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        if let Some(token) = self
            .auth
            .lock()
            .expect("auth state lock")
            .tokens
            .get(scope)
            .filter(|token| token.renew_at > Instant::now())
        {
            return Ok(token.token.clone());
        }
        let mut url = Url::parse(realm).map_err(|_| RegistryError::InvalidResponse {
            url: self.base.to_string(),
            reason: format!("the token realm {:?} is not a URL", realm),
        })?;
        let request = match &self.credentials {
            Some(credentials) if credentials.username == "<token>" => {
                // An identity token from `docker login`: the OAuth2 refresh-token grant.
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "tagwatch"),
                    ("scope", scope),
                    ("refresh_token", credentials.password.expose()),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                // Form-encoded by hand: reqwest's `form` feature would be one more dependency for one call.
                let mut encoder = Url::parse("http://form.invalid/").expect("static URL");
                encoder.query_pairs_mut().extend_pairs(&form);
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(encoder.query().unwrap_or_default().to_string())
            }
            credentials => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", scope);
                }
                let request = self.http.get(url.clone());
                match credentials {
                    Some(credentials) => request.header(AUTHORIZATION, basic_header(credentials)),
                    None => request,
                }
            }
        };
        let origin = redacted_origin(&url);
        let mut backoff = Backoff::default();
        let mut attempts = 0u32;
        let body = loop {
            attempts += 1;
            let attempt = request
                .try_clone()
                .expect("token requests have an in-memory body");
            match exchange(attempt, &url, &origin, MAX_TOKEN_BYTES).await? {
                Ok((status, ..))
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
                {
                    return Err(self.unauthorized(
                        repository,
                        format!(
                            "the token service {origin} rejected the credentials (HTTP {})",
                            status.as_u16()
                        ),
                    ));
                }
                Ok((status, _, body, _)) if status.is_success() => break body,
                Ok((status, headers, body, _)) => {
                    let failure = failure(&origin, status, &headers, &body, attempts);
                    match retry_delay(&failure, &mut backoff) {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => return Err(failure),
                    }
                }
                Err(source) if is_certificate_error(&source) => {
                    return Err(RegistryError::Certificate {
                        url: origin,
                        source,
                    });
                }
                Err(source) => match backoff.next_delay(None) {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => {
                        return Err(RegistryError::Unreachable {
                            url: origin,
                            attempts,
                            source,
                        });
                    }
                },
            }
        };
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| RegistryError::InvalidResponse {
                url: origin.clone(),
                reason: "the token service did not answer with a token JSON".to_string(),
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| RegistryError::InvalidResponse {
                url: origin.clone(),
                reason: "the token answer holds no token".to_string(),
            })?;
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let renew_at =
            Instant::now() + lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN.min(lifetime / 2));
        let token = Secret::new(token);
        self.auth.lock().expect("auth state lock").tokens.insert(
            scope.to_string(),
            CachedToken {
                token: token.clone(),
                renew_at,
            },
        );
        Ok(token)
    }
}

/// One request's outcome: the answer (status, headers, body, and the origin that gave it when a
/// redirect led to another one), or a transport failure (which may be retried).
type Outcome = Result<(StatusCode, HeaderMap, Vec<u8>, Option<String>), reqwest::Error>;

/// Sends a request and reads its body as it streams in, never more than `max_body` bytes: a longer
/// successful answer is [`RegistryError::TooLarge`] (permanent), so a registry cannot exhaust memory. An
/// error answer's body is only read for its OCI codes, up to [`ERROR_BODY_LIMIT`], and cut there.
async fn exchange(
    request: reqwest::RequestBuilder,
    requested: &Url,
    url: &str,
    max_body: usize,
) -> Result<Outcome, RegistryError> {
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Ok(Err(error)),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let elsewhere = (response.url().origin() != requested.origin())
        .then(|| response.url().origin().ascii_serialization());
    let limit = if status.is_success() {
        max_body
    } else {
        ERROR_BODY_LIMIT
    };
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    if !status.is_success() {
                        body.extend_from_slice(&chunk[..limit - body.len()]);
                        return Ok(Ok((status, headers, body, elsewhere)));
                    }
                    return Err(RegistryError::TooLarge {
                        url: url.to_string(),
                        limit,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Ok((status, headers, body, elsewhere))),
            Err(error) => return Ok(Err(error)),
        }
    }
}

/// The error for a failed answer, classified once from its status, OCI codes and `Retry-After`.
fn failure(
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    attempts: u32,
) -> RegistryError {
    let codes = error_codes(body);
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    RegistryError::Status {
        url: url.to_string(),
        status,
        class: classify(status, &codes, retry_after),
        codes,
        attempts,
    }
}

/// How long to wait before retrying after `failure`, or `None` when it is permanent, attempts are
/// used up, or the registry asks for a longer wait than [`MAX_WAIT_IN_CALL`]: then the call ends at
/// once with the rate-limited error and its hint, and the caller (the daemon's scheduler) postpones
/// the image, instead of one call sleeping a minute per attempt.
fn retry_delay(failure: &RegistryError, backoff: &mut Backoff) -> Option<Duration> {
    match failure.class() {
        ErrorClass::Permanent => None,
        ErrorClass::Transient => backoff.next_delay(None),
        ErrorClass::RateLimited {
            retry_after: Some(hint),
        } if hint > MAX_WAIT_IN_CALL => None,
        ErrorClass::RateLimited { retry_after } => backoff.next_delay(retry_after),
    }
}

/// Whether a transport failure is a TLS certificate the client cannot verify (unknown issuer, expired,
/// wrong name): retrying cannot help until the certificate or the configured CA changes.
fn is_certificate_error(error: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(mut error) = current {
        // `io::Error::source` skips the error it wraps: look inside each wrapper.
        while let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            error = inner;
        }
        if let Some(rustls::Error::InvalidCertificate(_)) = error.downcast_ref::<rustls::Error>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// `docker.io` under any of its aliases.
pub fn normalize_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        host => host.to_string(),
    }
}

fn redacted_origin(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

fn basic_header(credentials: &Credentials) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        credentials.username,
        credentials.password.expose()
    ));
    sensitive(format!("Basic {encoded}"))
}

fn bearer_header(token: &Secret) -> HeaderValue {
    sensitive(format!("Bearer {}", token.expose()))
}

fn sensitive(value: String) -> HeaderValue {
    // Marked sensitive so hyper/reqwest never print it in their own debug output.
    let mut value = HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// The OCI error codes of an error body (`{"errors":[{"code":"…"}]}`), if it is one.
fn error_codes(body: &[u8]) -> Vec<String> {
    if body.len() > ERROR_BODY_LIMIT {
        return Vec::new();
    }
    serde_json::from_slice::<ErrorBody>(body)
        .map(|parsed| {
            parsed
                .errors
                .into_iter()
                .filter_map(|entry| entry.code)
                .filter(|code| is_error_code(code))
                .collect()
        })
        .unwrap_or_default()
}

/// The OCI error-code grammar (`NAME_UNKNOWN`, `TOOMANYREQUESTS`), bounded: a code goes into error
/// messages and logs, so anything else a registry puts there (a newline and a forged log line, terminal
/// escapes, a megabyte) is dropped, not shown.
fn is_error_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_after_beyond_the_longest_wait_in_a_call_ends_the_call_at_once() {
        let failure = |seconds| RegistryError::Status {
            url: "http://registry.test/v2/a/tags/list".to_string(),
            status: StatusCode::TOO_MANY_REQUESTS,
            codes: Vec::new(),
            class: ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(seconds)),
            },
            attempts: 1,
        };
        let mut backoff = Backoff::default();
        assert_eq!(
            retry_delay(&failure(10), &mut backoff),
            Some(MAX_WAIT_IN_CALL)
        );
        for seconds in [11, 3600, 1_000_000_000_000, u64::MAX] {
            assert_eq!(retry_delay(&failure(seconds), &mut backoff), None);
        }
    }

    #[test]
    fn only_codes_of_the_oci_grammar_are_kept_from_an_error_body() {
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN"},{"code":"UNAVAILABLE\nerror: forged"},{"code":"\u001b[31m"},{"code":""},{"code":"TOOMANYREQUESTS"}]}"#;
        assert_eq!(error_codes(body), ["NAME_UNKNOWN", "TOOMANYREQUESTS"]);
        assert!(!is_error_code(&"A".repeat(65)));
    }

    #[test]
    fn docker_hub_is_reached_at_its_api_host_over_https() {
        for host in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            let endpoint =
                Endpoint::new(&RegistrySettings::anonymous(host), &Environment::default()).unwrap();
            assert_eq!(endpoint.host, "docker.io");
            assert_eq!(
                endpoint.url("/v2/library/nginx/tags/list").as_str(),
                "https://registry-1.docker.io/v2/library/nginx/tags/list"
            );
        }
        let mut settings = RegistrySettings::anonymous("127.0.0.1:5000");
        settings.insecure = true;
        let endpoint = Endpoint::new(&settings, &Environment::default()).unwrap();
        assert_eq!(endpoint.url("/v2/").as_str(), "http://127.0.0.1:5000/v2/");
    }

    #[test]
    fn a_missing_ca_file_or_credential_is_a_settings_error_naming_the_registry() {
        let mut settings = RegistrySettings::anonymous("registry.example");
        settings.ca_file = Some("/nonexistent/ca.pem".into());
        let error = Endpoint::new(&settings, &Environment::default())
            .err()
            .unwrap();
        assert!(error.to_string().contains("registry.example"), "{error}");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");

        let mut settings = RegistrySettings::anonymous("registry.example");
        settings.auth = super::super::RegistryAuthSettings::Basic {
            username: "bot".into(),
            password: super::super::PasswordSource::Env("REGISTRY_PASSWORD".into()),
        };
        let error = Endpoint::new(&settings, &Environment::default())
            .err()
            .unwrap();
        assert!(error.to_string().contains("REGISTRY_PASSWORD"), "{error}");
    }
}
