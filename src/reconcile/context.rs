//! The long-lived [`Context`]: what outlives one reconcile — the config, the tag source and its tag
//! cache, the choices of policies, the cached clones (one per remote and branch, each behind a lane lock
//! so a branch never has two write-backs at once), the forge clients (built once, so their rate-limit
//! memory survives), and the index image → repositories from the last scan of each repository.
//!
//! Must not: sleep between reconciles or decide when the next one happens (the scheduler does, from
//! [`Next`]), or hold a global: everything lives in the value the caller owns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::{Config, RepositoryConfig, WriteBackMode};
use crate::environment::Environment;
use crate::error::ErrorClass;
use crate::forge::AnyForge;
use crate::git::Store;
use crate::policy::{self, Policy, Resolution};
use crate::reference::ImageReference;
use crate::source::TagSource;

use super::{
    CACHE_DIRECTORY, MAX_CONCURRENT_REPOSITORIES, Next, Outcome, Problem, ReconcileError,
    RepositoryPlan, Scope, Trigger, forge_settings, pull_request, push, remote_settings,
};

/// The longest one image may take to list its tags and choose (all retries included). A silent
/// registry then costs its own images this long, once per cycle, and nothing else: the other images
/// and repositories go on. Long enough for a slow registry's first token and a large listing.
pub const RESOLVE_DEADLINE: Duration = Duration::from_secs(20);

/// Policies resolved at once per repository: enough to overlap registry round trips, few enough to
/// stay polite; per-registry limits (`maxConcurrency`) apply underneath.
pub const MAX_CONCURRENT_RESOLUTIONS: usize = 8;

/// Whether a reconcile writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plan only (`plan`): nothing is committed, pushed or opened.
    Plan,
    /// Plan and write back (`run --once`, the daemon).
    Apply,
}

/// A hook called right before each push (tests use it to push first, as a concurrent human would).
pub type BeforePush = Arc<dyn Fn(&str) + Send + Sync>;

/// One cached clone, shared by the repository entries with the same remote and target branch. The
/// outer lock is the lane: held for a whole reconcile, it serializes write-backs on one branch.
pub(super) type Lane = Arc<tokio::sync::Mutex<Option<(u64, SharedStore)>>>;
pub(super) type SharedStore = Arc<Mutex<Store>>;

/// A tag listing kept between reconciles.
#[derive(Debug, Clone)]
pub struct Listing {
    pub tags: Arc<Tags>,
    /// Hash of the tags in order: an unchanged list means no new work.
    pub checksum: u64,
}

/// A listing's tags in one buffer, in order: their bytes end to end and where each one ends. The
/// daemon keeps a listing of every tracked image; as separate `String`s 1,000 listings of 100 short
/// tags take ≈ 5.6 MB of heap (a 24-byte header and a 32-byte allocation each), in this form ≈ 1 MB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    text: Box<str>,
    ends: Box<[u32]>,
}

impl Tags {
    /// The tags, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.ends.len()).map(|index| {
            let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
            // Every bound is where a tag ended when `text` was built: a character boundary.
            &self.text[start as usize..self.ends[index] as usize]
        })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The tags as separate strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl From<&[String]> for Tags {
    /// Panics only past 4 GiB of tag text, which a listing's byte cap (16 MiB) rules out.
    fn from(tags: &[String]) -> Self {
        let mut text = String::with_capacity(tags.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(tags.len());
        for tag in tags {
            text.push_str(tag);
            ends.push(u32::try_from(text.len()).expect("a listing holds less than 4 GiB of tags"));
        }
        Tags {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }
}

type ListingSlot = Arc<tokio::sync::Mutex<Option<(tokio::time::Instant, ListingResult)>>>;
type ListingResult = Result<Listing, Arc<ReconcileError>>;
type ResolutionCell = Arc<OnceCell<Result<Resolution, Arc<ReconcileError>>>>;
type KeptResolution = (u64, Option<DateTime<Utc>>, ResolutionCell);

/// The long-lived state of the controller. Cheap to share behind an `Arc`.
pub struct Context<S> {
    config: Arc<Config>,
    environment: Environment,
    source: S,
    cache_root: PathBuf,
    /// How old a cached listing may be when a repository is reconciled; `None`: a listing serves for the
    /// life of the context (`plan`, `run --once`).
    listing_max_age: Option<Duration>,
    resolve_deadline: Duration,
    /// What survives a config reload: listings, cached clones, the image index.
    shared: Arc<Shared>,
    /// Bumped by each reload: a cached clone opened under an older config is opened again (its remote
    /// settings may have changed).
    generation: u64,
    /// Policy name → (listing checksum, `now` when the choice depends on time, the choice).
    resolutions: Mutex<HashMap<String, KeptResolution>>,
    forges: Mutex<HashMap<String, Arc<AnyForge>>>,
    /// Upstream histories for promotion: (upstream, paths) → (head, timeline).
    pub(super) timelines:
        Mutex<HashMap<String, (crate::git::Oid, Arc<super::promotion::Timeline>)>>,
    before_push: Option<BeforePush>,
    stopping: CancellationToken,
    /// Debug builds only: a fault point (`TAGWATCH_FAULT_POINT`) where the process stops, for crash tests.
    fault_point: Option<crate::fault::Fault>,
}

#[derive(Default)]
struct Shared {
    listings: Mutex<HashMap<String, ListingSlot>>,
    lanes: Mutex<HashMap<String, Lane>>,
    index: Mutex<HashMap<String, BTreeSet<String>>>,
}

/// How to retry a write-back that went through with problems: `None` when none can pass by retrying;
/// the longest wait a rate limit asked for; else transient.
fn retry_class(problems: &[Problem]) -> Option<ErrorClass> {
    let classes: Vec<ErrorClass> = problems
        .iter()
        .map(Problem::class)
        .filter(|class| class.is_retryable())
        .collect();
    let longest_wait = classes
        .iter()
        .filter_map(|class| match class {
            ErrorClass::RateLimited { retry_after } => *retry_after,
            _ => None,
        })
        .max();
    match longest_wait {
        Some(wait) => Some(ErrorClass::RateLimited {
            retry_after: Some(wait),
        }),
        None => classes.first().copied(),
    }
}

/// Names a fault point in debug builds (crash tests kill the process there); read once per context.
pub const FAULT_POINT_VARIABLE: &str = crate::fault::POINT_VARIABLE;

impl<S: TagSource + Send + Sync + 'static> Context<S> {
    /// The cached clones live in `STATE_DIR/git` (docs/reference/configuration.md `daemon.stateDir`), reused between runs.
    /// `config` is shared, not copied, with whoever else holds it (the daemon keeps the same one).
    pub fn new(config: impl Into<Arc<Config>>, environment: Environment, source: S) -> Self {
        let config: Arc<Config> = config.into();
        let cache_root = config.daemon.state_dir.join(CACHE_DIRECTORY);
        let fault_point = crate::fault::Fault::from_environment(&environment);
        Context {
            config,
            environment,
            source,
            cache_root,
            listing_max_age: None,
            resolve_deadline: RESOLVE_DEADLINE,
            shared: Arc::default(),
            generation: 0,
            resolutions: Mutex::new(HashMap::new()),
            forges: Mutex::new(HashMap::new()),
            timelines: Mutex::new(HashMap::new()),
            before_push: None,
            stopping: CancellationToken::new(),
            fault_point,
        }
    }

    /// A context for a reloaded `config` and its tag source that keeps this one's listings, cached
    /// clones (opened again under the new settings when next used) and image index; policy choices and
    /// forge clients start afresh.
    pub fn reconfigured(&self, config: impl Into<Arc<Config>>, source: S) -> Self {
        let config: Arc<Config> = config.into();
        Context {
            cache_root: config.daemon.state_dir.join(CACHE_DIRECTORY),
            config,
            environment: self.environment.clone(),
            source,
            listing_max_age: self.listing_max_age,
            resolve_deadline: self.resolve_deadline,
            shared: Arc::clone(&self.shared),
            generation: self.generation + 1,
            resolutions: Mutex::new(HashMap::new()),
            forges: Mutex::new(HashMap::new()),
            timelines: Mutex::new(HashMap::new()),
            before_push: self.before_push.clone(),
            stopping: self.stopping.clone(),
            fault_point: self.fault_point.clone(),
        }
    }

    /// Once `token` is cancelled, no new push or pull-request change starts (in-flight ones finish).
    pub fn with_stopping(mut self, token: CancellationToken) -> Self {
        self.stopping = token;
        self
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Debug builds: stops (or pauses) the process here when `TAGWATCH_FAULT_POINT` names `point`
    /// ([`crate::fault`]).
    pub(super) fn fault(&self, point: &str) {
        if let Some(fault) = &self.fault_point {
            fault.at(point);
        }
    }

    pub fn with_before_push(mut self, hook: BeforePush) -> Self {
        self.before_push = Some(hook);
        self
    }

    /// Cached listings older than `max_age` are read again when a repository is reconciled (the
    /// daemon; `plan` and `run --once` read each image once).
    pub fn with_listing_max_age(mut self, max_age: Duration) -> Self {
        self.listing_max_age = Some(max_age);
        self
    }

    /// Bounds one image's listing and choice (default [`RESOLVE_DEADLINE`]).
    pub fn with_resolve_deadline(mut self, deadline: Duration) -> Self {
        self.resolve_deadline = deadline;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(super) fn environment(&self) -> &Environment {
        &self.environment
    }

    pub(super) fn resolve_deadline(&self) -> Duration {
        self.resolve_deadline
    }

    pub(super) fn config_arc(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub(super) fn before_push(&self) -> Option<&BeforePush> {
        self.before_push.as_ref()
    }

    /// `plan`: every repository, nothing changed. One repository's failure never stops the others.
    pub async fn plan_all(&self, now: DateTime<Utc>) -> Vec<Outcome> {
        self.each_repository(now, Mode::Plan).await
    }

    /// `run --once`: plan and write back every repository.
    pub async fn run_all(&self, now: DateTime<Utc>) -> Vec<Outcome> {
        self.each_repository(now, Mode::Apply).await
    }

    /// Every repository, [`MAX_CONCURRENT_REPOSITORIES`] at a time (entries sharing a remote and branch
    /// wait for each other on their lane), results in config order.
    async fn each_repository(&self, now: DateTime<Utc>, mode: Mode) -> Vec<Outcome> {
        let names: Vec<String> = self
            .config
            .repositories
            .iter()
            .map(|repository| repository.name.clone())
            .collect();
        let mut outcomes = at_most(
            MAX_CONCURRENT_REPOSITORIES,
            names.iter().enumerate(),
            |(index, name)| self.repository_in_order(index, name, now, mode),
        )
        .await;
        outcomes.sort_by_key(|(index, _)| *index);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// One repository of [`Self::each_repository`], with its place in the config.
    async fn repository_in_order(
        &self,
        index: usize,
        name: &str,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> (usize, Outcome) {
        let outcome = self
            .reconcile_repository(name, Trigger::Once, now, mode)
            .await;
        (index, outcome)
    }

    /// Reconciles one repository: gather, decide, and (in [`Mode::Apply`]) write back. Never panics on
    /// bad input; every failure is in the [`Outcome`].
    pub async fn reconcile_repository(
        &self,
        name: &str,
        trigger: Trigger,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Outcome {
        let span = tracing::info_span!("repository", repository = %name, trigger = %trigger);
        async move {
            let Some(repository) = self
                .config
                .repositories
                .iter()
                .find(|repository| repository.name == name)
            else {
                return failed(Problem::new(
                    name,
                    Scope::Repository,
                    ReconcileError::UnknownRepository(name.to_string()),
                ));
            };
            self.reconcile(repository, now, mode).await
        }
        .instrument(span)
        .await
    }

    async fn reconcile(
        &self,
        repository: &RepositoryConfig,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Outcome {
        let name = repository.name.as_str();
        let repository_problem = |error| Problem::new(name, Scope::Repository, error);
        let settings = match remote_settings(repository, &self.environment) {
            Ok(settings) => settings,
            Err(error) => return failed(repository_problem(error)),
        };
        let lane = self.lane(&settings);
        let mut guard = lane.lock().await;
        let planned = self
            .listing_ahead(repository, async {
                let store = self
                    .store_in(&mut guard, settings)
                    .await
                    .map_err(repository_problem)?;
                let plan = self.plan_on(repository, &store, now).await?;
                Ok::<_, Problem>((store, plan))
            })
            .await;
        let (store, plan) = match planned {
            Ok(planned) => planned,
            Err(problem) => return failed(problem),
        };
        self.remember_images(name, &plan);
        if mode == Mode::Plan {
            let next = Next::Requeue {
                due: plan.next_due(),
            };
            return Outcome {
                repository: name.to_string(),
                plan: Ok(plan),
                applied: None,
                next,
            };
        }
        let (plan, applied) = match repository.write_back.mode {
            WriteBackMode::Push => push::push_mode(self, repository, &store, plan, now).await,
            WriteBackMode::PullRequest => {
                let applied =
                    pull_request::pull_request_mode(self, repository, &store, &plan, now).await;
                (plan, applied)
            }
        };
        drop(guard);
        let next = match &applied {
            Err(problem) => Next::Retry(problem.class()),
            // A group's pull request that failed for a reason that can pass (a forge's 5xx, a rate
            // limit) is retried on the retry schedule, not at the next regular re-read.
            Ok(applied) => match retry_class(&applied.problems) {
                Some(class) => Next::Retry(class),
                None => Next::Requeue {
                    due: plan.next_due(),
                },
            },
        };
        Outcome {
            repository: name.to_string(),
            plan: Ok(plan),
            applied: Some(applied),
            next,
        }
    }

    /// Runs `work` (opening the clone, fetching, scanning: mostly git) while the tags of the images
    /// whose policies apply to `repository` are listed into the cache, so the listings `work` then needs
    /// are already there or on their way. Which of those images the targets use is only known after the
    /// scan; an image no target uses costs one listing that is not otherwise needed. Only where a listing
    /// serves for the life of the context (`plan`, `run --once`): the daemon lists on its own schedule.
    /// Promotion policies choose from the upstream's history, not from a listing: not listed here.
    /// What is listed ahead is only cached (a failure too, as a listing always is), never reported:
    /// the policies the targets need report it when they resolve. Unfinished listings are dropped
    /// when `work` ends.
    async fn listing_ahead<T>(
        &self,
        repository: &RepositoryConfig,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        if self.listing_max_age.is_some() {
            return work.await;
        }
        let mut images: Vec<&ImageReference> = Vec::new();
        for policy in &self.config.policies {
            if policy.applies_to(&repository.name)
                && policy.promotion.is_none()
                && !images.iter().any(|image| {
                    image.registry == policy.image.registry
                        && image.repository == policy.image.repository
                })
            {
                images.push(&policy.image);
            }
        }
        let ahead = futures_util::StreamExt::for_each_concurrent(
            futures_util::stream::iter(images),
            MAX_CONCURRENT_RESOLUTIONS,
            |image| async move {
                let _ = self.listing(image, None).await;
            },
        );
        let work = std::pin::pin!(work);
        let ahead = std::pin::pin!(ahead);
        match futures_util::future::select(work, ahead).await {
            futures_util::future::Either::Left((output, _unfinished)) => output,
            futures_util::future::Either::Right(((), work)) => work.await,
        }
    }

    /// The cached clone held by a locked lane, opened (again) when it is missing or from an older config.
    pub(super) async fn store_in(
        &self,
        slot: &mut Option<(u64, SharedStore)>,
        settings: crate::git::RemoteSettings,
    ) -> Result<SharedStore, ReconcileError> {
        if let Some((generation, store)) = slot.as_ref()
            && *generation == self.generation
        {
            return Ok(store.clone());
        }
        // Dropped first: the cached clone's lock is released before it is opened again.
        *slot = None;
        let cache_root = self.cache_root.clone();
        let store = blocking(move || Store::open(&cache_root, &settings)).await??;
        let store = Arc::new(Mutex::new(store));
        *slot = Some((self.generation, store.clone()));
        Ok(store)
    }

    /// The repositories whose last scan found a target naming `image` (normalized).
    pub fn repositories_using(&self, image: &str) -> Vec<String> {
        self.shared
            .index
            .lock()
            .expect("index lock")
            .get(image)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remember_images(&self, repository: &str, plan: &RepositoryPlan) {
        let mut index = self.shared.index.lock().expect("index lock");
        for (image, names) in index.iter_mut() {
            if !plan.images.contains(image) {
                names.remove(repository);
            }
        }
        for image in &plan.images {
            index
                .entry(image.clone())
                .or_default()
                .insert(repository.to_string());
        }
        index.retain(|_, names| !names.is_empty());
    }

    pub(super) fn lane(&self, settings: &crate::git::RemoteSettings) -> Lane {
        let key = lane_key(settings);
        self.shared
            .lanes
            .lock()
            .expect("lanes lock")
            .entry(key)
            .or_default()
            .clone()
    }

    /// The forge client of a pull-request repository, built once.
    pub(super) fn forge(
        &self,
        repository: &RepositoryConfig,
    ) -> Result<Arc<AnyForge>, ReconcileError> {
        if let Some(forge) = self
            .forges
            .lock()
            .expect("forges lock")
            .get(&repository.name)
        {
            return Ok(forge.clone());
        }
        let settings = forge_settings(repository, &self.environment)?;
        let forge = Arc::new(AnyForge::connect(&settings)?);
        self.forges
            .lock()
            .expect("forges lock")
            .insert(repository.name.clone(), forge.clone());
        Ok(forge)
    }

    /// Lists `image` again now (the daemon's poll, a webhook) and tells whether the list changed since
    /// the last listing this context saw (a first listing counts as changed).
    pub async fn refresh_image(
        &self,
        image: &ImageReference,
    ) -> Result<(bool, Listing), Arc<ReconcileError>> {
        let before = self.cached_checksum(image).await;
        let listing = self.listing(image, Some(Duration::ZERO)).await?;
        Ok((before != Some(listing.checksum), listing))
    }

    /// Puts a listing read `age` ago (kept in the state directory) into the cache, so a restart does not
    /// list every registry at once.
    pub async fn seed_listing(&self, image: &str, tags: Vec<String>, age: Duration) {
        let slot = self.listing_slot(image);
        let mut guard = slot.lock().await;
        let now = tokio::time::Instant::now();
        let fetched = now.checked_sub(age).unwrap_or(now);
        *guard = Some((
            fetched,
            Ok(Listing {
                checksum: checksum(&tags),
                tags: Arc::new(Tags::from(tags.as_slice())),
            }),
        ));
    }

    async fn cached_checksum(&self, image: &ImageReference) -> Option<u64> {
        let slot = self.listing_slot(&image.name());
        let guard = slot.lock().await;
        match guard.as_ref() {
            Some((_, Ok(listing))) => Some(listing.checksum),
            _ => None,
        }
    }

    fn listing_slot(&self, image: &str) -> ListingSlot {
        self.shared
            .listings
            .lock()
            .expect("listings lock")
            .entry(image.to_string())
            .or_default()
            .clone()
    }

    /// The image's tags: the cached listing when younger than `max_age` (`None`: any age), else a new
    /// one. Concurrent callers for one image share one request; a failure is kept as long as a success
    /// would be, so a broken registry is asked once per cycle, not once per repository.
    async fn listing(
        &self,
        image: &ImageReference,
        max_age: Option<Duration>,
    ) -> Result<Listing, Arc<ReconcileError>> {
        let name = image.name();
        let slot = self.listing_slot(&name);
        let mut guard = slot.lock().await;
        if let Some((at, result)) = guard.as_ref()
            && max_age.is_none_or(|max_age| at.elapsed() <= max_age)
        {
            return result.clone();
        }
        let fetched = tokio::time::Instant::now();
        let result =
            match tokio::time::timeout(self.resolve_deadline, self.source.list_tags(image)).await {
                Err(_) => Err(Arc::new(ReconcileError::Deadline {
                    image: name.clone(),
                    after: self.resolve_deadline,
                })),
                Ok(Err(error)) => Err(Arc::new(ReconcileError::Resolve(
                    policy::ResolveError::ListTags {
                        image: name.clone(),
                        source: Box::new(error),
                    },
                ))),
                Ok(Ok(tags)) => Ok(Listing {
                    checksum: checksum(&tags),
                    tags: Arc::new(Tags::from(tags.as_slice())),
                }),
            };
        *guard = Some((fetched, result.clone()));
        result
    }

    /// The policy's choice on the current listing of its image, bounded by the resolve deadline.
    pub(super) async fn resolution(
        &self,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Resolution, Arc<ReconcileError>> {
        let deadline = tokio::time::Instant::now() + self.resolve_deadline;
        let listing = self.listing(&policy.image, self.listing_max_age).await?;
        // Only `minAge` depends on the clock; `digest` re-reads the digest once per `now` so a moved tag
        // is seen.
        let when = (!policy.min_age.is_zero() || policy.digest).then_some(now);
        let cell = {
            let mut resolutions = self.resolutions.lock().expect("resolutions lock");
            let entry = resolutions.get(&policy.name);
            match entry {
                Some((checksum, at, cell)) if *checksum == listing.checksum && *at == when => {
                    cell.clone()
                }
                _ => {
                    let cell = ResolutionCell::default();
                    resolutions.insert(policy.name.clone(), (listing.checksum, when, cell.clone()));
                    cell
                }
            }
        };
        let choose = async {
            let selection = policy::select_from(policy, listing.tags.iter());
            policy::choose(policy, selection, &self.source, now)
                .await
                .map_err(|error| Arc::new(ReconcileError::Resolve(error)))
        };
        match tokio::time::timeout_at(deadline, cell.get_or_init(|| choose)).await {
            Ok(result) => result.clone(),
            Err(_) => Err(Arc::new(ReconcileError::Deadline {
                image: policy.image.name(),
                after: self.resolve_deadline,
            })),
        }
    }

    /// Resolves `policies` side by side; each result keyed by policy name.
    pub(super) async fn resolve_all(
        &self,
        repository: &str,
        policies: Vec<&Policy>,
        now: DateTime<Utc>,
    ) -> BTreeMap<String, Result<Resolution, Problem>> {
        at_most(MAX_CONCURRENT_RESOLUTIONS, policies, |policy| {
            self.resolve_one(repository, policy, now)
        })
        .await
        .into_iter()
        .collect()
    }

    /// One policy of [`Self::resolve_all`], in its span; a failure is logged and kept as a problem.
    fn resolve_one<'a>(
        &'a self,
        repository: &'a str,
        policy: &'a Policy,
        now: DateTime<Utc>,
    ) -> impl Future<Output = (String, Result<Resolution, Problem>)> + 'a {
        let span =
            tracing::info_span!("policy", policy = %policy.name, image = %policy.image.name());
        async move {
            let result = self.resolution(policy, now).await;
            if let Err(error) = &result {
                tracing::warn!(class = %error.class(), error = %crate::reconcile::chain(error.as_ref()), "policy not resolved");
            }
            (
                policy.name.clone(),
                result.map_err(|error| Problem {
                    repository: repository.to_string(),
                    scope: Scope::Policy(policy.name.clone()),
                    error,
                }),
            )
        }
        .instrument(span)
    }

    /// `config` creation times for `order: newest` comparisons (each bounded by the resolve deadline).
    pub(super) async fn created_times(
        &self,
        repository: &str,
        needed: Vec<(String, String)>,
    ) -> super::decide::CreatedTimes {
        at_most(MAX_CONCURRENT_RESOLUTIONS, needed, |(image, tag)| {
            self.created_one(repository, image, tag)
        })
        .await
        .into_iter()
        .collect()
    }

    /// One creation time of [`Self::created_times`].
    async fn created_one(
        &self,
        repository: &str,
        image: String,
        tag: String,
    ) -> ((String, String), Result<Option<DateTime<Utc>>, Problem>) {
        let result = match ImageReference::parse(&image) {
            Err(error) => Err(ReconcileError::Created {
                image: image.clone(),
                tag: tag.clone(),
                source: Box::new(error),
            }),
            Ok(reference) => {
                match tokio::time::timeout(
                    self.resolve_deadline,
                    self.source.created(&reference, &tag),
                )
                .await
                {
                    Err(_) => Err(ReconcileError::Deadline {
                        image: image.clone(),
                        after: self.resolve_deadline,
                    }),
                    Ok(result) => result.map_err(|error| ReconcileError::Created {
                        image: image.clone(),
                        tag: tag.clone(),
                        source: Box::new(error),
                    }),
                }
            }
        };
        let result =
            result.map_err(|error| Problem::new(repository, Scope::Policy(image.clone()), error));
        ((image, tag), result)
    }
}

/// Runs `make(item)` for every item with at most `limit` of those futures alive at once: each is made
/// only when a place is free, so a long list never holds every future's state at once (collecting
/// 1,000 resolution futures first held one 13.7 MB block during every reconcile of a 1,000-policy
/// repository). Results in completion order.
async fn at_most<T, F: Future>(
    limit: usize,
    items: impl IntoIterator<Item = T>,
    mut make: impl FnMut(T) -> F,
) -> Vec<F::Output> {
    let mut waiting = items.into_iter();
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut outputs = Vec::new();
    loop {
        while running.len() < limit
            && let Some(item) = waiting.next()
        {
            running.push(make(item));
        }
        match futures_util::StreamExt::next(&mut running).await {
            Some(output) => outputs.push(output),
            None => return outputs,
        }
    }
}

/// Entries with the same remote and target branch share one cached clone and one lane.
pub(super) fn lane_key(settings: &crate::git::RemoteSettings) -> String {
    format!("{}\n{}", settings.redacted_url(), settings.branch)
}

/// An outcome that failed before anything was planned.
fn failed(problem: Problem) -> Outcome {
    Outcome {
        repository: problem.repository.clone(),
        next: Next::Retry(problem.class()),
        plan: Err(problem),
        applied: None,
    }
}

fn checksum(tags: &[String]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    tags.hash(&mut hasher);
    hasher.finish()
}

/// Runs blocking git / file / CPU work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ReconcileError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ReconcileError::Join(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_keeps_limit_futures_alive_and_runs_every_item() {
        let alive = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let made = std::sync::atomic::AtomicUsize::new(0);
        let run = |item: u64| {
            made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (alive, most) = (&alive, &most);
            async move {
                let now = alive.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                // Later items finish sooner: completion order differs from item order.
                tokio::time::sleep(Duration::from_millis(100 - item)).await;
                alive.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                item
            }
        };
        let mut outputs = at_most(3, 0..20u64, run).await;
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 20);
        assert_ne!(outputs, (0..20).collect::<Vec<_>>());
        outputs.sort_unstable();
        assert_eq!(outputs, (0..20).collect::<Vec<_>>());
        assert!(at_most(3, Vec::<u64>::new(), run).await.is_empty());
    }

    #[test]
    fn a_listing_in_one_buffer_gives_back_its_tags_in_order() {
        let listed: Vec<String> = ["1.0.0", "", "v2-é", "1.0.0", "latest"]
            .map(String::from)
            .to_vec();
        let tags = Tags::from(listed.as_slice());
        assert_eq!(tags.len(), 5);
        assert_eq!(tags.iter().len(), 5);
        assert_eq!(tags.iter().collect::<Vec<_>>(), listed);
        assert_eq!(tags.to_vec(), listed);
        let empty = Tags::from(&[][..]);
        assert!(empty.is_empty());
        assert_eq!(empty.iter().next(), None);
    }
}
