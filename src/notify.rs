//! Notifications (docs/reference/configuration.md `notify`, §12): each event tagwatch wants people to know about (a bump
//! written, a pull request opened, updated, merged or closed, a hold started, a repository or registry
//! failing and recovering) is posted once to every target that asked for its kind, as a
//! Slack-compatible message or plain JSON, retried with the shared backoff.
//!
//! Owns: the event vocabulary, the two message formats, per-target delivery queues and their workers,
//! failure-streak deduplication.
//! Must not: block or fail its caller ([`Notifier::send`] only queues), log a target URL (Slack
//! webhook URLs are secrets: only the scheme and host are ever shown), or decide what happened (the
//! controller tells it).
//!
//! Decisions: `docs/design/forge.md` ("Notifications").

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::backoff::{Backoff, parse_retry_after};
use crate::secret::Secret;

/// Deliveries waiting per target. An event is a few hundred bytes; 1,000 rides out a receiver that is
/// down for a while during a burst of bumps without holding much memory. Past it the oldest is dropped
/// (and counted): the newest news matters most.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1_000;
/// Attempts per delivery, the first included: with the delays below about two minutes of trying
/// before one event is given up (and logged).
pub const DEFAULT_ATTEMPTS: u32 = 6;
/// First retry delay; doubles per attempt.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(2);
/// Longest wait between two attempts.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);
/// Per-request timeout: a chat webhook answers in well under a second.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How a target wants its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"text": …, "blocks": […]}`: Slack incoming webhooks, and the many receivers that copy them
    /// (Mattermost, Rocket.Chat, Discord's `/slack` endpoint).
    Slack,
    /// The event itself as a JSON object (`{"event": "…", …}`).
    Json,
}

/// The kinds of event a target subscribes to (`notify[].events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `bump`: a commit with bumps was pushed.
    Bump,
    /// `pull-request`: opened, updated, merged or closed.
    PullRequest,
    /// `hold`: a field is held on a version (a human's rollback).
    Hold,
    /// `failure`: a repository or registry started failing, or recovered.
    Failure,
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "bump" => Ok(EventKind::Bump),
            "pull-request" => Ok(EventKind::PullRequest),
            "hold" => Ok(EventKind::Hold),
            "failure" => Ok(EventKind::Failure),
            other => Err(format!(
                "unknown notify event {other:?}: expected bump, pull-request, hold or failure"
            )),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "slack" => Ok(Format::Slack),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "unknown notify format {other:?}: expected slack or json"
            )),
        }
    }
}

/// One place events are posted to (one `notify` entry of `tagwatch.yaml`).
#[derive(Clone)]
pub struct Target {
    /// The webhook URL. A secret: Slack's carries its token in the path.
    pub url: Secret,
    pub format: Format,
    /// The kinds posted here; empty means every kind.
    pub events: Vec<EventKind>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &shown_url(self.url.expose()))
            .field("format", &self.format)
            .field("events", &self.events)
            .finish()
    }
}

/// One bump in a [`Event::BumpWritten`] commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BumpLine {
    pub file: String,
    pub image: String,
    pub from: String,
    pub to: String,
    pub policy: String,
}

/// What failed, for [`Event::Failing`] and [`Event::Recovered`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A repository entry of `tagwatch.yaml`, by name.
    Repository(String),
    /// A registry, by host.
    Registry(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Repository(name) => write!(f, "repository {name}"),
            Scope::Registry(host) => write!(f, "registry {host}"),
        }
    }
}

/// A pull request as events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestRef {
    pub repository: String,
    pub number: u64,
    pub url: String,
    pub title: String,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A commit with bumps was pushed to `branch` (push mode).
    BumpWritten {
        repository: String,
        branch: String,
        commit: String,
        bumps: Vec<BumpLine>,
    },
    PullRequestOpened(PullRequestRef),
    /// The branch was rebuilt with newer versions and the pull request refreshed.
    PullRequestUpdated(PullRequestRef),
    /// tagwatch merged it (or saw it merged).
    PullRequestMerged {
        pull_request: PullRequestRef,
        merge_commit: Option<String>,
    },
    PullRequestClosed {
        pull_request: PullRequestRef,
        reason: String,
    },
    /// A target is held on `version` (a human set it back; docs/design/reconcile.md).
    HoldStarted {
        repository: String,
        file: String,
        image: String,
        version: String,
    },
    /// The first failure of a streak; later ones of the same streak are not posted.
    Failing {
        scope: Scope,
        error: String,
    },
    /// The first success after a streak of failures.
    Recovered {
        scope: Scope,
    },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::BumpWritten { .. } => EventKind::Bump,
            Event::PullRequestOpened(_)
            | Event::PullRequestUpdated(_)
            | Event::PullRequestMerged { .. }
            | Event::PullRequestClosed { .. } => EventKind::PullRequest,
            Event::HoldStarted { .. } => EventKind::Hold,
            Event::Failing { .. } | Event::Recovered { .. } => EventKind::Failure,
        }
    }

    /// The event's stable name in JSON messages.
    pub fn name(&self) -> &'static str {
        match self {
            Event::BumpWritten { .. } => "bump.written",
            Event::PullRequestOpened(_) => "pull_request.opened",
            Event::PullRequestUpdated(_) => "pull_request.updated",
            Event::PullRequestMerged { .. } => "pull_request.merged",
            Event::PullRequestClosed { .. } => "pull_request.closed",
            Event::HoldStarted { .. } => "hold.started",
            Event::Failing { .. } => "failure.started",
            Event::Recovered { .. } => "failure.recovered",
        }
    }

    /// One line for people (Slack's `text`, the JSON's `summary`).
    pub fn summary(&self) -> String {
        match self {
            Event::BumpWritten {
                repository,
                branch,
                commit,
                bumps,
            } => {
                let short = &commit[..commit.len().min(12)];
                match bumps.as_slice() {
                    [one] => format!(
                        "tagwatch bumped {} {} → {} in {repository} ({branch} @ {short})",
                        one.image, one.from, one.to
                    ),
                    many => format!(
                        "tagwatch bumped {} images in {repository} ({branch} @ {short})",
                        many.len()
                    ),
                }
            }
            Event::PullRequestOpened(pr) => format!(
                "tagwatch opened pull request #{} in {}: {}",
                pr.number, pr.repository, pr.title
            ),
            Event::PullRequestUpdated(pr) => format!(
                "tagwatch updated pull request #{} in {}: {}",
                pr.number, pr.repository, pr.title
            ),
            Event::PullRequestMerged { pull_request, .. } => format!(
                "pull request #{} in {} was merged: {}",
                pull_request.number, pull_request.repository, pull_request.title
            ),
            Event::PullRequestClosed {
                pull_request,
                reason,
            } => format!(
                "tagwatch closed pull request #{} in {}: {reason}",
                pull_request.number, pull_request.repository
            ),
            Event::HoldStarted {
                repository,
                file,
                image,
                version,
            } => format!(
                "tagwatch holds {image} on {version} in {repository} ({file}): a human set it back"
            ),
            Event::Failing { scope, error } => format!("{scope} is failing: {error}"),
            Event::Recovered { scope } => format!("{scope} has recovered"),
        }
    }

    /// The plain-JSON message.
    pub fn to_json(&self) -> Value {
        let pull_request = |pr: &PullRequestRef| {
            json!({
                "repository": pr.repository, "number": pr.number, "url": pr.url, "title": pr.title,
            })
        };
        let mut value = match self {
            Event::BumpWritten {
                repository,
                branch,
                commit,
                bumps,
            } => json!({
                "repository": repository,
                "branch": branch,
                "commit": commit,
                "bumps": bumps.iter().map(|b| json!({
                    "file": b.file, "image": b.image, "from": b.from, "to": b.to, "policy": b.policy,
                })).collect::<Vec<_>>(),
            }),
            Event::PullRequestOpened(pr) | Event::PullRequestUpdated(pr) => {
                json!({ "pullRequest": pull_request(pr) })
            }
            Event::PullRequestMerged {
                pull_request: pr,
                merge_commit,
            } => json!({ "pullRequest": pull_request(pr), "mergeCommit": merge_commit }),
            Event::PullRequestClosed {
                pull_request: pr,
                reason,
            } => json!({ "pullRequest": pull_request(pr), "reason": reason }),
            Event::HoldStarted {
                repository,
                file,
                image,
                version,
            } => {
                json!({ "repository": repository, "file": file, "image": image, "version": version })
            }
            Event::Failing { scope, error } => {
                json!({ "scope": scope_json(scope), "error": error })
            }
            Event::Recovered { scope } => json!({ "scope": scope_json(scope) }),
        };
        value["event"] = json!(self.name());
        value["summary"] = json!(self.summary());
        value
    }

    /// The Slack-compatible message: `text` (the summary, which every receiver shows) and `blocks`
    /// (a section with the summary and, for a pull request, its link; for bumps, one line per bump).
    /// Text from outside (tags, titles, errors) is escaped for Slack's markup (`&`, `<`, `>`).
    pub fn to_slack(&self) -> Value {
        let summary = slack_escape(&self.summary());
        let mut blocks = vec![json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": summary },
        })];
        let link = match self {
            Event::PullRequestOpened(pr) | Event::PullRequestUpdated(pr) => Some(pr),
            Event::PullRequestMerged { pull_request, .. }
            | Event::PullRequestClosed { pull_request, .. } => Some(pull_request),
            _ => None,
        };
        if let Some(pr) =
            link.filter(|pr| pr.url.starts_with("https://") || pr.url.starts_with("http://"))
        {
            blocks.push(json!({
                "type": "context",
                "elements": [{ "type": "mrkdwn", "text": format!("<{}|#{}>", slack_escape(&pr.url), pr.number) }],
            }));
        }
        if let Event::BumpWritten { bumps, .. } = self
            && bumps.len() > 1
        {
            let lines: Vec<String> = bumps
                .iter()
                .take(20)
                .map(|b| {
                    slack_escape(&format!(
                        "• {} {} → {} ({}, {})",
                        b.image, b.from, b.to, b.file, b.policy
                    ))
                })
                .collect();
            blocks.push(json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": lines.join("\n") },
            }));
        }
        json!({ "text": summary, "blocks": blocks })
    }
}

fn scope_json(scope: &Scope) -> Value {
    match scope {
        Scope::Repository(name) => json!({ "repository": name }),
        Scope::Registry(host) => json!({ "registry": host }),
    }
}

/// Slack's three control characters in text (https://api.slack.com/reference/surfaces/formatting).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A target URL as logs may show it: scheme and host only (Slack's token is in the path).
fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/…")
}

/// How deliveries are retried and queued.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub queue_capacity: usize,
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub request_timeout: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            attempts: DEFAULT_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The queue of one target, shared by the [`Notifier`] (which pushes) and the target's worker (which
/// pops and posts).
struct Queue {
    target: Target,
    items: Mutex<VecDeque<Event>>,
    capacity: usize,
    wake: Notify,
    closed: std::sync::atomic::AtomicBool,
}

/// Counters a caller can read (and the daemon can export as metrics).
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Events posted (a 2xx answer).
    pub delivered: AtomicU64,
    /// Events dropped from a full queue (the oldest goes).
    pub dropped: AtomicU64,
    /// Events given up after every attempt, or refused permanently by the receiver.
    pub failed: AtomicU64,
}

/// Posts events to the targets in the background. [`Notifier::send`] never blocks and never fails.
pub struct Notifier {
    queues: Vec<Arc<Queue>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stats: Arc<NotifyStats>,
    /// Scopes whose failure was posted and whose recovery was not yet.
    failing: Mutex<HashSet<Scope>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let targets: Vec<&Target> = self.queues.iter().map(|q| &q.target).collect();
        f.debug_struct("Notifier")
            .field("targets", &targets)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts one worker task per target (on the current Tokio runtime).
    pub fn start(targets: Vec<Target>, settings: NotifySettings) -> Notifier {
        let stats = Arc::new(NotifyStats::default());
        let client = reqwest::Client::builder()
            .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout)
            .build()
            .expect("an HTTP client with default TLS settings builds");
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for target in targets {
            let queue = Arc::new(Queue {
                target,
                items: Mutex::new(VecDeque::new()),
                capacity: settings.queue_capacity.max(1),
                wake: Notify::new(),
                closed: std::sync::atomic::AtomicBool::new(false),
            });
            workers.push(tokio::spawn(work(
                queue.clone(),
                client.clone(),
                settings.clone(),
                stats.clone(),
            )));
            queues.push(queue);
        }
        Notifier {
            queues,
            workers: Mutex::new(workers),
            stats,
            failing: Mutex::new(HashSet::new()),
        }
    }

    /// Queues `event` for every target that wants its kind; returns at once. A [`Event::Failing`] of
    /// a scope already failing, and a [`Event::Recovered`] of one that was not, are not queued: one
    /// message per failure streak.
    pub fn send(&self, event: Event) {
        let news = match &event {
            Event::Failing { scope, .. } => {
                let mut failing = self.failing.lock().expect("failing lock");
                failing.insert(scope.clone())
            }
            Event::Recovered { scope } => self.failing.lock().expect("failing lock").remove(scope),
            _ => true,
        };
        if !news {
            return;
        }
        let kind = event.kind();
        for queue in &self.queues {
            let wanted = &queue.target.events;
            if !wanted.is_empty() && !wanted.contains(&kind) {
                continue;
            }
            {
                let mut items = queue.items.lock().expect("queue lock");
                if items.len() >= queue.capacity {
                    items.pop_front();
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        target_url = %shown_url(queue.target.url.expose()),
                        "notification queue full: dropped the oldest event"
                    );
                }
                items.push_back(event.clone());
            }
            queue.wake.notify_one();
        }
    }

    pub fn stats(&self) -> &NotifyStats {
        &self.stats
    }

    /// Stops taking events, lets the workers post what is queued for up to `grace`, then stops them.
    pub async fn close(&self, grace: Duration) {
        for queue in &self.queues {
            queue.closed.store(true, Ordering::SeqCst);
            queue.wake.notify_one();
        }
        let workers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
        let all = futures_util::future::join_all(workers);
        if tokio::time::timeout(grace, all).await.is_err() {
            for abort in aborts {
                abort.abort();
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        for worker in self.workers.lock().expect("workers lock").iter() {
            worker.abort();
        }
    }
}

/// One target's worker: posts queued events in order, each with retries, until closed and empty.
async fn work(
    queue: Arc<Queue>,
    client: reqwest::Client,
    settings: NotifySettings,
    stats: Arc<NotifyStats>,
) {
    loop {
        let next = queue.items.lock().expect("queue lock").pop_front();
        let Some(event) = next else {
            if queue.closed.load(Ordering::SeqCst) {
                return;
            }
            queue.wake.notified().await;
            continue;
        };
        match deliver(&client, &queue.target, &event, &settings).await {
            Ok(()) => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target_url = %shown_url(queue.target.url.expose()),
                    event = event.name(),
                    reason = %reason,
                    "notification not delivered"
                );
            }
        }
    }
}

/// Posts one event, retrying what can succeed later (network errors, 408, 429, 5xx) with the shared
/// backoff; `Retry-After` is honoured (clamped). A 2xx is success; any other answer is final.
async fn deliver(
    client: &reqwest::Client,
    target: &Target,
    event: &Event,
    settings: &NotifySettings,
) -> Result<(), String> {
    let body = match target.format {
        Format::Slack => event.to_slack(),
        Format::Json => event.to_json(),
    };
    let mut backoff = Backoff::new(settings.base_delay, settings.max_delay, settings.attempts);
    loop {
        let (reason, retry_after) = match client.post(target.url.expose()).json(&body).send().await
        {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
                let reason = format!("the receiver answered {status}");
                if !retryable {
                    return Err(reason);
                }
                (reason, retry_after)
            }
            // Without the URL: it is the secret.
            Err(error) => (format!("{}", error.without_url()), None),
        };
        match backoff.next_delay(retry_after) {
            Some(wait) => {
                tracing::debug!(
                    target_url = %shown_url(target.url.expose()),
                    event = event.name(),
                    reason = %reason,
                    wait_ms = wait.as_millis() as u64,
                    "notification failed, retrying"
                );
                tokio::time::sleep(wait).await;
            }
            None => {
                return Err(format!(
                    "{reason} (gave up after {} attempts)",
                    settings.attempts
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr() -> PullRequestRef {
        PullRequestRef {
            repository: "prod".into(),
            number: 12,
            url: "https://github.com/acme/config/pull/12".into(),
            title: "chore(images): bump ghcr.io/acme/api 1.2.3 → 1.3.0".into(),
        }
    }

    #[test]
    fn urls_show_scheme_and_host_only() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown_url("https://user:pass@example.com/hook?token=x"),
            "https://example.com/…"
        );
        let target = Target {
            url: Secret::new("https://hooks.slack.com/services/T/B/SECRET"),
            format: Format::Slack,
            events: vec![EventKind::Bump],
        };
        assert!(!format!("{target:?}").contains("SECRET"));
    }

    #[test]
    fn slack_messages_have_text_and_escaped_blocks() {
        let event = Event::PullRequestClosed {
            pull_request: PullRequestRef {
                title: "<!channel> & more".into(),
                ..pr()
            },
            reason: "superseded by <#13>".into(),
        };
        let message = event.to_slack();
        let text = message["text"].as_str().unwrap();
        assert!(
            !text.contains('<') && text.contains("&lt;#13&gt;"),
            "{text}"
        );
        assert_eq!(
            message["blocks"][1]["elements"][0]["text"],
            "<https://github.com/acme/config/pull/12|#12>"
        );
    }

    #[test]
    fn json_messages_name_the_event() {
        let event = Event::BumpWritten {
            repository: "prod".into(),
            branch: "main".into(),
            commit: "0123456789abcdef".into(),
            bumps: vec![BumpLine {
                file: "app.yaml".into(),
                image: "ghcr.io/acme/api".into(),
                from: "1.2.3".into(),
                to: "1.3.0".into(),
                policy: "api".into(),
            }],
        };
        let value = event.to_json();
        assert_eq!(value["event"], "bump.written");
        assert_eq!(value["bumps"][0]["to"], "1.3.0");
        assert_eq!(
            value["summary"],
            "tagwatch bumped ghcr.io/acme/api 1.2.3 → 1.3.0 in prod (main @ 0123456789ab)"
        );
        assert_eq!(event.kind(), EventKind::Bump);
    }

    #[test]
    fn kinds_and_formats_parse_from_their_config_names() {
        for (text, kind) in [
            ("bump", EventKind::Bump),
            ("pull-request", EventKind::PullRequest),
            ("hold", EventKind::Hold),
            ("failure", EventKind::Failure),
        ] {
            assert_eq!(text.parse::<EventKind>().unwrap(), kind);
        }
        assert!("merge".parse::<EventKind>().is_err());
        assert_eq!("slack".parse::<Format>().unwrap(), Format::Slack);
        assert!("xml".parse::<Format>().is_err());
    }
}
