//! The decision: from the facts gathered for one repository to its [`RepositoryPlan`]. Synchronous and
//! pure — no I/O, no clock (`now` is a fact) — so every [`Status`] and every fail-closed rule has a unit
//! test beside it.
//!
//! Per target: a `hold` marker freezes it; a marker names its policy; otherwise the one policy (that
//! applies to this repository) whose image is the target's; several such policies and no marker leave
//! it alone (`ambiguous`). Then: same version → nothing; never downgrade (semver by version whatever the
//! range, numerical / alphabetical in the policy's order, `order: newest` by image creation time);
//! outside every window → `waiting`; a field a human rolled back from tagwatch's write → `rollback`
//! until a newer tag appears. Any problem (a policy that did not resolve, a marker naming an unknown
//! policy, a file that cannot be rewritten, history that could not be read) leaves the targets it
//! concerns as they are and marks their group *troubled*: push mode still commits the group's other
//! bumps (the troubled targets are simply not touched), but pull-request mode leaves a troubled group's
//! pull request exactly as it is — not rebuilt without the missing bump, not updated, not closed.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::config::RepositoryConfig;
use crate::manifest::{self, DigestChange, Discovery, Role, Target, TargetKind};
use crate::policy::{self, Order, Policy, Resolution, Version, window};
use crate::reference;

use super::history::Written;
use super::rewrite::{Planned, rewrite};
use super::{Bump, Note, Problem, ReconcileError, RepositoryPlan, Scope, Status, group_of};

/// One YAML file of the repository, read from git and discovered.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// `/`-separated path inside the repository.
    pub path: String,
    pub bytes: Vec<u8>,
    pub discovery: Discovery,
}

/// Creation times read for `order: newest` comparisons: `(image, tag)` → the time (`None`: the image
/// has none, or the tag is gone), or the problem that kept it from being read.
pub type CreatedTimes = HashMap<(String, String), Result<Option<DateTime<Utc>>, Problem>>;

/// What promotion found for one policy (docs/promotion.md).
#[derive(Debug, Clone, Default)]
pub struct Promoted {
    /// What backs the chosen version (the resolution's tag).
    pub evidence: Option<super::promotion::Evidence>,
    /// A better version still soaking upstream, and when it is ready (also when none is ready yet).
    pub soaking: Option<(String, DateTime<Utc>)>,
}

/// Everything [`decide`] needs, gathered beforehand.
pub struct Facts<'a> {
    pub repository: &'a RepositoryConfig,
    /// Every policy of the config (those that do not apply to this repository are skipped here).
    pub policies: &'a [Policy],
    pub files: &'a [ScannedFile],
    /// The choice of every policy the targets need (see [`needed_policies`]).
    pub resolutions: &'a BTreeMap<String, Result<Resolution, Problem>>,
    /// What tagwatch wrote last per field, or why history could not be read.
    pub history: &'a Result<Written, Problem>,
    pub created: &'a CreatedTimes,
    /// Promotion policies: their evidence and soaking versions (a promotion policy with nothing ready
    /// has no resolution, only an entry here).
    pub promotions: &'a BTreeMap<String, Promoted>,
    pub now: DateTime<Utc>,
}

/// Who owns a target.
#[derive(Debug)]
pub enum Owner<'p> {
    /// No policy tracks its image here.
    Nobody,
    /// `# tagwatch: hold` (with the policy that would own it otherwise, if any).
    Held(Option<&'p Policy>),
    Policy(&'p Policy),
    /// A marker names a policy the config does not define.
    UnknownMarker(String),
    /// A marker names a policy restricted to other repositories.
    MarkerElsewhere(String),
    /// Several policies track its image and no marker chooses.
    Ambiguous(Vec<&'p Policy>),
}

/// The policies that apply to one repository, looked up by image, so matching a target costs a hash
/// lookup, not a pass over every policy (20,000 targets × 1,000 policies). Built once for the
/// gathering of a repository ([`needed_policies`], [`needed_created_times`]) and once in [`decide`],
/// which runs on a blocking thread that cannot borrow the gatherer's.
pub struct PolicyIndex<'p> {
    policies: &'p [Policy],
    repository: String,
    /// Registry, then repository of a policy's image → the indices in `policies` of the policies that
    /// apply here and track it, ascending.
    by_image: HashMap<&'p str, HashMap<&'p str, Vec<usize>>>,
}

impl<'p> PolicyIndex<'p> {
    pub fn new(policies: &'p [Policy], repository: &str) -> Self {
        let mut by_image: HashMap<&str, HashMap<&str, Vec<usize>>> = HashMap::new();
        for (index, policy) in policies.iter().enumerate() {
            if applies(policy, repository) {
                let image = &policy.image;
                by_image
                    .entry(image.registry.as_str())
                    .or_default()
                    .entry(image.repository.as_str())
                    .or_default()
                    .push(index);
            }
        }
        PolicyIndex {
            policies,
            repository: repository.to_string(),
            by_image,
        }
    }

    fn tracking(&self, registry: &str, repository: &str) -> &[usize] {
        self.by_image
            .get(registry)
            .and_then(|repositories| repositories.get(repository))
            .map_or(&[], Vec::as_slice)
    }
}

/// The owner of `target` in the index's repository.
pub fn owner<'p>(target: &Target, index: &PolicyIndex<'p>) -> Owner<'p> {
    let (policies, repository) = (index.policies, index.repository.as_str());
    if target.held() {
        return match *owners_by_image(target, index) {
            [only] => Owner::Held(Some(&policies[only])),
            _ => Owner::Held(None),
        };
    }
    if let Some(name) = target.marker.as_ref().and_then(manifest::Marker::policy) {
        return match crate::config::find_policy(policies, &name) {
            None => Owner::UnknownMarker(name),
            Some(policy) if !applies(policy, repository) => Owner::MarkerElsewhere(name),
            Some(policy) => Owner::Policy(policy),
        };
    }
    match *owners_by_image(target, index) {
        [] => Owner::Nobody,
        [only] => Owner::Policy(&policies[only]),
        ref several => Owner::Ambiguous(several.iter().map(|&i| &policies[i]).collect()),
    }
}

fn applies(policy: &Policy, repository: &str) -> bool {
    policy.applies_to(repository)
}

/// The indices of the policies (that apply to the index's repository) whose image is the target's
/// deployed image, or for a kustomize entry the image its `name` matches; ascending (config order).
fn owners_by_image<'i>(target: &Target, index: &'i PolicyIndex<'_>) -> Cow<'i, [usize]> {
    let deployed = &target.reference;
    let by_deployed = index.tracking(&deployed.registry, &deployed.repository);
    let kustomize_name = (target.kind == TargetKind::Kustomize)
        .then(|| target.field(Role::Name))
        .flatten()
        .and_then(|field| reference::normalize_name(&field.value).ok());
    // A normalized name is `registry/repository`, and a registry host holds no `/`.
    let by_name = kustomize_name
        .as_deref()
        .and_then(|name| name.split_once('/'))
        .map_or(&[][..], |(registry, repository)| {
            index.tracking(registry, repository)
        });
    if by_name.is_empty() || by_name == by_deployed {
        Cow::Borrowed(by_deployed)
    } else if by_deployed.is_empty() {
        Cow::Borrowed(by_name)
    } else {
        let mut both: Vec<usize> = by_deployed.iter().chain(by_name).copied().collect();
        both.sort_unstable();
        both.dedup();
        Cow::Owned(both)
    }
}

/// The policies whose choice the targets of `files` need, in first-use order.
pub fn needed_policies<'p>(files: &[ScannedFile], index: &PolicyIndex<'p>) -> Vec<&'p Policy> {
    // The same policy is the same element of `policies` (names are unique).
    fn add<'p>(needed: &mut Vec<&'p Policy>, policy: &'p Policy) {
        if !needed.iter().any(|known| std::ptr::eq(*known, policy)) {
            needed.push(policy);
        }
    }
    // Each file's policies in first-use order, on all cores; then merged in file order.
    let per_file = super::parallel::map(files, |file| {
        let mut needed = Vec::new();
        for target in &file.discovery.targets {
            if let Owner::Policy(policy) = owner(target, index) {
                add(&mut needed, policy);
            }
        }
        needed
    });
    let mut needed = Vec::new();
    for policy in per_file.into_iter().flatten() {
        add(&mut needed, policy);
    }
    needed
}

/// The `(image, tag)` creation times that never-downgrade and rollback checks of `order: newest`
/// policies will compare: each target's current tag and any tag a human reverted from.
pub fn needed_created_times(
    files: &[ScannedFile],
    index: &PolicyIndex<'_>,
    resolutions: &BTreeMap<String, Result<Resolution, Problem>>,
    history: &Result<Written, Problem>,
) -> Vec<(String, String)> {
    let mut needed = Vec::new();
    if !index
        .policies
        .iter()
        .any(|policy| matches!(policy.order, Order::Newest))
    {
        return needed;
    }
    for file in files {
        for target in &file.discovery.targets {
            let Owner::Policy(policy) = owner(target, index) else {
                continue;
            };
            if !matches!(policy.order, Order::Newest) {
                continue;
            }
            let Some(Ok(resolution)) = resolutions.get(&policy.name) else {
                continue;
            };
            let image = policy.image.name();
            if let Some(current) = &target.reference.tag
                && *current != resolution.tag
            {
                needed.push((image.clone(), current.clone()));
            }
            if let Ok(written) = history {
                let current = version(
                    target.reference.tag.as_deref(),
                    target.reference.digest.as_deref(),
                );
                if let Some(reverted) = written.reverted(&file.path, &image, &current) {
                    let tag = reverted.split('@').next().unwrap_or_default();
                    if !tag.is_empty() {
                        needed.push((image.clone(), tag.to_string()));
                    }
                }
            }
        }
    }
    needed.sort();
    needed.dedup();
    needed
}

/// A target a policy wants to change.
struct Decision {
    target: usize,
    policy: String,
    image: String,
    group: String,
    edit: manifest::Bump,
    from_version: String,
    to_version: String,
    /// `Some` when the bump must wait (rollback hold or window).
    deferred: Option<Status>,
    evidence: Option<super::promotion::Evidence>,
    /// A better version soaking upstream: (tag, ready at).
    next: Option<(String, DateTime<Utc>)>,
}

/// Decides the plan of one repository.
pub fn decide(facts: &Facts<'_>) -> RepositoryPlan {
    let repository = facts.repository;
    let name = repository.name.as_str();
    let mut plan = RepositoryPlan {
        repository: name.to_string(),
        ..RepositoryPlan::default()
    };
    // The decisions of each file, files in order (targets are visited file by file, so a file's
    // decisions are contiguous): grouped as they come instead of sorted afterwards.
    let mut decisions: Vec<(usize, Vec<Decision>)> = Vec::new();
    let mut push = |file: usize, decision: Decision| match decisions.last_mut() {
        Some((last, group)) if *last == file => group.push(decision),
        _ => decisions.push((file, vec![decision])),
    };
    let mut reported_policies = BTreeSet::new();
    let mut image_name = String::new();
    // Who owns each target and what its policy wants are pure functions of the facts: computed on all
    // cores, then taken in file and target order below, where the plan is built exactly as if each had
    // been computed in turn.
    let index = PolicyIndex::new(facts.policies, name);
    let judged = super::parallel::map(facts.files, |file| {
        file.discovery
            .targets
            .iter()
            .map(|target| judge(facts, &index, file, target))
            .collect::<Vec<_>>()
    });
    for ((file_index, file), judged) in facts.files.iter().enumerate().zip(judged) {
        for ((target_index, target), (owner, verdict)) in
            file.discovery.targets.iter().enumerate().zip(judged)
        {
            // The normalized name, built in one buffer: most targets name an image already seen.
            image_name.clear();
            image_name.push_str(&target.reference.registry);
            image_name.push('/');
            image_name.push_str(&target.reference.repository);
            if !plan.images.contains(image_name.as_str()) {
                plan.images.insert(image_name.clone());
            }
            let note = |policy: Option<&str>, to: Option<String>, status: Status| Note {
                repo: name.to_string(),
                file: file.path.clone(),
                line: target.line,
                policy: policy.map(str::to_string),
                image: target.reference.name(),
                from: target.written.clone(),
                to,
                status,
            };
            let group_for =
                |policy: &str| group_of(repository.write_back.group, name, policy, &image_name);
            let policy = match owner {
                Owner::Nobody => continue,
                Owner::Held(policy) => {
                    plan.notes
                        .push(note(policy.map(|p| p.name.as_str()), None, Status::Held));
                    continue;
                }
                Owner::Ambiguous(policies) => {
                    let names: Vec<String> = policies.iter().map(|p| p.name.clone()).collect();
                    tracing::warn!(
                        file = %file.path,
                        line = target.line,
                        image = %target.reference.name(),
                        policies = %names.join(", "),
                        "several policies track this image; a `# tagwatch: POLICY` marker must choose one"
                    );
                    plan.notes
                        .push(note(None, None, Status::Ambiguous { policies: names }));
                    continue;
                }
                Owner::UnknownMarker(policy) => {
                    plan.troubled.insert(group_for(&policy));
                    plan.problems.push(Problem::new(
                        name,
                        Scope::File(file.path.clone()),
                        ReconcileError::UnknownMarker {
                            line: target.line,
                            name: policy,
                        },
                    ));
                    continue;
                }
                Owner::MarkerElsewhere(policy) => {
                    plan.troubled.insert(group_for(&policy));
                    plan.problems.push(Problem::new(
                        name,
                        Scope::File(file.path.clone()),
                        ReconcileError::MarkerElsewhere {
                            line: target.line,
                            name: policy,
                        },
                    ));
                    continue;
                }
                Owner::Policy(policy) => policy,
            };
            let group = group_for(&policy.name);
            let promoted = facts.promotions.get(&policy.name);
            let resolution = match facts.resolutions.get(&policy.name) {
                Some(Ok(resolution)) => resolution,
                None if policy.promotion.is_some() => {
                    // Nothing ready upstream: at most a version still soaking.
                    let Some((_, until)) = promoted.and_then(|promoted| promoted.soaking.clone())
                    else {
                        continue;
                    };
                    if let Some(Verdict::Change {
                        edit,
                        from_version,
                        to_version,
                        ..
                    }) = verdict
                    {
                        push(
                            file_index,
                            Decision {
                                target: target_index,
                                policy: policy.name.clone(),
                                image: policy.image.name(),
                                group,
                                edit,
                                from_version,
                                to_version,
                                deferred: Some(Status::Soaking { until }),
                                evidence: None,
                                next: None,
                            },
                        );
                    }
                    continue;
                }
                Some(Err(problem)) => {
                    plan.troubled.insert(group);
                    if reported_policies.insert(policy.name.clone()) {
                        plan.problems.push(problem.clone());
                    }
                    continue;
                }
                None => {
                    // Not gathered: never guess.
                    plan.troubled.insert(group);
                    continue;
                }
            };
            // One resolution per policy: the same value for each of its targets.
            if !plan.choices.contains_key(&policy.name) {
                plan.choices.insert(
                    policy.name.clone(),
                    version(Some(&resolution.tag), resolution.digest.as_deref()),
                );
            }
            match verdict.expect("judged: a policy with a resolution has a verdict") {
                Verdict::Nothing => {
                    plan.notes
                        .push(note(Some(&policy.name), None, Status::Current))
                }
                Verdict::Newer => plan
                    .notes
                    .push(note(Some(&policy.name), None, Status::Newer)),
                Verdict::Problem(problem) => {
                    plan.troubled.insert(group);
                    plan.problems.push(problem);
                }
                Verdict::Change {
                    edit,
                    from_version,
                    to_version,
                    deferred,
                } => push(
                    file_index,
                    Decision {
                        target: target_index,
                        policy: policy.name.clone(),
                        image: policy.image.name(),
                        group,
                        edit,
                        from_version,
                        to_version,
                        deferred,
                        evidence: promoted.and_then(|promoted| promoted.evidence.clone()),
                        next: promoted.and_then(|promoted| promoted.soaking.clone()),
                    },
                ),
            }
        }
    }
    if let Err(problem) = facts.history {
        // Fail closed: without history a human's rollback cannot be told apart, so nothing is bumped.
        if !decisions.is_empty() {
            for decision in decisions.iter().flat_map(|(_, group)| group) {
                plan.troubled.insert(decision.group.clone());
            }
            plan.problems.push(problem.clone());
        }
        plan.incomplete = true;
        return plan;
    }
    finish(facts, decisions, &mut plan);
    plan
}

/// A target's owner and, when a policy owns it and has a choice (or, for a promotion policy with
/// nothing ready, a version soaking), what that choice means for it.
fn judge<'p>(
    facts: &Facts<'p>,
    index: &PolicyIndex<'p>,
    file: &ScannedFile,
    target: &Target,
) -> (Owner<'p>, Option<Verdict>) {
    let owner = owner(target, index);
    let Owner::Policy(policy) = owner else {
        return (owner, None);
    };
    let verdict = match facts.resolutions.get(&policy.name) {
        Some(Ok(resolution)) => Some(decide_target(facts, file, target, policy, resolution)),
        None if policy.promotion.is_some() => facts
            .promotions
            .get(&policy.name)
            .and_then(|promoted| promoted.soaking.clone())
            .map(|(tag, _)| {
                let soaking = Resolution {
                    tag,
                    digest: None,
                    created: None,
                    rejected: Vec::new(),
                };
                decide_target(facts, file, target, policy, &soaking)
            }),
        _ => None,
    };
    (owner, verdict)
}

enum Verdict {
    Nothing,
    Newer,
    Problem(Problem),
    Change {
        edit: manifest::Bump,
        from_version: String,
        to_version: String,
        deferred: Option<Status>,
    },
}

fn decide_target(
    facts: &Facts<'_>,
    file: &ScannedFile,
    target: &Target,
    policy: &Policy,
    resolution: &Resolution,
) -> Verdict {
    let current_tag = target.reference.tag.clone();
    let current_digest = target.reference.digest.clone();
    let same_tag = current_tag.as_deref() == Some(resolution.tag.as_str());
    let digest_current = resolution.digest.is_none() || resolution.digest == current_digest;
    if same_tag && digest_current {
        return Verdict::Nothing;
    }
    let image = policy.image.name();
    let created = |tag: &str| -> Result<Option<DateTime<Utc>>, Problem> {
        if tag == resolution.tag
            && let Some(created) = resolution.created
        {
            return Ok(Some(created));
        }
        match facts.created.get(&(image.clone(), tag.to_string())) {
            Some(result) => result.clone(),
            None => Ok(None),
        }
    };
    if let Some(current) = &current_tag
        && !same_tag
    {
        match compare(policy, current, &resolution.tag, &created) {
            Err(problem) => return Verdict::Problem(problem),
            Ok(Some(Ordering::Greater)) => return Verdict::Newer,
            Ok(Some(Ordering::Equal)) => return Verdict::Nothing,
            Ok(_) => {}
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
    let from_version = version(current_tag.as_deref(), current_digest.as_deref());
    let to_version = version(Some(&resolution.tag), to_digest.as_deref());
    let mut deferred = (!window::any_open(&policy.windows, facts.now)).then(|| Status::Waiting {
        until: window::next_any_open(&policy.windows, facts.now),
    });
    if let Ok(written) = facts.history
        && let Some(reverted) = written.reverted(&file.path, &image, &from_version)
    {
        let reverted_tag = reverted.split('@').next().unwrap_or_default();
        // A tag newer than the one the human reverted ends the hold; anything else (older, equal, or
        // not comparable) keeps it.
        let newer = match compare(policy, &resolution.tag, reverted_tag, &created) {
            Err(problem) => return Verdict::Problem(problem),
            Ok(order) => order == Some(Ordering::Greater),
        };
        if !newer {
            deferred = Some(Status::Rollback {
                reverted: reverted.to_string(),
            });
        }
    }
    Verdict::Change {
        edit: manifest::Bump {
            name: None,
            tag: Some(resolution.tag.clone()),
            digest,
        },
        from_version,
        to_version,
        deferred,
    }
}

/// Computes the new text of every decided target, file by file; a file that cannot be rewritten is left
/// unchanged and its groups are troubled.
/// `by_file`: each file's decisions, files in order.
fn finish(facts: &Facts<'_>, by_file: Vec<(usize, Vec<Decision>)>, plan: &mut RepositoryPlan) {
    let repository = facts.repository.name.as_str();
    // Sized once: grown by doubling, a plan of 18,000 bumps would hold room for 32,768.
    plan.bumps.reserve(
        by_file
            .iter()
            .flat_map(|(_, decisions)| decisions)
            .filter(|d| d.deferred.is_none())
            .count(),
    );
    // Each file's rewrite (an edit and a re-parse) is pure CPU work: on all cores, in file order.
    let rewritten = super::parallel::map(&by_file, |(file_index, decisions)| {
        let file = &facts.files[*file_index];
        let now: Vec<Planned<'_>> = decisions
            .iter()
            .filter(|d| d.deferred.is_none())
            .map(|d| planned(file, d))
            .collect();
        // Only the texts are kept: the new bytes are written by the apply step, which rewrites (and
        // checks) the file again on the commit it builds on; keeping them here would hold a second copy
        // of every changed file until the plan is done.
        (!now.is_empty()).then(|| {
            rewrite(Path::new(&file.path), &file.bytes, &file.discovery, &now)
                .map(|rewritten| rewritten.written)
        })
    });
    for ((file_index, decisions), rewritten) in by_file.into_iter().zip(rewritten) {
        let file = &facts.files[file_index];
        let path = Path::new(&file.path);
        let (deferred, now): (Vec<_>, Vec<_>) =
            decisions.into_iter().partition(|d| d.deferred.is_some());
        for decision in deferred {
            let target = &file.discovery.targets[decision.target];
            let planned = planned(file, &decision);
            let to = rewrite(path, &file.bytes, &file.discovery, &[planned])
                .ok()
                .and_then(|rewritten| rewritten.written.into_iter().next());
            let status = decision.deferred.expect("partitioned on deferred");
            tracing::info!(
                policy = %decision.policy,
                image = %decision.image,
                file = %file.path,
                line = target.line,
                status = ?status,
                "bump deferred"
            );
            plan.notes.push(Note {
                repo: repository.to_string(),
                file: file.path.clone(),
                line: target.line,
                policy: Some(decision.policy),
                image: decision.image,
                from: target.written.clone(),
                to,
                status,
            });
        }
        if now.is_empty() {
            continue;
        }
        match rewritten.expect("rewritten when some bump is not deferred") {
            Err(reason) => {
                for decision in &now {
                    plan.troubled.insert(decision.group.clone());
                }
                plan.problems.push(Problem::new(
                    repository,
                    Scope::File(file.path.clone()),
                    ReconcileError::Rewrite { reason },
                ));
            }
            Ok(written) => {
                for (decision, to) in now.into_iter().zip(written) {
                    let target = &file.discovery.targets[decision.target];
                    let next = decision.next.as_ref().and_then(|(tag, until)| {
                        let edit = manifest::Bump {
                            name: None,
                            tag: Some(tag.clone()),
                            digest: decision.edit.digest.clone(),
                        };
                        let planned = Planned {
                            target: decision.target,
                            from: &target.written,
                            image: &decision.image,
                            edit: &edit,
                            to: None,
                        };
                        rewrite(path, &file.bytes, &file.discovery, &[planned])
                            .ok()
                            .and_then(|rewritten| rewritten.written.into_iter().next())
                            .map(|to| super::Upcoming { to, until: *until })
                    });
                    plan.bumps.push(Bump {
                        repository: repository.to_string(),
                        file: file.path.clone(),
                        line: target.line,
                        group: decision.group,
                        policy: decision.policy,
                        image: decision.image,
                        from: target.written.clone(),
                        to,
                        from_version: decision.from_version,
                        to_version: decision.to_version,
                        target: decision.target,
                        edit: decision.edit,
                        evidence: decision.evidence,
                        next,
                    });
                }
            }
        }
    }
}

fn planned<'a>(file: &'a ScannedFile, decision: &'a Decision) -> Planned<'a> {
    let target = &file.discovery.targets[decision.target];
    Planned {
        target: decision.target,
        from: &target.written,
        image: &decision.image,
        edit: &decision.edit,
        to: None,
    }
}

/// `tag`, `tag@digest`, or `@digest`.
pub fn version(tag: Option<&str>, digest: Option<&str>) -> String {
    match (tag, digest) {
        (Some(tag), Some(digest)) => format!("{tag}@{digest}"),
        (Some(tag), None) => tag.to_string(),
        (None, Some(digest)) => format!("@{digest}"),
        (None, None) => String::new(),
    }
}

/// Looks up a tag's image creation time (for `order: newest`).
pub type CreatedOf<'a> = dyn Fn(&str) -> Result<Option<DateTime<Utc>>, Problem> + 'a;

/// How tag `a` compares with tag `b` in the policy's own order; `Ok(None)` when `a` or `b` is not
/// comparable (not a version of the policy's kind, or no creation time), which never blocks a bump but
/// never ends a rollback hold either. Semver compares versions whatever the range, so a target above the
/// range is never moved down into it; `order: newest` compares image creation times (`created`), never
/// the tag text.
pub fn compare(
    policy: &Policy,
    a: &str,
    b: &str,
    created: &CreatedOf<'_>,
) -> Result<Option<Ordering>, Problem> {
    match &policy.order {
        Order::Semver(order) => {
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
            Ok(parse(a).zip(parse(b)).map(|(a, b)| a.compare_build(&b)))
        }
        Order::Newest => {
            if a == b {
                return Ok(Some(Ordering::Equal));
            }
            let (Some(a), Some(b)) = (created(a)?, created(b)?) else {
                return Ok(None);
            };
            Ok(Some(a.cmp(&b)))
        }
        _ => {
            if a == b {
                return Ok(Some(Ordering::Equal));
            }
            let selection = policy::select(policy, &[a.to_string(), b.to_string()]);
            if !selection.candidates.iter().any(|tag| tag == a) {
                return Ok(None);
            }
            Ok(Some(
                if selection.candidates.first().map(String::as_str) == Some(a) {
                    Ordering::Greater
                } else {
                    Ordering::Less
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests;
