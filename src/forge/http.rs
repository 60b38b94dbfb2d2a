//! The HTTP client every forge shares: authentication header, retries with backoff, rate-limit waits,
//! error classification and token scrubbing.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::MAX_LIST_PAGES;
use super::error::{ErrorClass, ForgeError, classify, header_str};
use crate::backoff::Backoff;
use crate::secret::{Secret, redact_url};

/// Attempts per call when the settings name none: enough to ride out a brief outage or one rate-limit
/// window, few enough that a reconcile cycle is not held up for long.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// First backoff delay; doubles per attempt.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest backoff delay between two attempts.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// Longest rate-limit wait a call sits through. A longer one (GitHub's hourly reset) makes the call fail
/// as rate-limited with the wait attached, so the scheduler postpones the work instead of blocking.
pub const DEFAULT_MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(120);
/// GitHub: a secondary rate limit without `retry-after` or `x-ratelimit-*` means "wait at least a minute".
pub const SECONDARY_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to a reset time: the forge's clock and ours agree only to about a second.
const RESET_SLACK: Duration = Duration::from_millis(500);
/// Error messages from a forge are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// How one call retries.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_rate_limit_wait: DEFAULT_MAX_RATE_LIMIT_WAIT,
        }
    }
}

/// A successful answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub method: Method,
    pub url: String,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ForgeError> {
        serde_json::from_slice(&self.body).map_err(|source| ForgeError::Decode {
            method: self.method.to_string(),
            url: self.url.clone(),
            source,
        })
    }

    /// The `rel="next"` target of the `Link` header, if any.
    pub fn next_link(&self) -> Option<Url> {
        let link = header_str(&self.headers, "link")?;
        link.split(',').find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let is_next = params
                .split(';')
                .any(|p| p.trim().trim_start_matches("rel=").trim_matches('"') == "next");
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            is_next.then(|| Url::parse(target).ok()).flatten()
        })
    }
}

/// The shared HTTP client of one forge connection.
pub struct Api {
    client: reqwest::Client,
    base: Url,
    auth_name: HeaderName,
    auth_value: HeaderValue,
    extra_headers: HeaderMap,
    token: Secret,
    policy: RetryPolicy,
    /// A primary rate limit reported exhausted on a successful answer: no request before this instant.
    not_before: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &redact_url(self.base.as_str()))
            .finish_non_exhaustive()
    }
}

/// Redirects are followed only within the origin (scheme, host, port) of the request: the token
/// header (`Authorization`, or GitLab's `PRIVATE-TOKEN`, which the HTTP library would not strip) never
/// reaches another host. A redirect elsewhere is answered as it came (a 3xx: an error naming the call).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        if attempt.previous().len() > 5 {
            return attempt.stop();
        }
        if attempt.url().origin() == first.origin() {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The answer to one attempt: either done, or wait this long and go again.
enum Attempt {
    Done(Result<Answer, ForgeError>),
    Retry(Duration, ForgeError),
}

impl Api {
    /// `auth` is the header name and its value with the token in it; the value is marked sensitive.
    pub fn new(
        base: &str,
        auth_name: HeaderName,
        auth_value: String,
        token: Secret,
        extra_headers: HeaderMap,
        policy: RetryPolicy,
        timeout: Duration,
    ) -> Result<Self, ForgeError> {
        let base = Url::parse(base.trim_end_matches('/'))
            .map_err(|e| ForgeError::Settings(format!("api URL {}: {e}", redact_url(base))))?;
        if base.cannot_be_a_base() {
            return Err(ForgeError::Settings(format!(
                "api URL {} cannot carry a path",
                redact_url(base.as_str())
            )));
        }
        let mut auth_value = HeaderValue::from_str(&auth_value).map_err(|_| {
            ForgeError::Settings("the forge token is not a valid header value".into())
        })?;
        auth_value.set_sensitive(true);
        let client = reqwest::Client::builder()
            .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| ForgeError::Settings(format!("HTTP client: {e}")))?;
        Ok(Api {
            client,
            base,
            auth_name,
            auth_value,
            extra_headers,
            token,
            policy,
            not_before: Mutex::new(None),
        })
    }

    /// `base` + the given path segments (each percent-encoded, `/` included) + query pairs.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base URL can carry a path")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request, retrying what can succeed later; `Ok` only for a 2xx answer.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ForgeError> {
        let mut backoff = Backoff::new(
            self.policy.base_delay,
            self.policy.max_delay,
            self.policy.attempts,
        );
        let mut attempt = 0;
        loop {
            self.wait_for_rate_limit(&method, &url).await?;
            attempt += 1;
            match self.attempt(&method, &url, body, &mut backoff).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(wait, error) => {
                    if attempt >= self.policy.attempts {
                        return Err(error);
                    }
                    tracing::warn!(
                        method = %method,
                        url = %redact_url(url.as_str()),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %error,
                        "forge call failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        backoff: &mut Backoff,
    ) -> Attempt {
        let shown_url = redact_url(url.as_str());
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .headers(self.extra_headers.clone())
            .header(self.auth_name.clone(), self.auth_value.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(source) => {
                // A POST that may have reached the forge is not repeated (it could create twice);
                // one that never connected is safe to repeat.
                let repeatable = *method != Method::POST || source.is_connect();
                let error = ForgeError::Transport {
                    method: method.to_string(),
                    url: shown_url,
                    source: source.without_url(),
                };
                return if repeatable {
                    Attempt::Retry(backoff.step(), error)
                } else {
                    Attempt::Done(Err(error))
                };
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        self.note_rate_limit(&headers);
        let body = match response.bytes().await {
            Ok(bytes) => bytes.to_vec(),
            Err(source) => {
                return Attempt::Done(Err(ForgeError::Transport {
                    method: method.to_string(),
                    url: shown_url,
                    source: source.without_url(),
                }));
            }
        };
        tracing::debug!(method = %method, url = %shown_url, status = status.as_u16(), "forge call");
        if status.is_success() {
            return Attempt::Done(Ok(Answer {
                status,
                headers,
                body,
                method: method.clone(),
                url: shown_url,
            }));
        }
        let message = self.scrub(&error_message(&body));
        let class = classify(status, &headers, &message);
        let wait = match class {
            ErrorClass::RateLimited { .. } => Some(
                rate_limit_wait(&headers, SystemTime::now()).unwrap_or(SECONDARY_RATE_LIMIT_WAIT),
            ),
            _ => None,
        };
        let error = ForgeError::Status {
            method: method.to_string(),
            url: shown_url,
            status: status.as_u16(),
            message,
            class,
            retry_after: wait,
        };
        match (class, wait) {
            (ErrorClass::RateLimited { .. }, Some(wait))
                if wait <= self.policy.max_rate_limit_wait =>
            {
                Attempt::Retry(wait, error)
            }
            (ErrorClass::Transient, _) if repeatable_after_server_error(method) => {
                Attempt::Retry(backoff.step(), error)
            }
            _ => Attempt::Done(Err(error)),
        }
    }

    /// Reads a listing page by page (following `Link: rel="next"`, stopping on a page already read and
    /// after [`MAX_LIST_PAGES`], which it logs) and returns the items `keep` accepts; with `first_only`,
    /// stops at the first.
    pub async fn scan_pages<W: DeserializeOwned>(
        &self,
        mut url: Url,
        keep: impl Fn(&W) -> bool,
        first_only: bool,
    ) -> Result<Vec<W>, ForgeError> {
        let mut kept = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_LIST_PAGES {
            seen.insert(url.to_string());
            let answer = self.send(Method::GET, url, None).await?;
            let items: Vec<W> = answer.json()?;
            kept.extend(items.into_iter().filter(|item| keep(item)));
            if first_only && !kept.is_empty() {
                kept.truncate(1);
                return Ok(kept);
            }
            match answer.next_link() {
                Some(next) if !seen.contains(next.as_str()) => url = next,
                Some(next) => {
                    tracing::warn!(url = %redact_url(next.as_str()), "listing repeats a page; stopped");
                    return Ok(kept);
                }
                None => return Ok(kept),
            }
        }
        tracing::warn!(
            url = %redact_url(self.base.as_str()),
            "stopped reading a listing after {MAX_LIST_PAGES} pages"
        );
        Ok(kept)
    }

    /// Remembers an exhausted primary limit announced on any answer, so the next call waits for the
    /// reset instead of spending a request on a certain 403.
    fn note_rate_limit(&self, headers: &HeaderMap) {
        let exhausted = header_str(headers, "x-ratelimit-remaining")
            .or_else(|| header_str(headers, "ratelimit-remaining"))
            .is_some_and(|v| v.trim() == "0");
        if !exhausted {
            return;
        }
        if let Some(wait) = reset_wait(headers, SystemTime::now()) {
            *self.not_before.lock().expect("not_before lock") = Some(Instant::now() + wait);
        }
    }

    async fn wait_for_rate_limit(&self, method: &Method, url: &Url) -> Result<(), ForgeError> {
        let until = self.not_before.lock().expect("not_before lock").take();
        let Some(until) = until else { return Ok(()) };
        let wait = until.saturating_duration_since(Instant::now());
        if wait > self.policy.max_rate_limit_wait {
            *self.not_before.lock().expect("not_before lock") = Some(until);
            return Err(ForgeError::Status {
                method: method.to_string(),
                url: redact_url(url.as_str()),
                status: 429,
                message: "the forge's rate limit is exhausted until its reset".into(),
                class: ErrorClass::RateLimited { retry_after: None },
                retry_after: Some(wait),
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Removes the token from text the forge sent back (some echo the Authorization header).
    fn scrub(&self, text: &str) -> String {
        let token = self.token.expose();
        if token.len() >= 4 {
            text.replace(token, "[redacted]")
        } else {
            text.to_string()
        }
    }
}

/// A server error may come after the work was done; only requests that are safe to repeat are.
/// (POST creates pull requests and comments; PATCH and PUT set fields to the same values again.)
fn repeatable_after_server_error(method: &Method) -> bool {
    *method != Method::POST
}

/// How long a rate-limited answer asks us to wait: `retry-after` (seconds or HTTP date), else the reset
/// time (`x-ratelimit-reset` on GitHub, `ratelimit-reset` on GitLab, both epoch seconds).
pub fn rate_limit_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(value) = header_str(headers, "retry-after") {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(date) = chrono::DateTime::parse_from_rfc2822(value) {
            let at = UNIX_EPOCH + Duration::from_secs(date.timestamp().max(0) as u64);
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    reset_wait(headers, now)
}

fn reset_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset = header_str(headers, "x-ratelimit-reset")
        .or_else(|| header_str(headers, "ratelimit-reset"))?
        .trim()
        .parse::<u64>()
        .ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(reset) + RESET_SLACK;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The human part of an error body: `message` (string, list or map), else `error`, else the text.
fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => {
            let mut text = match json.get("message").or_else(|| json.get("error")) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::from_utf8_lossy(body).into_owned(),
            };
            // GitHub's 422 says "Validation Failed" and puts the reason in `errors[].message`.
            let details: Vec<&str> = json
                .get("errors")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
                .collect();
            if !details.is_empty() {
                text = format!("{text}: {}", details.join("; "));
            }
            text
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".into();
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-request HTTP server on loopback: answers `response`, reports the request it read.
    async fn serve_once(response: String) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let Ok(Ok((mut socket, _))) =
                tokio::time::timeout(Duration::from_secs(5), listener.accept()).await
            else {
                return String::new();
            };
            let mut request = vec![0; 16384];
            let read = socket.read(&mut request).await.unwrap();
            socket.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request[..read]).to_string()
        });
        (address, task)
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_never_carries_the_token() {
        let (elsewhere, received) =
            serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".into()).await;
        let (forge, _) = serve_once(format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{elsewhere}/api/v4/projects\r\ncontent-length: 0\r\n\r\n"
        ))
        .await;
        let api = Api::new(
            &format!("http://{forge}/api/v4"),
            HeaderName::from_static("private-token"),
            "glpat-secret-token".into(),
            Secret::new("glpat-secret-token"),
            HeaderMap::new(),
            RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            },
            Duration::from_secs(5),
        )
        .unwrap();
        let result = api
            .send(Method::GET, api.url(&["projects"], &[]), None)
            .await;
        assert!(result.is_err(), "a 302 elsewhere is not a success");
        let request = received.await.unwrap();
        assert!(
            !request.contains("glpat-secret-token"),
            "the other host got the token: {request}"
        );
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_seconds_wins_over_reset() {
        let now = SystemTime::now();
        let reset = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 100;
        let h = headers(&[
            ("retry-after", "3".into()),
            ("x-ratelimit-reset", reset.to_string()),
        ]);
        assert_eq!(rate_limit_wait(&h, now), Some(Duration::from_secs(3)));
    }

    #[test]
    fn reset_epoch_becomes_a_wait_from_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = headers(&[("x-ratelimit-reset", "1000010".into())]);
        assert_eq!(
            rate_limit_wait(&h, now),
            Some(Duration::from_secs(10) + RESET_SLACK)
        );
        let gitlab = headers(&[("ratelimit-reset", "1000004".into())]);
        assert_eq!(
            rate_limit_wait(&gitlab, now),
            Some(Duration::from_secs(4) + RESET_SLACK)
        );
        let past = headers(&[("x-ratelimit-reset", "10".into())]);
        assert_eq!(rate_limit_wait(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_http_date_is_understood() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT".into())]);
        assert_eq!(rate_limit_wait(&h, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn only_idempotent_requests_are_repeated_after_a_server_error() {
        assert!(!repeatable_after_server_error(&Method::POST));
        for method in [Method::GET, Method::PATCH, Method::PUT] {
            assert!(repeatable_after_server_error(&method), "{method}");
        }
    }

    #[test]
    fn error_messages_come_from_json_and_are_bounded() {
        assert_eq!(
            error_message(br#"{"message":"Bad credentials"}"#),
            "Bad credentials"
        );
        assert_eq!(
            error_message(br#"{"message":["Another open merge request already exists"]}"#),
            r#"["Another open merge request already exists"]"#
        );
        assert_eq!(
            error_message(br#"{"error":"title is missing"}"#),
            "title is missing"
        );
        assert_eq!(error_message(b""), "(no message)");
        assert!(
            error_message("x".repeat(1000).as_bytes()).chars().count() <= MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn link_header_next_is_followed() {
        let answer = Answer {
            status: StatusCode::OK,
            headers: headers(&[(
                "link",
                r#"<https://f.example/x?page=3>; rel="last", <https://f.example/x?page=2>; rel="next""#
                    .into(),
            )]),
            body: Vec::new(),
            method: Method::GET,
            url: String::new(),
        };
        assert_eq!(
            answer.next_link().map(|u| u.to_string()).as_deref(),
            Some("https://f.example/x?page=2")
        );
    }
}
