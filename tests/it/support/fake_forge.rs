//! A fake forge (GitHub, GitLab, Gitea, Forgejo) on a free loopback port: the one fake the house rules
//! allow. It keeps pull requests in memory, can merge one into a real bare git repository, can answer
//! the first requests as rate limited, and checks EVERY request it receives and EVERY response it sends
//! against the forge's official API description (`tests/forge-api/`, see its README for provenance).
//!
//! A request or response that breaks the description is recorded as a violation; `assert_clean` fails
//! the test on any, and dropping the fake after a passing test asserts it too.

mod review;
mod serve;
mod spec;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

pub use spec::Flavor;
use spec::Spec;

/// The repository every fake forge serves.
pub const OWNER: &str = "acme";
pub const NAME: &str = "config";
/// GitLab's numeric id of that project.
pub const PROJECT_ID: u64 = 42;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    Open,
    Closed,
    Merged,
}

/// A pull request as the fake forge keeps it.
#[derive(Debug, Clone)]
pub struct FakePull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub base_sha: String,
    pub state: PullState,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub team_reviewers: Vec<String>,
    pub comments: Vec<String>,
    /// The forge's id of each of `comments`.
    pub comment_ids: Vec<u64>,
    pub merge_commit_sha: Option<String>,
    pub remove_source_branch: Option<bool>,
    /// How the API merged it (`merge`, `squash`, `rebase`), when it did.
    pub merge_method: Option<String>,
    /// The head conflicts with the base (computed whenever the pull request is read).
    pub conflicted: bool,
}

/// A reviewer's verdict, as a test adds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    RequestChanges,
    Comment,
    /// An approval by someone without write access (GitHub: `author_association: NONE`; Gitea: not
    /// `official`; GitLab: not an eligible approver, so no approval at all).
    OutsiderApprove,
}

/// A check's state, as a test sets it (mapped onto each forge's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Pending,
    Success,
    Failure,
}

#[derive(Debug, Clone)]
struct FakeReview {
    id: u64,
    pull: u64,
    user: String,
    verdict: Verdict,
    commit: String,
}

/// A commit status (GitHub, Gitea, Forgejo), a check run (GitHub) or a job / external status or a
/// pipeline (GitLab), newest last.
#[derive(Debug, Clone)]
struct FakeCheck {
    id: u64,
    kind: CheckKind,
    sha: String,
    name: String,
    state: Check,
    allow_failure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckKind {
    Status,
    CheckRun,
    Pipeline,
}

/// How the first requests are refused.
#[derive(Debug, Clone, Copy)]
pub enum RateLimit {
    /// `status` with `Retry-After: seconds`.
    RetryAfter { status: u16, seconds: u64 },
    /// `status` with the remaining quota 0 and a reset `seconds` from now (epoch seconds).
    Reset { status: u16, seconds: u64 },
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub operation: String,
    pub status: u16,
    pub authorization: Option<String>,
}

pub struct Repository {
    pub owner: String,
    pub name: String,
    pub project_id: u64,
    pub api_url: String,
    pub web_url: String,
}

struct Inner {
    spec: Arc<Spec>,
    token: String,
    repository: Repository,
    bare: PathBuf,
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    pulls: Vec<FakePull>,
    next_comment: u64,
    /// Ids of reviews, statuses, check runs and pipelines.
    next_id: u64,
    reviews: Vec<FakeReview>,
    checks: Vec<FakeCheck>,
    /// Merges are refused as "not mergeable" with this message (a branch protection rule).
    merge_blocked: Option<String>,
    /// The next merge request finds a human's commit (by this email) pushed just before it: the race
    /// the forge's own head check exists for.
    race_next_merge: Option<String>,
    violations: Vec<String>,
    log: Vec<Logged>,
    rate_limit: Option<(RateLimit, usize)>,
    server_errors: Option<(u16, usize)>,
    /// Requests answered normally before `server_errors` starts failing.
    server_errors_skip: usize,
    not_before: Option<SystemTime>,
}

pub struct FakeForge {
    pub flavor: Flavor,
    address: SocketAddr,
    inner: Arc<Inner>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

fn spec_for(flavor: Flavor) -> Arc<Spec> {
    // Compiled validators are cached per description and shared by every test in the binary.
    static SPECS: OnceLock<Mutex<HashMap<Flavor, Arc<Spec>>>> = OnceLock::new();
    let specs = SPECS.get_or_init(Default::default);
    specs
        .lock()
        .unwrap()
        .entry(flavor)
        .or_insert_with(|| Arc::new(Spec::load(flavor)))
        .clone()
}

impl FakeForge {
    /// Starts a fake `flavor` forge for the bare repository at `bare`, accepting only `token`.
    pub async fn start(flavor: Flavor, bare: &Path, token: &str) -> FakeForge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            spec: spec_for(flavor),
            token: token.to_string(),
            repository: Repository {
                owner: OWNER.into(),
                name: NAME.into(),
                project_id: PROJECT_ID,
                api_url: format!("http://{address}"),
                web_url: format!("http://{address}/web"),
            },
            bare: bare.to_path_buf(),
            state: Mutex::new(FakeState::default()),
        });
        let app = axum::Router::new()
            .fallback(serve::handle)
            .with_state(inner.clone());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("fake forge serves");
        });
        FakeForge {
            flavor,
            address,
            inner,
            shutdown: Some(shutdown),
        }
    }

    /// The API base URL to put in `ForgeSettings::api`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().violations.clone()
    }

    /// The violations so far, forgotten (for tests that break the description on purpose).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.state.lock().unwrap().violations)
    }

    /// Fails unless every request and response so far conformed to the description.
    pub fn assert_clean(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "the fake {:?} forge saw {} violation(s) of its API description:\n{}",
            self.flavor,
            violations.len(),
            violations.join("\n")
        );
    }

    pub fn log(&self) -> Vec<Logged> {
        self.inner.state.lock().unwrap().log.clone()
    }

    pub fn pulls(&self) -> Vec<FakePull> {
        self.inner.state.lock().unwrap().pulls.clone()
    }

    pub fn pull(&self, number: u64) -> FakePull {
        self.pulls()
            .into_iter()
            .find(|p| p.number == number)
            .unwrap_or_else(|| panic!("no pull request {number}"))
    }

    /// The next `count` requests are refused as `limit` says.
    pub fn rate_limit(&self, limit: RateLimit, count: usize) {
        self.inner.state.lock().unwrap().rate_limit = Some((limit, count));
    }

    /// The next `count` requests fail with the server error `status` (the description must list it for
    /// the operation, or the answer is a violation).
    pub fn fail_next(&self, status: u16, count: usize) {
        self.inner.state.lock().unwrap().server_errors = Some((status, count));
    }

    /// Answers the next `skip` requests normally, then fails `count` with `status` (to fail one call in
    /// the middle of a known sequence).
    pub fn fail_after(&self, skip: usize, status: u16, count: usize) {
        let mut state = self.inner.state.lock().unwrap();
        state.server_errors_skip = skip;
        state.server_errors = Some((status, count));
    }

    /// Opens a pull request as a human would (not through the API under test).
    pub fn add_foreign_pull(&self, head: &str, base: &str, title: &str) -> u64 {
        let head_sha = git_rev(&self.inner.bare, head).expect("head branch exists");
        let base_sha = git_rev(&self.inner.bare, base).expect("base branch exists");
        let mut state = self.inner.state.lock().unwrap();
        let number = state.pulls.len() as u64 + 1;
        state.pulls.push(FakePull {
            number,
            title: title.into(),
            body: String::new(),
            head: head.into(),
            base: base.into(),
            head_sha,
            base_sha,
            state: PullState::Open,
            labels: Vec::new(),
            reviewers: Vec::new(),
            team_reviewers: Vec::new(),
            comments: Vec::new(),
            comment_ids: Vec::new(),
            merge_commit_sha: None,
            remove_source_branch: None,
            merge_method: None,
            conflicted: false,
        });
        number
    }

    /// `user` reviews pull request `number` (on its current head).
    pub fn add_review(&self, number: u64, user: &str, verdict: Verdict) {
        let commit = self.pull(number).head_sha;
        let mut state = self.inner.state.lock().unwrap();
        state.next_id += 1;
        let id = state.next_id;
        state.reviews.push(FakeReview {
            id,
            pull: number,
            user: user.into(),
            verdict,
            commit,
        });
    }

    /// Reports commit status `context` on `sha` (GitLab: a job or external status of that name).
    pub fn set_status(&self, sha: &str, context: &str, check: Check) {
        self.add_check(CheckKind::Status, sha, context, check, false);
    }

    /// GitLab: a job allowed to fail.
    pub fn set_optional_job(&self, sha: &str, name: &str, check: Check) {
        assert_eq!(self.flavor, Flavor::GitLab, "jobs are GitLab's");
        self.add_check(CheckKind::Status, sha, name, check, true);
    }

    /// GitHub: reports check run `name` on `sha`.
    pub fn set_check_run(&self, sha: &str, name: &str, check: Check) {
        assert_eq!(self.flavor, Flavor::GitHub, "check runs are GitHub's");
        self.add_check(CheckKind::CheckRun, sha, name, check, false);
    }

    /// GitLab: a pipeline for `sha` with this status (the newest one counts).
    pub fn set_pipeline(&self, sha: &str, check: Check) {
        assert_eq!(self.flavor, Flavor::GitLab, "pipelines are GitLab's");
        self.add_check(CheckKind::Pipeline, sha, "pipeline", check, false);
    }

    fn add_check(&self, kind: CheckKind, sha: &str, name: &str, check: Check, allow_failure: bool) {
        let mut state = self.inner.state.lock().unwrap();
        state.next_id += 1;
        let id = state.next_id;
        state.checks.push(FakeCheck {
            id,
            kind,
            sha: sha.into(),
            name: name.into(),
            state: check,
            allow_failure,
        });
    }

    /// Refuses merges through the API as "not mergeable" (a protection rule), or allows them again.
    pub fn block_merges(&self, message: Option<&str>) {
        self.inner.state.lock().unwrap().merge_blocked = message.map(str::to_string);
    }

    /// A human's commit on `branch` (authored and committed as `email`), as a push would add it.
    /// Returns the new head.
    pub fn push_foreign_commit(&self, branch: &str, email: &str) -> String {
        push_foreign_commit(&self.inner.bare, branch, email)
    }

    /// The next merge through the API loses a race: a human (`email`) pushes to the head branch
    /// after the client last read the pull request and before the forge merges.
    pub fn race_next_merge(&self, email: &str) {
        self.inner.state.lock().unwrap().race_next_merge = Some(email.to_string());
    }

    /// The commit a branch of the bare repository points at.
    pub fn branch_sha(&self, branch: &str) -> String {
        git_rev(&self.inner.bare, branch).expect("branch exists")
    }

    /// Merges pull request `number` as the forge's merge button would: a merge commit of head into base
    /// in the real bare repository. Returns the merge commit.
    pub fn merge(&self, number: u64) -> String {
        let pull = self.pull(number);
        assert_eq!(
            pull.state,
            PullState::Open,
            "only an open pull request merges"
        );
        let head = git_rev(&self.inner.bare, &pull.head).expect("head exists");
        let commit = merge_into_base(&self.inner.bare, &pull, "merge").expect("no conflicts");
        let mut state = self.inner.state.lock().unwrap();
        let stored = state.pulls.iter_mut().find(|p| p.number == number).unwrap();
        stored.state = PullState::Merged;
        stored.head_sha = head;
        stored.merge_commit_sha = Some(commit.clone());
        commit
    }
}

/// A human's commit on `branch` of `bare`; returns the new head.
fn push_foreign_commit(bare: &Path, branch: &str, email: &str) -> String {
    let head = git_rev(bare, branch).expect("branch exists");
    let tree = git(bare, &["rev-parse", &format!("{head}^{{tree}}")]);
    let commit = git_as(
        bare,
        &["commit-tree", &tree, "-p", &head, "-m", "a human's change"],
        ("Human", email),
    )
    .expect("commit-tree");
    git(
        bare,
        &[
            "update-ref",
            &format!("refs/heads/{branch}"),
            &commit,
            &head,
        ],
    );
    commit
}

/// Why a merge in the bare repository did not happen.
#[derive(Debug)]
pub(crate) enum MergeFailure {
    Conflict,
}

/// Merges `pull`'s head into its base in `bare` with `method` (`merge`: a merge commit; `squash`: one
/// commit with the head's tree changes; `rebase`: each head commit replayed on the base, authors kept)
/// and moves the base. Returns the new base commit.
pub(crate) fn merge_into_base(
    bare: &Path,
    pull: &FakePull,
    method: &str,
) -> Result<String, MergeFailure> {
    let base = git_rev(bare, &pull.base).expect("base exists");
    let head = git_rev(bare, &pull.head).expect("head exists");
    let commit = match method {
        "merge" | "squash" => {
            let tree = merge_tree(bare, &base, &head, None)?;
            let message = if method == "merge" {
                format!("Merge pull request #{} from {}", pull.number, pull.head)
            } else {
                format!("{} (#{})", pull.title, pull.number)
            };
            let mut args = vec!["commit-tree", tree.as_str(), "-p", base.as_str()];
            if method == "merge" {
                args.extend(["-p", head.as_str()]);
            }
            args.extend(["-m", message.as_str()]);
            git(bare, &args)
        }
        "rebase" => {
            let merge_base = git(bare, &["merge-base", &base, &head]);
            let commits = git(
                bare,
                &["rev-list", "--reverse", &format!("{merge_base}..{head}")],
            );
            let mut onto = base.clone();
            for commit in commits.lines() {
                let parent = format!("{commit}^");
                let tree = merge_tree(bare, &onto, commit, Some(&parent))?;
                let message = git(bare, &["log", "-1", "--format=%B", commit]);
                let name = git(bare, &["log", "-1", "--format=%an", commit]);
                let email = git(bare, &["log", "-1", "--format=%ae", commit]);
                onto = git_as(
                    bare,
                    &["commit-tree", &tree, "-p", &onto, "-m", &message],
                    (&name, &email),
                )
                .expect("commit-tree");
            }
            onto
        }
        other => panic!("unknown merge method {other}"),
    };
    git(
        bare,
        &[
            "update-ref",
            &format!("refs/heads/{}", pull.base),
            &commit,
            &base,
        ],
    );
    Ok(commit)
}

/// `git merge-tree --write-tree`: the merged tree, or a conflict.
fn merge_tree(
    bare: &Path,
    ours: &str,
    theirs: &str,
    merge_base: Option<&str>,
) -> Result<String, MergeFailure> {
    let mut args = vec!["merge-tree", "--write-tree"];
    if let Some(merge_base) = merge_base {
        args.extend(["--merge-base", merge_base]);
    }
    args.extend([ours, theirs]);
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(&args)
        .output()
        .expect("run git");
    match output.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()),
        Some(1) => Err(MergeFailure::Conflict),
        _ => panic!("git {args:?}: {}", String::from_utf8_lossy(&output.stderr)),
    }
}

/// `true` when `head` cannot be merged into `base` without conflicts.
pub(crate) fn conflicts(bare: &Path, base: &str, head: &str) -> bool {
    matches!(
        merge_tree(bare, base, head, None),
        Err(MergeFailure::Conflict)
    )
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if !std::thread::panicking() {
            self.assert_clean();
        }
    }
}

/// Runs git in the bare repository; panics with its stderr on failure.
fn git(bare: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Fake Forge")
        .env("GIT_AUTHOR_EMAIL", "forge@fake.example")
        .env("GIT_COMMITTER_NAME", "Fake Forge")
        .env("GIT_COMMITTER_EMAIL", "forge@fake.example")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Runs git with `identity` as author and committer; `None` on failure.
fn git_as(bare: &Path, args: &[&str], identity: (&str, &str)) -> Option<String> {
    let (name, email) = identity;
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(args)
        .env("GIT_AUTHOR_NAME", name)
        .env("GIT_AUTHOR_EMAIL", email)
        .env("GIT_COMMITTER_NAME", name)
        .env("GIT_COMMITTER_EMAIL", email)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn git_rev(bare: &Path, branch: &str) -> Option<String> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}^{{commit}}"),
        ])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
