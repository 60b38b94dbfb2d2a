//! Planning one repository on the commit its workspace holds: scan, match, resolve, decide.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::RepositoryConfig;
use crate::git::Workspace;
use crate::manifest::{self, DigestChange, Discovery, Role, Target, TargetKind, files};
use crate::policy::{self, Order, Policy, Resolution, Version, window};
use crate::reference;
use crate::source::TagSource;

use super::rewrite::rewrite;
use super::{Bump, Note, ReconcileError, Reconciler, RepositoryPlan, Status, group_of, rollback};

/// Policies resolved at once per cycle: enough to overlap registry round trips, few enough to stay
/// polite; per-registry limits (`maxConcurrency`) apply underneath.
pub const MAX_CONCURRENT_RESOLUTIONS: usize = 8;

/// One YAML file of the repository, read and discovered.
pub(crate) struct ScannedFile {
    /// `/`-separated path inside the repository.
    pub relative: String,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub discovery: Discovery,
}

/// A target a policy owns, with what the policy wants for it.
struct Decision {
    file: usize,
    target: usize,
    policy: String,
    image: String,
    bump: manifest::Bump,
    from_version: String,
    to_version: String,
    /// `Some` when the bump must wait (rollback hold or window).
    deferred: Option<Status>,
}

impl<S: TagSource + Sync> Reconciler<S> {
    /// Clones or fetches the repository into its cache directory and resets it to the remote head.
    pub(super) async fn prepare(
        &self,
        repository: &RepositoryConfig,
    ) -> Result<Workspace, ReconcileError> {
        let settings = super::remote_settings(repository, &self.environment)?;
        let cache_root = self.cache_root.clone();
        blocking(move || Workspace::prepare(&cache_root, &settings))
            .await?
            .map_err(|source| ReconcileError::Git {
                repository: repository.name.clone(),
                source,
            })
    }

    /// Plans `repository` on the workspace's current head. Hands the workspace back for writing.
    pub(super) async fn plan_workspace(
        &self,
        repository: &RepositoryConfig,
        workspace: Workspace,
    ) -> Result<(Workspace, RepositoryPlan), ReconcileError> {
        let paths = repository.paths.clone();
        let (workspace, scanned) = blocking(move || {
            let scanned = scan(&workspace, &paths);
            (workspace, scanned)
        })
        .await?;
        let files = scanned.map_err(|error| match error {
            ScanError::Git(source) => ReconcileError::Git {
                repository: repository.name.clone(),
                source,
            },
            ScanError::Files(message) => ReconcileError::Files {
                repository: repository.name.clone(),
                message,
            },
        })?;
        let mut plan = RepositoryPlan {
            repository: repository.name.clone(),
            ..RepositoryPlan::default()
        };
        let mut decisions = Vec::new();
        let mut failed_policies = HashSet::new();
        self.prefetch(&files).await;
        for (file_index, file) in files.iter().enumerate() {
            for (target_index, target) in file.discovery.targets.iter().enumerate() {
                self.decide(
                    repository,
                    file,
                    (file_index, target_index),
                    target,
                    &mut plan,
                    &mut decisions,
                    &mut failed_policies,
                )
                .await;
            }
        }
        let (workspace, decisions) = self.check_rollbacks(workspace, &files, decisions).await?;
        finish(repository, &files, decisions, &mut plan);
        Ok((workspace, plan))
    }

    /// Resolves every policy the targets need, [`MAX_CONCURRENT_RESOLUTIONS`] at a time (the registry
    /// client adds its per-registry limits), so a cycle waits for the slowest image, not for the sum.
    async fn prefetch(&self, files: &[ScannedFile]) {
        let mut needed: Vec<&Policy> = Vec::new();
        for target in files.iter().flat_map(|file| &file.discovery.targets) {
            if target.held() {
                continue;
            }
            let policy = match target.marker.as_ref().and_then(manifest::Marker::policy) {
                Some(name) => self.config.policy_by_marker(&name),
                None => self.owner_by_image_quiet(target, false),
            };
            if let Some(policy) = policy
                && !needed.iter().any(|known| known.name == policy.name)
            {
                needed.push(policy);
            }
        }
        futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::buffer_unordered(
            futures_util::stream::iter(needed.into_iter().map(|policy| {
                let span = tracing::info_span!("policy", policy = %policy.name, image = %policy.image.name());
                tracing::Instrument::instrument(self.resolution(policy), span)
            })),
            MAX_CONCURRENT_RESOLUTIONS,
        ))
        .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        repository: &RepositoryConfig,
        file: &ScannedFile,
        (file_index, target_index): (usize, usize),
        target: &Target,
        plan: &mut RepositoryPlan,
        decisions: &mut Vec<Decision>,
        failed_policies: &mut HashSet<String>,
    ) {
        let note = |policy: Option<&str>, to: Option<String>, status: Status| Note {
            repo: repository.name.clone(),
            file: file.relative.clone(),
            line: target.line,
            policy: policy.map(str::to_string),
            image: target.reference.name(),
            from: target.written.clone(),
            to,
            status,
        };
        if target.held() {
            let owner = self
                .owner_by_image(target)
                .map(|policy| policy.name.as_str());
            plan.notes.push(note(owner, None, Status::Held));
            return;
        }
        let policy = match target.marker.as_ref().and_then(manifest::Marker::policy) {
            Some(name) => match self.config.policy_by_marker(&name) {
                Some(policy) => policy,
                None => {
                    plan.problems.push(format!(
                        "{}:{}: the marker names policy `{name}`, which the config does not define",
                        file.relative, target.line
                    ));
                    return;
                }
            },
            None => match self.owner_by_image(target) {
                Some(policy) => policy,
                None => return,
            },
        };
        let span =
            tracing::info_span!("policy", policy = %policy.name, image = %policy.image.name());
        let resolution = match tracing::Instrument::instrument(self.resolution(policy), span).await
        {
            Ok(resolution) => resolution,
            Err(message) => {
                if failed_policies.insert(policy.name.clone()) {
                    plan.problems
                        .push(format!("policy {}: {message}", policy.name));
                }
                return;
            }
        };
        let current_tag = target.reference.tag.clone();
        let current_digest = target.reference.digest.clone();
        let same_tag = current_tag.as_deref() == Some(resolution.tag.as_str());
        let digest_current = resolution.digest.is_none() || resolution.digest == current_digest;
        if same_tag && digest_current {
            return;
        }
        if let Some(current) = &current_tag
            && !same_tag
        {
            match compare(policy, current, &resolution.tag) {
                Some(Ordering::Greater) => {
                    plan.notes
                        .push(note(Some(&policy.name), None, Status::Newer));
                    return;
                }
                Some(Ordering::Equal) => return,
                _ => {}
            }
        }
        let digest = match (&resolution.digest, &current_digest) {
            (Some(digest), _) => DigestChange::Set(digest.clone()),
            (None, Some(_)) if !same_tag => DigestChange::Remove,
            (None, _) => DigestChange::Keep,
        };
        let to_digest = match &digest {
            DigestChange::Set(digest) => Some(digest.clone()),
            DigestChange::Remove => None,
            DigestChange::Keep => current_digest.clone(),
        };
        let deferred = (!window::any_open(&policy.windows, self.now)).then(|| {
            let until = window::next_any_open(&policy.windows, self.now);
            tracing::info!(
                policy = %policy.name,
                file = %file.relative,
                until = ?until,
                "outside the policy's windows; the bump waits"
            );
            Status::Waiting { until }
        });
        decisions.push(Decision {
            file: file_index,
            target: target_index,
            policy: policy.name.clone(),
            image: policy.image.name(),
            bump: manifest::Bump {
                name: None,
                tag: Some(resolution.tag.clone()),
                digest,
            },
            from_version: version(current_tag.as_deref(), current_digest.as_deref()),
            to_version: version(Some(&resolution.tag), to_digest.as_deref()),
            deferred,
        });
    }

    /// The policy whose image is the target's deployed image (or, for a kustomize entry, the image its
    /// `name` matches). Several policies for one image without a marker: ambiguous, left alone.
    fn owner_by_image(&self, target: &Target) -> Option<&Policy> {
        self.owner_by_image_quiet(target, true)
    }

    fn owner_by_image_quiet(&self, target: &Target, warn: bool) -> Option<&Policy> {
        let deployed = target.reference.name();
        let kustomize_name = (target.kind == TargetKind::Kustomize)
            .then(|| target.field(Role::Name))
            .flatten()
            .and_then(|field| reference::normalize_name(&field.value).ok());
        let mut owners = self.config.policies.iter().filter(|policy| {
            let image = policy.image.name();
            image == deployed || kustomize_name.as_deref() == Some(image.as_str())
        });
        let first = owners.next()?;
        if let Some(second) = owners.next() {
            if !warn {
                return None;
            }
            tracing::warn!(
                image = %deployed,
                first = %first.name,
                second = %second.name,
                "several policies track this image; a `# tagwatch: POLICY` marker must choose one"
            );
            return None;
        }
        Some(first)
    }

    /// The policy's choice, computed once per cycle; the tag listing is shared by every policy of the
    /// image.
    async fn resolution(&self, policy: &Policy) -> Result<Resolution, String> {
        if let Some(known) = self.resolutions.lock().expect("lock").get(&policy.name) {
            return known.clone();
        }
        let tags = self.tags(policy).await;
        let result = match tags {
            Err(message) => Err(message),
            Ok(tags) => {
                let selection = policy::select(policy, &tags);
                policy::choose(policy, selection, &self.source, self.now)
                    .await
                    .map_err(|error| format!("{:#}", anyhow::Error::from(error)))
            }
        };
        self.resolutions
            .lock()
            .expect("lock")
            .insert(policy.name.clone(), result.clone());
        result
    }

    /// The image's tags, listed once per cycle even when several policies ask at the same time.
    async fn tags(&self, policy: &Policy) -> Result<Arc<Vec<String>>, String> {
        let image = policy.image.name();
        let cell = self
            .tags
            .lock()
            .expect("lock")
            .entry(image.clone())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            let span = tracing::info_span!("image", image = %image);
            tracing::Instrument::instrument(self.source.list_tags(&policy.image), span)
                .await
                .map(Arc::new)
                .map_err(|error| {
                    format!(
                        "listing the tags of {image}: {:#}",
                        anyhow::Error::from(error)
                    )
                })
        })
        .await
        .clone()
    }

    /// Turns bumps of fields a human rolled back into holds (SPEC §7).
    async fn check_rollbacks(
        &self,
        workspace: Workspace,
        files: &[ScannedFile],
        decisions: Vec<Decision>,
    ) -> Result<(Workspace, Vec<Decision>), ReconcileError> {
        if decisions.is_empty() {
            return Ok((workspace, decisions));
        }
        let (workspace, written) = blocking(move || {
            let written = rollback::Written::read(&workspace);
            (workspace, written)
        })
        .await?;
        let written = written.unwrap_or_else(|error| {
            tracing::warn!(error = %error, "could not read history for rollback detection");
            rollback::Written::default()
        });
        let mut decisions = decisions;
        for decision in decisions.iter_mut() {
            let file = &files[decision.file].relative;
            let Some(reverted) = written
                .reverted(file, &decision.image, &decision.from_version)
                .map(str::to_string)
            else {
                continue;
            };
            let Some(policy) = self.config.policy(&decision.policy) else {
                continue;
            };
            let reverted_tag = reverted.split('@').next().unwrap_or_default();
            let wanted_tag = decision.to_version.split('@').next().unwrap_or_default();
            // A tag newer than the one the human reverted ends the hold.
            if compare(policy, wanted_tag, reverted_tag) != Some(Ordering::Greater) {
                tracing::info!(
                    policy = %policy.name,
                    image = %decision.image,
                    file = %files[decision.file].relative,
                    reverted = %reverted,
                    "held: a human rolled this field back from a tag tagwatch wrote"
                );
                decision.deferred = Some(Status::Rollback { reverted });
            }
        }
        Ok((workspace, decisions))
    }
}

/// Computes the new text of every decided target, file by file.
fn finish(
    repository: &RepositoryConfig,
    files: &[ScannedFile],
    decisions: Vec<Decision>,
    plan: &mut RepositoryPlan,
) {
    let mut by_file: BTreeMap<usize, Vec<Decision>> = BTreeMap::new();
    for decision in decisions {
        by_file.entry(decision.file).or_default().push(decision);
    }
    for (file_index, decisions) in by_file {
        let file = &files[file_index];
        let (deferred, now): (Vec<_>, Vec<_>) =
            decisions.into_iter().partition(|d| d.deferred.is_some());
        for decision in deferred {
            let to = rewrite(
                &file.path,
                &file.bytes,
                &file.discovery,
                &[(decision.target, decision.bump.clone())],
            )
            .ok()
            .and_then(|rewritten| rewritten.written.into_iter().next())
            .map(|(_, written)| written);
            let target = &file.discovery.targets[decision.target];
            plan.notes.push(Note {
                repo: repository.name.clone(),
                file: file.relative.clone(),
                line: target.line,
                policy: Some(decision.policy),
                image: decision.image,
                from: target.written.clone(),
                to,
                status: decision.deferred.expect("partitioned on deferred"),
            });
        }
        if now.is_empty() {
            continue;
        }
        let bumps: Vec<_> = now.iter().map(|d| (d.target, d.bump.clone())).collect();
        match rewrite(&file.path, &file.bytes, &file.discovery, &bumps) {
            Err(message) => plan.problems.push(format!("{}: {message}", file.relative)),
            Ok(rewritten) => {
                for (decision, (_, to)) in now.into_iter().zip(rewritten.written) {
                    let target = &file.discovery.targets[decision.target];
                    plan.bumps.push(Bump {
                        repository: repository.name.clone(),
                        file: file.relative.clone(),
                        line: target.line,
                        group: group_of(
                            repository.write_back.group,
                            &repository.name,
                            &decision.policy,
                            &decision.image,
                        ),
                        policy: decision.policy,
                        image: decision.image,
                        from: target.written.clone(),
                        to,
                        from_version: decision.from_version,
                        to_version: decision.to_version,
                        target: decision.target,
                        edit: decision.bump,
                    });
                }
            }
        }
    }
}

pub(crate) enum ScanError {
    Git(crate::git::GitError),
    Files(String),
}

/// Reads and discovers every YAML file under the configured paths (whole work tree when none).
pub(crate) fn scan(
    workspace: &Workspace,
    paths: &[PathBuf],
) -> Result<Vec<ScannedFile>, ScanError> {
    workspace.check_paths(paths).map_err(ScanError::Git)?;
    let workdir = workspace.workdir();
    let roots: Vec<PathBuf> = if paths.is_empty() {
        vec![workdir.to_path_buf()]
    } else {
        paths.iter().map(|path| workdir.join(path)).collect()
    };
    let found = files::collect(&roots)
        .map_err(|error| ScanError::Files(format!("{:#}", anyhow::Error::from(error))))?;
    for path in &found.not_yaml {
        tracing::warn!(file = %relative_name(workdir, path), "skipped a configured path that is not a YAML file");
    }
    let mut scanned = Vec::new();
    for path in found.files {
        let relative = relative_name(workdir, &path);
        let bytes = match files::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(file = %relative, error = %error, "skipped an unreadable file");
                continue;
            }
        };
        let discovery = manifest::discover(&path, &bytes);
        for warning in &discovery.warnings {
            tracing::warn!(file = %relative, line = warning.line, "{}", warning.message);
        }
        if discovery.skipped || discovery.targets.is_empty() {
            continue;
        }
        scanned.push(ScannedFile {
            relative,
            path,
            bytes,
            discovery,
        });
    }
    Ok(scanned)
}

fn relative_name(workdir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(workdir).unwrap_or(path);
    relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `tag`, `tag@digest`, or `@digest`.
fn version(tag: Option<&str>, digest: Option<&str>) -> String {
    match (tag, digest) {
        (Some(tag), Some(digest)) => format!("{tag}@{digest}"),
        (Some(tag), None) => tag.to_string(),
        (None, Some(digest)) => format!("@{digest}"),
        (None, None) => String::new(),
    }
}

/// How tag `a` compares with tag `b` in the policy's own order; `None` when `a` is not comparable (not
/// a version of the policy's kind), which never blocks a bump. Semver compares versions whatever the
/// range, so a target above the range is never moved down into it.
pub(crate) fn compare(policy: &Policy, a: &str, b: &str) -> Option<Ordering> {
    if let Order::Semver(order) = &policy.order {
        let parse = |tag: &str| {
            let tag = match &order.variant {
                None => tag,
                Some(variant) => match tag.split_once('-') {
                    Some((base, suffix)) if suffix == variant => base,
                    _ => return None,
                },
            };
            Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
        };
        return Some(parse(a)?.compare_build(&parse(b)?));
    }
    if a == b {
        return Some(Ordering::Equal);
    }
    let selection = policy::select(policy, &[a.to_string(), b.to_string()]);
    if !selection.candidates.iter().any(|tag| tag == a) {
        return None;
    }
    if selection.candidates.first().map(String::as_str) == Some(a) {
        Some(Ordering::Greater)
    } else {
        Some(Ordering::Less)
    }
}

/// Runs blocking git / file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ReconcileError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ReconcileError::Join(error.to_string()))
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;
    use std::path::PathBuf;

    use super::compare;
    use crate::policy::{Direction, Order, Origin, Policy, Range, SemverOrder};
    use crate::reference::ImageReference;

    fn policy(order: Order) -> Policy {
        Policy::new(
            "p",
            ImageReference::parse("ghcr.io/acme/api").unwrap(),
            order,
            Origin {
                file: PathBuf::from("p.yaml"),
                line: 1,
                column: 1,
            },
        )
    }

    fn semver(range: &str, variant: Option<&str>) -> Policy {
        policy(Order::Semver(SemverOrder {
            range: Range::parse(range, false).unwrap(),
            variant: variant.map(str::to_string),
        }))
    }

    #[test]
    fn semver_compares_outside_the_range_so_nothing_is_moved_down() {
        let policy = semver("^1", None);
        assert_eq!(compare(&policy, "2.0.0", "1.9.0"), Some(Ordering::Greater));
        assert_eq!(compare(&policy, "v1.2.3", "1.2.3"), Some(Ordering::Equal));
        assert_eq!(compare(&policy, "1.0.0", "1.2.0"), Some(Ordering::Less));
        assert_eq!(compare(&policy, "latest", "1.2.0"), None);
    }

    #[test]
    fn semver_variants_compare_only_within_the_variant() {
        let policy = semver("^1.25", Some("alpine"));
        assert_eq!(
            compare(&policy, "1.27.0-alpine", "1.26.0-alpine"),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(&policy, "1.27.0", "1.26.0-alpine"), None);
    }

    #[test]
    fn numerical_order_follows_the_direction() {
        let ascending = policy(Order::Numerical(Direction::Ascending));
        assert_eq!(compare(&ascending, "20", "3"), Some(Ordering::Greater));
        let descending = policy(Order::Numerical(Direction::Descending));
        assert_eq!(compare(&descending, "20", "3"), Some(Ordering::Less));
        assert_eq!(compare(&ascending, "main", "3"), None);
    }
}
