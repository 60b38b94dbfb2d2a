//! Gathering the facts of one repository, then deciding: fetch the branch, read its YAML files from the
//! object database (never checked out), resolve the policies the targets need, read history for
//! rollback detection and the creation times `order: newest` compares — then hand everything to the
//! pure [`decide`](super::decide::decide) on a blocking thread (re-parsing rewritten files is CPU work).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::Instrument as _;

use chrono::{DateTime, Utc};

use crate::config::RepositoryConfig;
use crate::forge::CheckState;
use crate::git::{GitError, Oid, Store, TreeFile};
use crate::manifest::{self, files};
use crate::policy::{Policy, Resolution};
use crate::source::TagSource;

use super::context::{Context, SharedStore, blocking};
use super::decide::{self, Facts, Promoted, ScannedFile};
use super::history::{HISTORY_LIMIT, Written};
use super::promotion::{self, Readiness, Timeline, UpstreamCommit};
use super::{Problem, ReconcileError, RepositoryPlan, Scope};

/// The YAML files of one commit, read and discovered.
pub(super) struct Scan {
    pub files: Vec<ScannedFile>,
    /// A YAML file could not be read whole (too large): the plan may miss targets.
    pub incomplete: bool,
}

impl<S: TagSource + Send + Sync + 'static> Context<S> {
    /// Fetches the repository's branch and plans on its head.
    pub(super) async fn plan_on(
        &self,
        repository: &RepositoryConfig,
        store: &SharedStore,
        now: DateTime<Utc>,
    ) -> Result<RepositoryPlan, Problem> {
        let name = repository.name.as_str();
        let repository_problem =
            |error: ReconcileError| Problem::new(name, Scope::Repository, error);
        let paths = repository.paths.clone();
        let shared = store.clone();
        let gathered = blocking(
            move || -> Result<(Oid, Scan, Result<Written, GitError>), GitError> {
                let mut store = lock(&shared);
                maintain(&mut store);
                let branch = store.settings().branch.clone();
                let head = store
                    .fetch(&branch)?
                    .ok_or_else(|| GitError::MissingBranch {
                        url: store.settings().redacted_url(),
                        branch: branch.clone(),
                    })?;
                let scan = scan(&store, head, &paths)?;
                let history = store
                    .recent_commits(head, HISTORY_LIMIT)
                    .map(|(commits, _)| Written::from_commits(&commits));
                Ok((head, scan, history))
            },
        )
        .await
        .map_err(repository_problem)?;
        let (head, scan, history) = gathered.map_err(|error| repository_problem(error.into()))?;
        let history = history
            .map_err(|error| Problem::new(name, Scope::Repository, ReconcileError::History(error)));
        let config = Arc::clone(self.config_arc());
        let index = decide::PolicyIndex::new(&config.policies, name);
        let needed = decide::needed_policies(&scan.files, &index);
        let (promoting, plain): (Vec<&Policy>, Vec<&Policy>) = needed
            .into_iter()
            .partition(|policy| policy.promotion.is_some());
        let mut resolutions = self.resolve_all(name, plain, now).await;
        let mut promotions = BTreeMap::new();
        for policy in promoting {
            let span =
                tracing::info_span!("policy", policy = %policy.name, image = %policy.image.name());
            match self
                .promote(name, store, policy, now)
                .instrument(span)
                .await
            {
                Ok((resolution, promoted)) => {
                    if let Some(resolution) = resolution {
                        resolutions.insert(policy.name.clone(), Ok(resolution));
                    }
                    promotions.insert(policy.name.clone(), promoted);
                }
                Err(problem) => {
                    resolutions.insert(policy.name.clone(), Err(problem));
                }
            }
        }
        let needed_created =
            decide::needed_created_times(&scan.files, &index, &resolutions, &history);
        let created = self.created_times(name, needed_created).await;
        let repository = repository.clone();
        let incomplete = scan.incomplete;
        let mut plan = blocking(move || {
            let plan = decide::decide(&Facts {
                repository: &repository,
                policies: &config.policies,
                files: &scan.files,
                resolutions: &resolutions,
                history: &history,
                created: &created,
                promotions: &promotions,
                now,
            });
            free_aside(scan);
            plan
        })
        .await
        .map_err(repository_problem)?;
        plan.head = head.to_string();
        plan.incomplete |= incomplete;
        tracing::debug!(
            head = %plan.head,
            bumps = plan.bumps.len(),
            notes = plan.notes.len(),
            problems = plan.problems.len(),
            "planned"
        );
        Ok(plan)
    }
}

impl<S: TagSource + Send + Sync + 'static> Context<S> {
    /// A promotion policy's choice: the best candidate (in the policy's own order, after its own
    /// filters) that ran upstream long enough, with no rollback from it since, and (with
    /// `requireStatus`) the named statuses green on an upstream commit running it. Also the best
    /// version still soaking, when it is better than the choice.
    async fn promote(
        &self,
        repository: &str,
        store: &SharedStore,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<(Option<Resolution>, Promoted), Problem> {
        let problem = |error| Problem::new(repository, Scope::Policy(policy.name.clone()), error);
        let promotion = policy
            .promotion
            .as_ref()
            .expect("promote is only called for promotion policies");
        let upstream = self
            .config()
            .repositories
            .iter()
            .find(|candidate| candidate.name == promotion.from)
            .ok_or_else(|| problem(ReconcileError::UnknownRepository(promotion.from.clone())))?;
        let paths = if promotion.paths.is_empty() {
            upstream.paths.clone()
        } else {
            promotion.paths.clone()
        };
        let timeline = self
            .timeline(store, upstream, paths)
            .await
            .map_err(problem)?;
        let image = policy.image.name();
        let seen = promotion::versions_seen(&timeline, &image, now);
        let selection = crate::policy::select(policy, &seen);
        let is_older = |a: &str, b: &str| {
            decide::compare(policy, a, b, &|_| Ok(None))
                .ok()
                .flatten()
                .map(|order| order == std::cmp::Ordering::Less)
        };
        let mut soaking = None;
        let mut chosen = None;
        for candidate in &selection.candidates {
            match promotion::readiness(&timeline, &image, candidate, promotion.soak, now, &is_older)
            {
                Readiness::Ready(stints) => {
                    let passed = if promotion.require_status.is_empty() {
                        Some((stints[0].clone(), Vec::new()))
                    } else {
                        self.statuses(upstream, &timeline, &stints, &promotion.require_status, now)
                            .await
                            .map_err(problem)?
                    };
                    match passed {
                        Some((stint, statuses)) => {
                            let evidence = promotion::evidence(&timeline, &stint, statuses);
                            chosen = Some((candidate.clone(), evidence));
                            break;
                        }
                        None => {
                            tracing::info!(version = %candidate, "soaked upstream, but the required statuses are not all green")
                        }
                    }
                }
                Readiness::Soaking { until, .. } => {
                    if soaking.is_none() {
                        soaking = Some((candidate.clone(), until));
                    }
                }
                Readiness::Not => {}
            }
        }
        let Some((tag, evidence)) = chosen else {
            return Ok((
                None,
                Promoted {
                    evidence: None,
                    soaking,
                },
            ));
        };
        let selection = crate::policy::Selection {
            candidates: vec![tag],
            rejected: Vec::new(),
        };
        let choice = tokio::time::timeout(
            self.resolve_deadline(),
            crate::policy::choose(policy, selection, self.source(), now),
        )
        .await
        .map_err(|_| {
            problem(ReconcileError::Deadline {
                image: image.clone(),
                after: self.resolve_deadline(),
            })
        })?
        .map_err(|error| problem(ReconcileError::Resolve(error)))?;
        Ok((
            Some(choice),
            Promoted {
                evidence: Some(evidence),
                soaking,
            },
        ))
    }

    /// The upstream's history of image versions, read from its cached clone (the one held by this
    /// reconcile when both entries share a remote and branch; else its own lane is locked for the read —
    /// chains are acyclic, so lanes are always taken in one direction).
    async fn timeline(
        &self,
        current: &SharedStore,
        upstream: &RepositoryConfig,
        paths: Vec<PathBuf>,
    ) -> Result<Arc<Timeline>, ReconcileError> {
        let settings = super::remote_settings(upstream, self.environment())?;
        let key = super::context::lane_key(&settings);
        let same_lane = super::context::lane_key(lock(current).settings()) == key;
        let lane = (!same_lane).then(|| self.lane(&settings));
        let mut guard = match &lane {
            Some(lane) => Some(lane.clone().lock_owned().await),
            None => None,
        };
        let store = match guard.as_mut() {
            Some(guard) => self.store_in(guard, settings).await?,
            None => current.clone(),
        };
        let cache_key = format!(
            "{}\n{}",
            upstream.name,
            paths
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let previous = self
            .timelines
            .lock()
            .expect("timelines lock")
            .get(&cache_key)
            .cloned();
        let name = upstream.name.clone();
        let (head, timeline) =
            blocking(move || build_timeline(&lock(&store), &name, &paths, previous)).await??;
        drop(guard);
        self.timelines
            .lock()
            .expect("timelines lock")
            .insert(cache_key, (head, timeline.clone()));
        Ok(timeline)
    }

    /// `requireStatus`: the first stint (newest first) with a commit on which every named status or
    /// check succeeded, with what the forge reported; `None` when no commit of a ready stint has them all.
    async fn statuses(
        &self,
        upstream: &RepositoryConfig,
        timeline: &Timeline,
        stints: &[promotion::Stint],
        names: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<(promotion::Stint, Vec<(String, String)>)>, ReconcileError> {
        let forge = self.forge(upstream)?;
        let mut asked = 0usize;
        for stint in stints {
            for commit in promotion::commits_of(timeline, stint, now) {
                if asked == MAX_STATUS_LOOKUPS {
                    return Ok(None);
                }
                asked += 1;
                let checks = crate::forge::Forge::checks(forge.as_ref(), &commit).await?;
                let states: Vec<(String, String)> = names
                    .iter()
                    .map(|name| {
                        let state = match checks.context(name) {
                            Some(CheckState::Success) => "success",
                            Some(CheckState::Pending) => "pending",
                            Some(CheckState::Failure) => "failure",
                            Some(CheckState::None) | None => "missing",
                        };
                        (name.clone(), state.to_string())
                    })
                    .collect();
                if states.iter().all(|(_, state)| state == "success") {
                    return Ok(Some((stint.clone(), states)));
                }
            }
        }
        Ok(None)
    }
}

/// Image → the tags its targets hold.
type Versions = BTreeMap<String, BTreeSet<String>>;

/// Upstream commits whose statuses are asked per promotion policy and reconcile, at most: the newest
/// commits of the ready stints are the ones acceptance tests report on.
const MAX_STATUS_LOOKUPS: usize = 20;

/// Reads the upstream branch's first-parent history and the image versions its targets under `paths`
/// hold after each commit. `previous` is reused when the head has not moved.
fn build_timeline(
    store: &Store,
    upstream: &str,
    paths: &[PathBuf],
    previous: Option<(Oid, Arc<Timeline>)>,
) -> Result<(Oid, Arc<Timeline>), GitError> {
    let branch = store.settings().branch.clone();
    let head = store
        .fetch(&branch)?
        .ok_or_else(|| GitError::MissingBranch {
            url: store.settings().redacted_url(),
            branch: branch.clone(),
        })?;
    if let Some((known, timeline)) = previous
        && known == head
    {
        return Ok((head, timeline));
    }
    let (mut commits, _) = store.first_parent_commits(head, HISTORY_LIMIT)?;
    commits.reverse();
    let mut blobs: HashMap<Oid, Vec<(String, String)>> = HashMap::new();
    // The (path, blob) list of the previous commit and the versions it held: unchanged files are not
    // read again.
    let mut last: Option<(Vec<(String, Oid)>, Versions)> = None;
    let mut timeline = Timeline {
        upstream: upstream.to_string(),
        commits: Vec::with_capacity(commits.len()),
    };
    for commit in commits {
        let files = match store.list_files(commit.id, paths) {
            Ok(listing) => listing.files,
            // The path did not exist yet at this commit.
            Err(GitError::MissingPath { .. }) => Vec::new(),
            Err(error) => return Err(error),
        };
        let signature: Vec<(String, Oid)> = files
            .iter()
            .filter(|file| files::is_yaml_name(Path::new(&file.path)))
            .map(|file| (file.path.clone(), file.blob))
            .collect();
        let versions = match &last {
            Some((known, versions)) if *known == signature => versions.clone(),
            _ => {
                let mut versions = Versions::new();
                for (path, blob) in &signature {
                    if !blobs.contains_key(blob) {
                        let found = match store
                            .read_blob(*blob, manifest::discover::MAX_FILE_SIZE as u64)
                        {
                            Ok(bytes) => manifest::discover(Path::new(path), &bytes)
                                .targets
                                .iter()
                                .filter_map(|target| {
                                    Some((target.reference.name(), target.reference.tag.clone()?))
                                })
                                .collect(),
                            Err(GitError::TooLarge { .. }) => Vec::new(),
                            Err(error) => return Err(error),
                        };
                        blobs.insert(*blob, found);
                    }
                    for (image, tag) in &blobs[blob] {
                        versions
                            .entry(image.clone())
                            .or_default()
                            .insert(tag.clone());
                    }
                }
                versions
            }
        };
        let time = DateTime::from_timestamp(commit.time, 0).unwrap_or_default();
        timeline.commits.push(UpstreamCommit {
            id: commit.id.to_string(),
            time,
            versions: versions.clone(),
        });
        last = Some((signature, versions));
    }
    Ok((head, Arc::new(timeline)))
}

/// Frees `scan` on a thread of its own: every file's bytes and targets are hundreds of thousands of
/// allocations (≈ 40 ms of `free` for 10,000 files), which the plan need not wait for. When no thread
/// can be started, it is freed here.
fn free_aside(scan: Scan) {
    let spawned = std::thread::Builder::new()
        .name("scan-free".to_string())
        .spawn(move || drop(scan));
    drop(spawned);
}

/// Keeps a long-lived cache clone at a bounded number of pack files and loose objects, and what
/// libgit2 keeps per open pack bounded ([`Store::maintain`]). A failure is logged and changes nothing
/// (the old packs and the open repository stay); the reconcile goes on.
fn maintain(store: &mut Store) {
    match store.maintain() {
        Ok(crate::git::Maintenance::Consolidated(done)) => tracing::info!(
            packs = done.packs_before,
            objects = done.objects,
            removed_files = done.removed_files,
            limit = if done.for_loose_objects {
                "loose objects"
            } else {
                "pack files"
            },
            "cache clone consolidated into one pack"
        ),
        Ok(crate::git::Maintenance::Reopened { packs }) => {
            tracing::debug!(packs, "cache clone opened again")
        }
        Ok(crate::git::Maintenance::Nothing) => {}
        Err(error) => tracing::warn!(
            error = %crate::reconcile::chain(&error),
            "the cache clone's pack files could not be maintained; it keeps them"
        ),
    }
}

/// The store behind its lock (a panicked holder leaves nothing half-done in a store: every write is a
/// new object).
pub(super) fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads and discovers every YAML file under `paths` (the whole tree when none) in `commit`.
pub(super) fn scan(store: &Store, commit: Oid, paths: &[PathBuf]) -> Result<Scan, GitError> {
    let listing = store.list_files(commit, paths)?;
    for skipped in &listing.skipped {
        tracing::warn!(file = %skipped.path, reason = ?skipped.reason, "not followed: a symlink or submodule is never read or written");
    }
    let yaml: Vec<_> = listing
        .files
        .into_iter()
        .filter(|file| {
            let is_yaml = files::is_yaml_name(Path::new(&file.path));
            if !is_yaml && paths.iter().any(|path| path == Path::new(&file.path)) {
                tracing::warn!(file = %file.path, "skipped a configured path that is not a YAML file");
            }
            is_yaml
        })
        .collect();
    // Reading (inflating blobs) and discovery are the scan's CPU work: on all cores, each thread with
    // its own handle on the object database (a `git2::Repository` is never shared between threads),
    // results in path order.
    let max = manifest::discover::MAX_FILE_SIZE as u64;
    let discover = |file: &TreeFile, bytes: Result<Vec<u8>, GitError>| {
        bytes.map(|bytes| {
            let discovery = manifest::discover(Path::new(&file.path), &bytes);
            (bytes, discovery)
        })
    };
    let threads = super::parallel::threads_for(yaml.len());
    let found: Vec<_> = if threads == 1 {
        yaml.iter()
            .map(|file| discover(file, store.read_file(file, max)))
            .collect()
    } else {
        let readers = (0..threads)
            .map(|_| store.reader())
            .collect::<Result<Vec<_>, _>>()?;
        super::parallel::map_with(&yaml, readers, |reader, file| {
            discover(file, reader.read_file(file, max))
        })
    };
    let mut scanned = Vec::with_capacity(yaml.len());
    let mut incomplete = false;
    for (file, found) in yaml.into_iter().zip(found) {
        let (bytes, discovery) = match found {
            Ok(found) => found,
            Err(error @ GitError::TooLarge { .. }) => {
                tracing::warn!(file = %file.path, error = %error, "skipped a file too large to read");
                incomplete = true;
                continue;
            }
            Err(error) => return Err(error),
        };
        for warning in &discovery.warnings {
            tracing::warn!(file = %file.path, line = warning.line, "{}", warning.message);
        }
        if discovery.skipped || discovery.targets.is_empty() {
            continue;
        }
        scanned.push(ScannedFile {
            path: file.path,
            bytes,
            discovery,
        });
    }
    Ok(Scan {
        files: scanned,
        incomplete,
    })
}
