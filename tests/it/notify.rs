//! Notifications against real local HTTP receivers (axum on loopback): formats, event selection, retries
//! after failures, one message per failure streak, a full queue, and a webhook URL that never reaches
//! the logs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use tagwatch::notify::{
    BumpLine, Event, EventKind, Format, Notifier, NotifySettings, PullRequestRef, Scope, Target,
};
use tagwatch::secret::Secret;
use tokio::sync::{Semaphore, mpsc};

/// The secret part of every receiver URL, as Slack puts its token in the path.
const SECRET_PATH: &str = "T0000-B0000-s3cr3tXXXXXXXXXXXX";
/// A safety net for awaiting a message that should come; never a condition of the test.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Behaviour {
    /// Answer 503 to this many requests first.
    fail_first: Arc<AtomicUsize>,
    /// Every answer is this status (after the failures).
    status: StatusCode,
    /// When set, each request waits for a permit before it is answered.
    gate: Option<Arc<Semaphore>>,
    seen: mpsc::UnboundedSender<(String, Value)>,
    requests: Arc<AtomicUsize>,
}

struct Receiver {
    url: String,
    received: mpsc::UnboundedReceiver<(String, Value)>,
    requests: Arc<AtomicUsize>,
    gate: Option<Arc<Semaphore>>,
}

impl Receiver {
    async fn start(fail_first: usize, status: StatusCode, gated: bool) -> Receiver {
        let (seen, received) = mpsc::unbounded_channel();
        let requests = Arc::new(AtomicUsize::new(0));
        let gate = gated.then(|| Arc::new(Semaphore::new(0)));
        let behaviour = Behaviour {
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            status,
            gate: gate.clone(),
            seen,
            requests: requests.clone(),
        };
        let app = axum::Router::new()
            .route("/hook/{secret}", axum::routing::post(hook))
            .with_state(behaviour);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{address}/hook/{SECRET_PATH}"),
            received,
            requests,
            gate,
        }
    }

    fn target(&self, format: Format, events: Vec<EventKind>) -> Target {
        Target {
            url: Secret::new(self.url.clone()),
            format,
            events,
        }
    }

    /// The next message the receiver accepted or refused.
    async fn next(&mut self) -> Value {
        let (secret, body) = tokio::time::timeout(PATIENCE, self.received.recv())
            .await
            .expect("a message arrives")
            .expect("the receiver runs");
        assert_eq!(secret, SECRET_PATH);
        body
    }
}

async fn hook(
    State(behaviour): State<Behaviour>,
    Path(secret): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    behaviour.requests.fetch_add(1, Ordering::SeqCst);
    let value: Value = serde_json::from_slice(&body).expect("a JSON body");
    let _ = behaviour.seen.send((secret, value));
    if let Some(gate) = &behaviour.gate {
        gate.acquire().await.unwrap().forget();
    }
    let failing = behaviour
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        behaviour.status
    }
}

/// Quick retries: the tests judge what arrives, not when.
fn settings() -> NotifySettings {
    NotifySettings {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        ..NotifySettings::default()
    }
}

fn pull_request() -> PullRequestRef {
    PullRequestRef {
        repository: "prod".into(),
        number: 7,
        url: "https://github.com/acme/config/pull/7".into(),
        title: "chore(images): bump ghcr.io/acme/api 1.2.3 → 1.3.0".into(),
    }
}

fn bump() -> Event {
    Event::BumpWritten {
        repository: "prod".into(),
        branch: "main".into(),
        commit: "0123456789abcdef0123".into(),
        bumps: vec![BumpLine {
            file: "clusters/prod/api.yaml".into(),
            image: "ghcr.io/acme/api".into(),
            from: "1.2.3".into(),
            to: "1.3.0".into(),
            policy: "api".into(),
        }],
    }
}

#[tokio::test]
async fn each_target_gets_the_events_it_asked_for_in_its_format() {
    let mut slack = Receiver::start(0, StatusCode::OK, false).await;
    let mut json = Receiver::start(0, StatusCode::NO_CONTENT, false).await;
    let notifier = Notifier::start(
        vec![
            slack.target(Format::Slack, vec![EventKind::PullRequest]),
            json.target(Format::Json, Vec::new()),
        ],
        settings(),
    );
    notifier.send(bump());
    notifier.send(Event::PullRequestOpened(pull_request()));
    notifier.send(Event::HoldStarted {
        repository: "prod".into(),
        file: "clusters/prod/api.yaml".into(),
        image: "ghcr.io/acme/api".into(),
        version: "1.2.3".into(),
    });
    notifier.close(PATIENCE).await;

    let message = slack.next().await;
    assert_eq!(
        message["text"],
        "tagwatch opened pull request #7 in prod: chore(images): bump ghcr.io/acme/api 1.2.3 → 1.3.0"
    );
    assert_eq!(message["blocks"][0]["type"], "section");
    assert_eq!(
        message["blocks"][1]["elements"][0]["text"],
        "<https://github.com/acme/config/pull/7|#7>"
    );
    assert!(
        slack.received.try_recv().is_err(),
        "only pull-request events"
    );

    let names: Vec<Value> = vec![
        json.next().await["event"].clone(),
        json.next().await["event"].clone(),
        json.next().await["event"].clone(),
    ];
    assert_eq!(
        names,
        ["bump.written", "pull_request.opened", "hold.started"]
    );
    assert_eq!(notifier.stats().delivered.load(Ordering::SeqCst), 4);
    assert_eq!(notifier.stats().failed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_receiver_that_fails_twice_then_accepts_gets_the_event_once() {
    let mut receiver = Receiver::start(2, StatusCode::OK, false).await;
    let notifier = Notifier::start(vec![receiver.target(Format::Json, Vec::new())], settings());
    notifier.send(bump());
    notifier.close(PATIENCE).await;

    let attempts = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ];
    assert!(
        attempts.iter().all(|a| *a == attempts[0]),
        "the same event each time"
    );
    assert_eq!(attempts[0]["bumps"][0]["to"], "1.3.0");
    assert_eq!(
        receiver.requests.load(Ordering::SeqCst),
        3,
        "posted until accepted, then never again"
    );
    assert_eq!(notifier.stats().delivered.load(Ordering::SeqCst), 1);
    assert_eq!(notifier.stats().failed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failure_streak_is_posted_once_and_its_recovery_once() {
    let mut receiver = Receiver::start(0, StatusCode::OK, false).await;
    let notifier = Notifier::start(
        vec![receiver.target(Format::Json, vec![EventKind::Failure])],
        settings(),
    );
    let failing = |error: &str| Event::Failing {
        scope: Scope::Registry("ghcr.io".into()),
        error: error.into(),
    };
    let recovered = || Event::Recovered {
        scope: Scope::Registry("ghcr.io".into()),
    };
    notifier.send(recovered()); // nothing was failing: nothing to say
    notifier.send(failing("503 Service Unavailable"));
    notifier.send(failing("503 again"));
    notifier.send(failing("timeout"));
    notifier.send(Event::Failing {
        scope: Scope::Repository("prod".into()),
        error: "push rejected".into(),
    });
    notifier.send(recovered());
    notifier.send(recovered());
    notifier.send(failing("a new streak"));
    notifier.send(bump()); // not a failure event: not for this target
    notifier.close(PATIENCE).await;

    let mut got = Vec::new();
    for _ in 0..4 {
        let message = receiver.next().await;
        got.push(message["summary"].as_str().unwrap().to_string());
    }
    assert_eq!(
        got,
        [
            "registry ghcr.io is failing: 503 Service Unavailable",
            "repository prod is failing: push rejected",
            "registry ghcr.io has recovered",
            "registry ghcr.io is failing: a new streak",
        ]
    );
    assert!(receiver.received.try_recv().is_err());
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_never_blocks_the_sender() {
    let mut receiver = Receiver::start(0, StatusCode::OK, true).await;
    let notifier = Notifier::start(
        vec![receiver.target(Format::Json, Vec::new())],
        NotifySettings {
            queue_capacity: 2,
            ..settings()
        },
    );
    let hold = |version: &str| Event::HoldStarted {
        repository: "prod".into(),
        file: "a.yaml".into(),
        image: "ghcr.io/acme/api".into(),
        version: version.into(),
    };
    notifier.send(hold("1"));
    // The first is in flight (the receiver holds it); the queue takes two more.
    assert_eq!(receiver.next().await["version"], "1");
    notifier.send(hold("2"));
    notifier.send(hold("3"));
    notifier.send(hold("4"));
    assert_eq!(notifier.stats().dropped.load(Ordering::SeqCst), 1);

    receiver.gate.as_ref().unwrap().add_permits(3);
    assert_eq!(receiver.next().await["version"], "3");
    assert_eq!(receiver.next().await["version"], "4");
    notifier.close(PATIENCE).await;
    assert_eq!(notifier.stats().delivered.load(Ordering::SeqCst), 3);
    assert!(receiver.received.try_recv().is_err(), "2 was dropped");
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn the_webhook_url_never_reaches_the_logs() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // One receiver refuses for good; one address has nobody listening (a transport error, whose
    // message would name the URL if it were not stripped).
    let mut refusing = Receiver::start(0, StatusCode::FORBIDDEN, false).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}/hook/{SECRET_PATH}")
    };
    let notifier = Notifier::start(
        vec![
            refusing.target(Format::Slack, Vec::new()),
            Target {
                url: Secret::new(closed),
                format: Format::Json,
                events: Vec::new(),
            },
        ],
        NotifySettings {
            attempts: 2,
            ..settings()
        },
    );
    notifier.send(Event::PullRequestMerged {
        pull_request: pull_request(),
        merge_commit: Some("abc".into()),
    });
    notifier.close(PATIENCE).await;
    assert_eq!(
        refusing.next().await["text"],
        "pull request #7 in prod was merged: chore(images): bump ghcr.io/acme/api 1.2.3 → 1.3.0"
    );
    assert_eq!(
        refusing.requests.load(Ordering::SeqCst),
        1,
        "a 403 is not retried"
    );
    assert_eq!(notifier.stats().failed.load(Ordering::SeqCst), 2);

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("notification not delivered"), "{text}");
    assert!(
        text.contains("http://127.0.0.1"),
        "the host is shown: {text}"
    );
    assert!(!text.contains(SECRET_PATH), "the URL leaked:\n{text}");
    assert!(!format!("{notifier:?}").contains(SECRET_PATH));
}
