//! `tagwatch daemon` (docs/daemon.md): schedules image polls and repository reconciles on a keyed work queue,
//! serves webhooks, metrics, health and status on one HTTP server, keeps a state directory, reloads on
//! SIGHUP and drains on SIGTERM/SIGINT.
//!
//! The loop owns the [`Scheduler`]: it hands due keys to tasks (at most [`MAX_IMAGE_WORK`] image polls
//! and [`MAX_REPOSITORY_WORK`] repository reconciles at once) and learns their results from the task
//! set, never from a channel a task awaits. Webhooks and signals reach it through an unbounded channel
//! (sending never waits). An image whose tag list changed re-plans only the repositories whose last scan
//! used it; every repository is also re-read at `daemon.repositoryInterval`.
//!
//! Must not: reach into the reconcile flow (it calls `reconcile::Context` and acts on the returned
//! `Next`), trust a webhook payload (an event only names an image to re-check), or block its own loop.

pub mod leader;
pub mod metrics;
pub mod scheduler;
mod server;
pub mod state;
pub mod status;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::environment::Environment;
use crate::reconcile::{self, Context, Mode, Next, Outcome, Status, Trigger};
use crate::reference::ImageReference;
use crate::registry::RegistryClient;

use metrics::{
    BumpLabels, ErrorLabels, ImageLabels, Metrics, RepositoryKind, RepositoryLabels,
    RepositoryOutcome,
};
use scheduler::{Ran, Scheduler, Timing};
use state::{State, StoredListing};
use status::{ErrorStatus, PolicyStatus, Report, RepositoryPart};

/// Image polls at once: each is one small request per registry page, mostly waiting.
pub const MAX_IMAGE_WORK: usize = 16;
/// Repository reconciles at once (entries sharing a branch also wait for each other on its lane).
pub const MAX_REPOSITORY_WORK: usize = 4;

/// A unit of scheduled work.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Image(String),
    Repository(String),
}

impl Key {
    fn name(&self) -> String {
        match self {
            Key::Image(image) => format!("image {image}"),
            Key::Repository(repository) => format!("repository {repository}"),
        }
    }
}

/// What reaches the loop from outside.
#[derive(Debug)]
pub enum Message {
    /// A webhook named `image` (normalized) and, when its payload says it, the pushed `tag`: re-check
    /// the image now (and again while the tag is not listed). `received` is when the event arrived.
    Event {
        image: String,
        tag: Option<String>,
        received: Instant,
    },
    /// A new, valid config (SIGHUP).
    Reload(Box<Config>),
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("setting up the registry client")]
    Registry(#[source] crate::registry::RegistryError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("listening on {address}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the HTTP server and the loop share.
pub(crate) struct Shared {
    pub metrics: Metrics,
    pub registry: prometheus_client::registry::Registry,
    /// The last published report; readers take the `Arc` and serialize it outside the lock.
    pub report: Mutex<Arc<Report>>,
    pub ready: AtomicBool,
    pub webhooks: Mutex<server::WebhookSecrets>,
    pub messages: mpsc::UnboundedSender<Message>,
}

/// Runs the daemon until `stop` is cancelled (the first SIGTERM/SIGINT), then drains in-flight work for
/// at most `daemon.shutdownGrace`. `reloads` delivers configs that SIGHUP loaded and validated.
pub async fn run(
    config: Config,
    environment: Environment,
    stop: CancellationToken,
    mut reloads: mpsc::UnboundedReceiver<Config>,
) -> Result<(), DaemonError> {
    let state_dir = config.daemon.state_dir.clone();
    let state = {
        let directory = state_dir.clone();
        tokio::task::spawn_blocking(move || State::open(&directory))
            .await
            .expect("opening the state store does not panic")?
    };
    let state = Arc::new(state);
    let listen = config.daemon.listen;
    let grace = config.daemon.shutdown_grace;
    // Without leader election this replica always leads; with it, the election task says.
    let election = match &config.daemon.leader_election {
        Some(election) => {
            let settings = leader::Settings::resolve(election, &environment)?;
            let api = leader::leases(&settings.namespace).await?;
            tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "leader election: taking part");
            Some((api, settings))
        }
        None => None,
    };
    let (leading_sender, leading) = watch::channel(election.is_none());
    let (messages, inbox) = mpsc::unbounded_channel();
    let metrics = Metrics::default();
    let shared = Arc::new(Shared {
        registry: metrics.registry(),
        metrics,
        report: Mutex::new(Arc::new(Report {
            leader: election.is_none(),
            ..Report::default()
        })),
        ready: AtomicBool::new(false),
        webhooks: Mutex::new(server::WebhookSecrets::from_config(&config, &environment)),
        messages,
    });
    let client = RegistryClient::observed(
        config.registries.clone(),
        &environment,
        Some(registry_observer(&shared.metrics)),
    )
    .map_err(DaemonError::Registry)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Listen {
            address: listen,
            source,
        })?;
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving webhooks, metrics, health and status");
    let server_stop = CancellationToken::new();
    let server =
        server::spawn(listener, shared.clone(), server_stop.clone()).map_err(|source| {
            DaemonError::Listen {
                address: listen,
                source,
            }
        })?;
    // Reloads (already validated by the signal handler) join the loop's inbox.
    let forward = {
        let messages = shared.messages.clone();
        tokio::spawn(async move {
            while let Some(config) = reloads.recv().await {
                if messages.send(Message::Reload(Box::new(config))).is_err() {
                    break;
                }
            }
        })
    };
    // One config, shared by the loop and the reconcile context (a copy held every policy twice).
    let config = Arc::new(config);
    let context = Context::new(config.clone(), environment.clone(), client)
        .with_listing_max_age(listing_max_age(&config))
        .with_stopping(stop.clone());
    let mut daemon = Daemon::new(
        Arc::new(context),
        config,
        environment,
        shared.clone(),
        state,
    );
    daemon.restore().await;
    // The election outlives the loop: the Lease is handed back only after in-flight work drained.
    let election_stop = CancellationToken::new();
    let election = election.map(|(api, settings)| {
        tokio::spawn(leader::run(
            api,
            settings,
            leading_sender,
            election_stop.clone(),
        ))
    });
    daemon.run(inbox, leading, stop.clone(), grace).await;
    election_stop.cancel();
    if let Some(election) = election {
        let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
    }
    forward.abort();
    server_stop.cancel();
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    tracing::info!("stopped");
    Ok(())
}

/// The notifier for `config.notify` (URLs from the environment; an unset variable was refused by
/// validation).
fn notifier(config: &Config, environment: &Environment) -> crate::notify::Notifier {
    let targets = config
        .notify
        .iter()
        .filter_map(|target| {
            let url = match &target.url {
                crate::config::NotifyUrl::Literal(url) => url.clone(),
                crate::config::NotifyUrl::Env(name) => environment.secret(name)?,
            };
            Some(crate::notify::Target {
                url,
                format: target.format,
                events: target.events.clone(),
            })
        })
        .collect();
    crate::notify::Notifier::start(targets, crate::notify::NotifySettings::default())
}

/// Counts registry requests by registry and outcome.
fn registry_observer(metrics: &Metrics) -> crate::registry::Observer {
    let requests = metrics.registry_requests.clone();
    Arc::new(move |registry: &str, outcome: &'static str| {
        requests
            .get_or_create(&metrics::RegistryLabels {
                registry: registry.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    })
}

/// Repository reconciles use cached listings this young: image polls keep them fresh, so a reconcile
/// re-lists only an image whose poll has not run (or kept failing) for two of its intervals.
fn listing_max_age(config: &Config) -> Duration {
    let longest = config
        .policies
        .iter()
        .filter_map(|policy| policy.interval)
        .chain([config.daemon.interval])
        .max()
        .unwrap_or(config.daemon.interval);
    longest * 2
}

/// Tags awaited per image (events name them; listings settle them): a bound, not a working limit.
const MAX_AWAITED_TAGS: usize = 64;

/// A webhook event of one image not settled yet.
struct Pending {
    /// When the first unsettled event of the image arrived.
    received: Instant,
    /// Repositories to re-plan for the image's changed listing whose run has not started.
    scheduled: HashSet<String>,
    /// Repositories whose running re-plan saw the changed listing.
    running: HashSet<String>,
}

impl Pending {
    fn repositories_done(&self) -> bool {
        self.scheduled.is_empty() && self.running.is_empty()
    }
}

/// Tags webhooks named for one image that its listings did not hold yet, and the re-checks made.
#[derive(Debug, Default)]
struct Awaited {
    tags: BTreeSet<String>,
    rechecks: u32,
}

struct Daemon {
    context: Arc<Context<RegistryClient>>,
    notifier: Arc<crate::notify::Notifier>,
    /// Holds already announced: (repository, file, line).
    holds: HashSet<(String, String, usize)>,
    config: Arc<Config>,
    environment: Environment,
    shared: Arc<Shared>,
    state: Arc<State>,
    scheduler: Scheduler<Key>,
    timing: Timing,
    /// Tracked images: normalized name → (reference, poll interval).
    images: BTreeMap<String, (ImageReference, Duration)>,
    repositories: Vec<String>,
    /// Why each scheduled repository runs next.
    triggers: HashMap<String, Trigger>,
    completed: HashSet<String>,
    parts: BTreeMap<String, RepositoryPart>,
    checked: BTreeMap<String, String>,
    errors: BTreeMap<String, ErrorStatus>,
    /// Webhook events per image not settled yet (for the push-to-commit histogram and the settled line).
    events: HashMap<String, Pending>,
    /// Since `events` was last empty: the first arrival and for how many images events settled (one
    /// info line when it empties again, so a burst of events is one line, not one per image).
    busy: Option<(Instant, usize)>,
    /// Per image, the tags webhooks named that its listings did not hold yet.
    awaited: HashMap<String, Awaited>,
    /// When each tracked image's last listing started (events are spaced by [`scheduler::EVENT_SPACING`]).
    listed: HashMap<String, Instant>,
    images_running: usize,
    repositories_running: usize,
    /// This replica holds the Lease (always without leader election): only then does work start.
    leader: bool,
    /// This replica has followed another since it started.
    followed: bool,
    /// Where the grid of regular image polls starts ([`scheduler::POLL_TICK`]).
    epoch: Instant,
}

enum Done {
    Image {
        image: String,
        result: Result<(bool, reconcile::Listing), Arc<reconcile::ReconcileError>>,
    },
    Repository {
        outcome: Box<Outcome>,
        took: Duration,
    },
}

impl Daemon {
    fn new(
        context: Arc<Context<RegistryClient>>,
        config: Arc<Config>,
        environment: Environment,
        shared: Arc<Shared>,
        state: Arc<State>,
    ) -> Self {
        let notifier = Arc::new(notifier(&config, &environment));
        let mut daemon = Daemon {
            context,
            notifier,
            holds: HashSet::new(),
            config,
            environment,
            shared,
            state,
            scheduler: Scheduler::new(),
            timing: Timing::default(),
            images: BTreeMap::new(),
            repositories: Vec::new(),
            triggers: HashMap::new(),
            completed: HashSet::new(),
            parts: BTreeMap::new(),
            checked: BTreeMap::new(),
            errors: BTreeMap::new(),
            events: HashMap::new(),
            busy: None,
            awaited: HashMap::new(),
            listed: HashMap::new(),
            images_running: 0,
            repositories_running: 0,
            leader: false,
            followed: false,
            epoch: Instant::now(),
        };
        daemon.learn_config();
        daemon
    }

    /// Tracked images and repositories from the config.
    fn learn_config(&mut self) {
        self.images = self
            .config
            .policies
            .iter()
            .map(|policy| {
                let interval = policy.interval.unwrap_or(self.config.daemon.interval);
                let name = policy.image.name();
                (name, (policy.image.clone(), interval))
            })
            .fold(BTreeMap::new(), |mut images, (name, (image, interval))| {
                let entry = images.entry(name).or_insert((image, interval));
                // One listing serves every policy of the image: poll at the shortest interval.
                entry.1 = entry.1.min(interval);
                images
            });
        // What the loop keeps per image goes with an image the config no longer tracks (it is never
        // listed again, so nothing else would settle it).
        let images = &self.images;
        self.listed.retain(|image, _| images.contains_key(image));
        self.awaited.retain(|image, _| images.contains_key(image));
        self.events.retain(|image, _| images.contains_key(image));
        self.repositories = self
            .config
            .repositories
            .iter()
            .map(|repository| repository.name.clone())
            .collect();
        // A re-plan of a repository the config dropped never runs: nothing waits for it.
        let repositories = &self.repositories;
        for pending in self.events.values_mut() {
            pending
                .scheduled
                .retain(|repository| repositories.contains(repository));
        }
        if self.events.is_empty() {
            self.busy = None;
        }
    }

    /// Seeds the context's tag cache from the state directory.
    async fn restore(&mut self) {
        let state = self.state.clone();
        let listings = tokio::task::spawn_blocking(move || state.listings())
            .await
            .ok()
            .and_then(|result| {
                result
                    .inspect_err(|error| tracing::warn!(error = %reconcile::chain(error), "could not read the state store; starting cold"))
                    .ok()
            })
            .unwrap_or_default();
        let now = Utc::now().timestamp();
        for (image, listing) in listings {
            if !self.images.contains_key(&image) {
                continue;
            }
            let age = Duration::from_secs(u64::try_from(now - listing.fetched_at).unwrap_or(0));
            self.context.seed_listing(&image, listing.tags, age).await;
        }
        if let Ok(Some(report)) = self.state.report()
            && let Ok(report) = serde_json::from_value::<Report>(report)
        {
            // The last known picture until the first cycle replaces it (not ready until then).
            *self.shared.report.lock().expect("report lock") = Arc::new(Report {
                ready: false,
                ..report
            });
        }
    }

    /// First run of every key: repositories now, image polls spread over their interval (on becoming
    /// the leader).
    fn start(&mut self) {
        let now = Instant::now();
        for repository in self.repositories.clone() {
            self.triggers.insert(repository.clone(), Trigger::Interval);
            self.scheduler.schedule(Key::Repository(repository), now);
        }
        for (image, (_, interval)) in &self.images {
            let at = now + scheduler::first_poll(*interval, fastrand::f64());
            let at = scheduler::on_tick(self.epoch, at, scheduler::POLL_TICK);
            self.scheduler.schedule(Key::Image(image.clone()), at);
        }
        self.publish_report();
    }

    async fn run(
        &mut self,
        mut inbox: mpsc::UnboundedReceiver<Message>,
        mut leading: watch::Receiver<bool>,
        stop: CancellationToken,
        grace: Duration,
    ) {
        let mut work: JoinSet<Done> = JoinSet::new();
        // Without an election this replica leads from the start. With one, nothing is known until its
        // first round (not ready, not leading), which may already have been published: `borrow` leaves
        // it unseen, so `changed` below still delivers it (a follower that learnt it follows before this
        // loop started is ready too).
        if *leading.borrow() {
            self.lead(true);
        }
        loop {
            let can_run = self.leader
                && self.images_running < MAX_IMAGE_WORK
                && self.repositories_running < MAX_REPOSITORY_WORK;
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                Ok(()) = leading.changed() => {
                    let leader = *leading.borrow_and_update();
                    self.lead(leader);
                }
                Some(message) = inbox.recv() => self.receive(message),
                Some(done) = work.join_next(), if !work.is_empty() => match done {
                    Ok(done) => self.finish(done),
                    Err(error) => tracing::error!(error = %error, "a work task failed"),
                },
                key = self.scheduler.next(), if can_run => self.spawn(key, &mut work),
            }
        }
        tracing::info!(in_flight = work.len(), grace = ?grace, "stopping: no new work; in-flight work finishes");
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = work.join_next().await {
                if let Ok(done) = done {
                    self.finish(done);
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = work.len(),
                "the shutdown grace ran out; in-flight work is abandoned (a push either happened or never started)"
            );
            work.abort_all();
        }
        self.save_report().await;
        self.notifier.close(Duration::from_secs(5)).await;
    }

    /// Leadership changed (or was first decided). A new leader starts as a fresh process does: every
    /// repository now, image polls spread over their interval — or all at once if it followed before,
    /// since then nothing was polled. A replica that stops leading starts no
    /// new work; work in flight finishes (a push from a stale leader loses git's compare-and-swap).
    /// A follower is ready as soon as it knows it follows, so a rollout is not held up by it.
    fn lead(&mut self, leader: bool) {
        let was = self.leader;
        self.leader = leader;
        self.shared.metrics.leader.set(i64::from(leader));
        if leader && !was {
            self.start();
            if self.followed {
                // Nothing was polled while following: the cached listings are as old as that.
                let now = Instant::now();
                for image in self.images.keys() {
                    self.scheduler.schedule(Key::Image(image.clone()), now);
                }
            }
        } else if !leader {
            self.followed = true;
            self.events.clear();
            self.busy = None;
            self.shared.ready.store(true, Ordering::Relaxed);
            self.shared.metrics.ready.set(1);
        }
        self.publish_report();
    }

    fn receive(&mut self, message: Message) {
        match message {
            Message::Event { image, .. } if !self.leader => {
                tracing::info!(image = %image, "webhook while following: ignored, the leader's polling picks the tag up");
            }
            Message::Event {
                image,
                tag,
                received,
            } => {
                if self.images.contains_key(&image) {
                    tracing::info!(image = %image, "webhook: re-checking the image now");
                    if self.events.is_empty() {
                        self.busy = Some((received, 0));
                    }
                    self.events.entry(image.clone()).or_insert_with(|| Pending {
                        received,
                        scheduled: HashSet::new(),
                        running: HashSet::new(),
                    });
                    if let Some(tag) = tag {
                        let awaited = self.awaited.entry(image.clone()).or_default();
                        // Bounded: a flood of events naming made-up tags holds at most this many.
                        if awaited.tags.len() < MAX_AWAITED_TAGS {
                            awaited.tags.insert(tag);
                        }
                    }
                    let at = scheduler::event_listing_at(
                        self.listed.get(&image).copied(),
                        Instant::now(),
                        scheduler::EVENT_SPACING,
                    );
                    self.scheduler.schedule(Key::Image(image), at);
                } else {
                    tracing::debug!(image = %image, "webhook for an image no policy tracks; ignored");
                }
            }
            Message::Reload(config) => self.reload(*config),
        }
    }

    fn reload(&mut self, config: Config) {
        let config = Arc::new(config);
        let client = match RegistryClient::observed(
            config.registries.clone(),
            &self.environment,
            Some(registry_observer(&self.shared.metrics)),
        ) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = %reconcile::chain(&error), "reload: the registry settings are unusable; the old config stays");
                return;
            }
        };
        let context = self
            .context
            .reconfigured(config.clone(), client)
            .with_listing_max_age(listing_max_age(&config));
        self.context = Arc::new(context);
        let old_images: BTreeSet<String> = self.images.keys().cloned().collect();
        let old_repositories: BTreeSet<String> = self.repositories.iter().cloned().collect();
        *self.shared.webhooks.lock().expect("webhooks lock") =
            server::WebhookSecrets::from_config(&config, &self.environment);
        let old = std::mem::replace(
            &mut self.notifier,
            Arc::new(notifier(&config, &self.environment)),
        );
        tokio::spawn(async move { old.close(Duration::from_secs(5)).await });
        self.config = config;
        self.learn_config();
        self.timing.reset();
        let now = Instant::now();
        for image in old_images
            .iter()
            .filter(|image| !self.images.contains_key(*image))
        {
            self.scheduler.cancel(&Key::Image(image.clone()));
        }
        for repository in old_repositories
            .iter()
            .filter(|repository| !self.repositories.contains(repository))
        {
            self.scheduler.cancel(&Key::Repository(repository.clone()));
            self.parts.remove(repository);
            self.completed.remove(repository);
        }
        for (image, (_, interval)) in &self.images {
            if !old_images.contains(image) {
                let at = now + scheduler::first_poll(*interval, fastrand::f64());
                let at = scheduler::on_tick(self.epoch, at, scheduler::POLL_TICK);
                self.scheduler.schedule(Key::Image(image.clone()), at);
            }
        }
        // Every repository is re-planned under the new config.
        for repository in self.repositories.clone() {
            self.triggers.insert(repository.clone(), Trigger::Interval);
            self.scheduler.schedule(Key::Repository(repository), now);
        }
        tracing::info!(
            repositories = self.repositories.len(),
            images = self.images.len(),
            "config reloaded"
        );
        self.publish_report();
    }

    fn spawn(&mut self, key: Key, work: &mut JoinSet<Done>) {
        let context = self.context.clone();
        match key {
            Key::Image(image) => {
                let Some((reference, _)) = self.images.get(&image).cloned() else {
                    self.scheduler.done(&Key::Image(image), None);
                    return;
                };
                self.images_running += 1;
                self.listed.insert(image.clone(), Instant::now());
                let span = tracing::info_span!("image", image = %image);
                work.spawn(tracing::Instrument::instrument(
                    async move {
                        let result = context.refresh_image(&reference).await;
                        Done::Image { image, result }
                    },
                    span,
                ));
            }
            Key::Repository(name) => {
                self.repositories_running += 1;
                let trigger = self.triggers.remove(&name).unwrap_or(Trigger::Interval);
                // This run plans on the listings of now: the events waiting for it wait for its end.
                for pending in self.events.values_mut() {
                    if pending.scheduled.remove(&name) {
                        pending.running.insert(name.clone());
                    }
                }
                work.spawn(async move {
                    let started = Instant::now();
                    let outcome = context
                        .reconcile_repository(&name, trigger, Utc::now(), Mode::Apply)
                        .await;
                    Done::Repository {
                        outcome: Box::new(outcome),
                        took: started.elapsed(),
                    }
                });
            }
        }
    }

    fn finish(&mut self, done: Done) {
        let now = Instant::now();
        match done {
            Done::Image { image, result } => {
                self.images_running -= 1;
                let key = Key::Image(image.clone());
                let interval = self
                    .images
                    .get(&image)
                    .map(|(_, interval)| *interval)
                    .unwrap_or(self.config.daemon.interval);
                let scope = format!("image {image}");
                let mut recheck = None;
                let ran = match result {
                    Ok((changed, listing)) => {
                        self.errors.remove(&scope);
                        self.notifier.send(crate::notify::Event::Recovered {
                            scope: crate::notify::Scope::Registry(registry_of(&image)),
                        });
                        self.count_listing(&image, if changed { "changed" } else { "unchanged" });
                        if changed {
                            self.save_listing(&image, &listing);
                            for repository in self.context.repositories_using(&image) {
                                tracing::info!(image = %image, repository = %repository, "the tag list changed; re-planning");
                                if let Some(pending) = self.events.get_mut(&image) {
                                    pending.scheduled.insert(repository.clone());
                                }
                                self.triggers
                                    .insert(repository.clone(), Trigger::Image(image.clone()));
                                self.scheduler.schedule(Key::Repository(repository), now);
                            }
                        }
                        recheck = self.settle_event(&image, &listing);
                        if self.event_done(&image) {
                            // Nothing awaited and no re-plan to wait for: the image's event is settled.
                            self.settled(&image);
                        }
                        Ran::Success {
                            interval,
                            due: None,
                        }
                    }
                    Err(error) => {
                        self.count_listing(&image, "failed");
                        let class = error.class();
                        tracing::warn!(image = %image, class = %class, error = %reconcile::chain(error.as_ref()), "listing failed");
                        self.record_error(scope, reconcile::chain(error.as_ref()), class.name());
                        self.notifier.send(crate::notify::Event::Failing {
                            scope: crate::notify::Scope::Registry(registry_of(&image)),
                            error: reconcile::chain(error.as_ref()),
                        });
                        Ran::Failure(class)
                    }
                };
                let regular = matches!(ran, Ran::Success { .. });
                let next = self.timing.next(&key.name(), ran, now, fastrand::f64());
                // Regular polls on the grid; a retry keeps its backoff's instant.
                let next = next.map(|at| {
                    if regular {
                        scheduler::on_tick(self.epoch, at, scheduler::POLL_TICK)
                    } else {
                        at
                    }
                });
                self.scheduler.done(&key, next);
                if let Some(after) = recheck {
                    self.scheduler.schedule(key, now + after);
                }
            }
            Done::Repository { outcome, took } => {
                self.repositories_running -= 1;
                let name = outcome.repository.clone();
                let key = Key::Repository(name.clone());
                self.observe(&outcome, took);
                let interval = self.config.daemon.repository_interval;
                let ran = match outcome.next {
                    Next::Requeue { due } => Ran::Success {
                        interval,
                        due: due
                            .map(|due| now + (due - Utc::now()).to_std().unwrap_or(Duration::ZERO)),
                    },
                    Next::Retry(class) => Ran::Failure(class),
                };
                if let Some(Ok(applied)) = &outcome.applied
                    && applied.pushes > 0
                {
                    // Downstream environments start their soak clocks now: re-plan them.
                    for downstream in self.downstream_of(&name) {
                        tracing::info!(upstream = %name, repository = %downstream, "the upstream wrote a commit; re-planning");
                        self.triggers
                            .insert(downstream.clone(), Trigger::Upstream(name.clone()));
                        self.scheduler.schedule(Key::Repository(downstream), now);
                    }
                }
                let next = self.timing.next(&key.name(), ran, now, fastrand::f64());
                // A repository that failed permanently is still re-read at its interval: a human may fix
                // the branch or the remote without touching tagwatch's config.
                let next = next.or(Some(now + interval));
                self.scheduler.done(&key, next);
                if self.completed.insert(name) && !self.shared.ready.load(Ordering::Relaxed) {
                    let ready = self
                        .repositories
                        .iter()
                        .all(|repository| self.completed.contains(repository));
                    if ready {
                        tracing::info!("ready: every repository completed a cycle");
                        self.shared.ready.store(true, Ordering::Relaxed);
                        self.shared.metrics.ready.set(1);
                    }
                }
                self.publish_report();
                let report = Arc::clone(&self.shared.report.lock().expect("report lock"));
                let state = self.state.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(error) = state.save_report(&*report) {
                        tracing::warn!(error = %reconcile::chain(&error), "could not save the status report");
                    }
                });
            }
        }
    }

    /// After a listing of `image`: the tags events named that it now holds are settled; when some are
    /// not listed yet, the wait before the image is listed again (at most
    /// [`scheduler::EVENT_RECHECKS`] times). With nothing awaited, the event's latency clock stops
    /// unless the listing changed (then the repository's push stops it).
    fn settle_event(&mut self, image: &str, listing: &reconcile::Listing) -> Option<Duration> {
        let awaited = self.awaited.get_mut(image)?;
        awaited
            .tags
            .retain(|tag| !listing.tags.iter().any(|listed| listed == tag));
        if awaited.tags.is_empty() {
            self.awaited.remove(image);
            return None;
        }
        match scheduler::event_recheck_after(awaited.rechecks) {
            Some(after) => {
                awaited.rechecks += 1;
                tracing::info!(image = %image, tags = ?awaited.tags, after = ?after, "webhook: the pushed tag is not listed yet; listing again");
                Some(after)
            }
            None => {
                tracing::warn!(image = %image, tags = ?awaited.tags, checks = scheduler::EVENT_RECHECKS, "webhook: the pushed tag is still not listed; the regular poll takes over");
                self.awaited.remove(image);
                None
            }
        }
    }

    /// Whether the event of `image` can settle: no tag of it awaited in a listing (`settle_event`
    /// removed the entry) and no re-plan for it scheduled or running.
    fn event_done(&self, image: &str) -> bool {
        !self.awaited.contains_key(image)
            && self
                .events
                .get(image)
                .is_some_and(Pending::repositories_done)
    }

    /// The event of `image` is settled (its listing held nothing new, its bump was pushed, or its
    /// re-plans ended without one): its arrival, if one was waiting. The last one of a busy period
    /// logs how many settled over how long.
    fn settled(&mut self, image: &str) -> Option<Instant> {
        let received = self.events.remove(image)?.received;
        if let Some((first, count)) = &mut self.busy {
            *count += 1;
            if self.events.is_empty() {
                let seconds = first.elapsed().as_secs_f64();
                tracing::info!(images = *count, seconds, "webhook events settled");
                self.busy = None;
            }
        }
        Some(received)
    }

    /// Repositories with a promotion policy whose upstream is `upstream`.
    fn downstream_of(&self, upstream: &str) -> Vec<String> {
        self.repositories
            .iter()
            .filter(|repository| {
                self.config.policies.iter().any(|policy| {
                    policy
                        .promotion
                        .as_ref()
                        .is_some_and(|promotion| promotion.from == upstream)
                        && policy.applies_to(repository)
                })
            })
            .cloned()
            .collect()
    }

    fn count_listing(&self, image: &str, outcome: &str) {
        self.shared
            .metrics
            .tag_listings
            .get_or_create(&ImageLabels {
                image: image.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    fn save_listing(&self, image: &str, listing: &reconcile::Listing) {
        let stored = StoredListing {
            tags: listing.tags.to_vec(),
            checksum: listing.checksum,
            fetched_at: Utc::now().timestamp(),
        };
        let state = self.state.clone();
        let image = image.to_string();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = state.save_listing(&image, &stored) {
                tracing::warn!(error = %reconcile::chain(&error), "could not save a listing");
            }
        });
    }

    fn record_error(&mut self, scope: String, message: String, class: &str) {
        let since = match self.errors.get(&scope) {
            Some(known) if known.message == message => known.since.clone(),
            _ => status::timestamp(Utc::now()),
        };
        self.errors.insert(
            scope.clone(),
            ErrorStatus {
                scope,
                message,
                since,
                class: Some(class.to_string()),
            },
        );
    }

    /// Metrics, errors and status of one repository's outcome.
    fn observe(&mut self, outcome: &Outcome, took: Duration) {
        let shared = self.shared.clone();
        let metrics = &shared.metrics;
        let repository = outcome.repository.clone();
        let labels = RepositoryLabels {
            repository: repository.clone(),
        };
        metrics
            .reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        let part = status::repository_part(outcome);
        // Errors of this repository: the ones of this outcome replace the earlier ones.
        let prefix = format!("repository {repository}");
        let earlier: Vec<String> = self
            .errors
            .keys()
            .filter(|scope| **scope == prefix || scope.starts_with(&format!("{prefix}:")))
            .cloned()
            .collect();
        let mut kept = BTreeMap::new();
        for scope in earlier {
            if let Some(error) = self.errors.remove(&scope) {
                kept.insert(scope, error);
            }
        }
        for (scope, message, class) in &part.problems {
            let since = match kept.get(scope) {
                Some(known) if known.message == *message => known.since.clone(),
                _ => status::timestamp(Utc::now()),
            };
            self.errors.insert(
                scope.clone(),
                ErrorStatus {
                    scope: scope.clone(),
                    message: message.clone(),
                    since,
                    class: Some(class.clone()),
                },
            );
            metrics
                .reconcile_errors
                .get_or_create(&ErrorLabels {
                    repository: repository.clone(),
                    class: class.clone(),
                })
                .inc();
        }
        if part.problems.is_empty() {
            metrics
                .last_success
                .get_or_create(&labels)
                .set(Utc::now().timestamp() as f64);
        }
        let checked = status::timestamp(Utc::now());
        for policy in part.choices.keys() {
            self.checked.insert(policy.clone(), checked.clone());
        }
        if let Ok(plan) = &outcome.plan {
            for kind in ["held", "rollback", "waiting", "soaking"] {
                let count = plan
                    .notes
                    .iter()
                    .filter(|note| {
                        matches!(
                            (&note.status, kind),
                            (Status::Held, "held")
                                | (Status::Rollback { .. }, "rollback")
                                | (Status::Waiting { .. }, "waiting")
                                | (Status::Soaking { .. }, "soaking")
                        )
                    })
                    .count();
                metrics
                    .targets
                    .get_or_create(&RepositoryKind {
                        repository: repository.clone(),
                        kind: kind.to_string(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        if let Some(Ok(applied)) = &outcome.applied {
            for bump in &applied.bumps {
                metrics
                    .bumps
                    .get_or_create(&BumpLabels {
                        repository: repository.clone(),
                        policy: bump.policy.clone(),
                    })
                    .inc();
            }
            metrics
                .commits
                .get_or_create(&labels)
                .inc_by(applied.commits.len() as u64);
            let pushed = RepositoryOutcome {
                repository: repository.clone(),
                outcome: "pushed".into(),
            };
            metrics
                .pushes
                .get_or_create(&pushed)
                .inc_by(applied.pushes as u64);
            let rejected = RepositoryOutcome {
                repository: repository.clone(),
                outcome: "rejected".into(),
            };
            metrics
                .pushes
                .get_or_create(&rejected)
                .inc_by(applied.rejected as u64);
            for (kind, count) in [
                ("opened", applied.opened.len()),
                ("updated", applied.updated.len()),
                ("closed", applied.closed.len()),
                ("merged", applied.merged.len()),
            ] {
                metrics
                    .pull_requests
                    .get_or_create(&RepositoryKind {
                        repository: repository.clone(),
                        kind: kind.to_string(),
                    })
                    .inc_by(count as u64);
            }
            if applied.pushes > 0 {
                for bump in &applied.bumps {
                    if let Some(received) = self.settled(&bump.image) {
                        let latency = received.elapsed();
                        tracing::info!(image = %bump.image, latency_ms = latency.as_millis() as u64, "webhook to pushed commit");
                        metrics.push_to_commit.observe(latency.as_secs_f64());
                    }
                }
            }
        }
        // An event whose re-plans are all done without a push of its image led to no commit (a tag
        // the policies do not take, a window, a failure reported on its own): it is settled too.
        let mut finished = Vec::new();
        for (image, pending) in &mut self.events {
            if pending.running.remove(&repository) {
                finished.push(image.clone());
            }
        }
        for image in finished {
            if self.event_done(&image) {
                self.settled(&image);
            }
        }
        self.announce(outcome);
        self.parts.insert(repository, part);
    }

    /// Notifications for one repository's outcome.
    fn announce(&mut self, outcome: &Outcome) {
        use crate::notify::{BumpLine, Event, PullRequestRef, Scope};
        let repository = outcome.repository.clone();
        let problems = outcome.problems();
        match problems.first() {
            Some(problem) => self.notifier.send(Event::Failing {
                scope: Scope::Repository(repository.clone()),
                error: reconcile::chain(problem.error.as_ref()),
            }),
            None => self.notifier.send(Event::Recovered {
                scope: Scope::Repository(repository.clone()),
            }),
        }
        if let Ok(plan) = &outcome.plan {
            let mut current = HashSet::new();
            for note in &plan.notes {
                if let Status::Rollback { .. } = note.status {
                    let key = (repository.clone(), note.file.clone(), note.line);
                    if !self.holds.contains(&key) {
                        self.notifier.send(Event::HoldStarted {
                            repository: repository.clone(),
                            file: note.file.clone(),
                            image: note.image.clone(),
                            version: note.from.clone(),
                        });
                    }
                    current.insert(key);
                }
            }
            self.holds.retain(|(name, ..)| *name != repository);
            self.holds.extend(current);
        }
        let Some(Ok(applied)) = &outcome.applied else {
            return;
        };
        if applied.pull_requests.is_empty()
            && applied.pushes > 0
            && let Some(commit) = applied.commits.last()
        {
            let branch = self
                .config
                .repositories
                .iter()
                .find(|entry| entry.name == repository)
                .map(|entry| entry.write_back.branch.clone())
                .unwrap_or_default();
            self.notifier.send(Event::BumpWritten {
                repository: repository.clone(),
                branch,
                commit: commit.clone(),
                bumps: applied
                    .bumps
                    .iter()
                    .map(|bump| BumpLine {
                        file: bump.file.clone(),
                        image: bump.image.clone(),
                        from: bump.from_version.clone(),
                        to: bump.to_version.clone(),
                        policy: bump.policy.clone(),
                    })
                    .collect(),
            });
        }
        for event in &applied.events {
            let pull_request = PullRequestRef {
                repository: repository.clone(),
                number: event.number,
                url: event.url.clone(),
                title: event.title.clone(),
            };
            self.notifier.send(match &event.change {
                reconcile::PullRequestChange::Opened => Event::PullRequestOpened(pull_request),
                reconcile::PullRequestChange::Updated => Event::PullRequestUpdated(pull_request),
                reconcile::PullRequestChange::Merged => Event::PullRequestMerged {
                    pull_request,
                    merge_commit: None,
                },
                reconcile::PullRequestChange::Closed(reason) => Event::PullRequestClosed {
                    pull_request,
                    reason: reason.clone(),
                },
            });
        }
    }

    /// Rebuilds the status report from the parts.
    fn publish_report(&self) {
        let mut policies = Vec::new();
        for policy in &self.config.policies {
            let tag = self
                .parts
                .values()
                .find_map(|part| part.choices.get(&policy.name).cloned());
            policies.push(PolicyStatus {
                name: policy.name.clone(),
                image: policy.image.name(),
                tag,
                checked_at: self.checked.get(&policy.name).cloned(),
            });
        }
        let report = Report {
            policies,
            targets: self
                .parts
                .values()
                .flat_map(|part| part.targets.iter().cloned())
                .collect(),
            pull_requests: self
                .parts
                .values()
                .flat_map(|part| part.pull_requests.iter().cloned())
                .collect(),
            errors: self.errors.values().cloned().collect(),
            ready: self.shared.ready.load(Ordering::Relaxed),
            leader: self.leader,
        };
        *self.shared.report.lock().expect("report lock") = Arc::new(report);
    }

    async fn save_report(&self) {
        self.publish_report();
        let report = Arc::clone(&self.shared.report.lock().expect("report lock"));
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = state.save_report(&*report);
        })
        .await;
    }
}

/// The registry host of a normalized image name.
fn registry_of(image: &str) -> String {
    image.split('/').next().unwrap_or_default().to_string()
}

/// Where the daemon keeps its state (for `tagwatch status` without a running daemon).
pub fn state_directory(config: &Config) -> PathBuf {
    config.daemon.state_dir.clone()
}
