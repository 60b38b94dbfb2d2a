//! A fake forge (GitHub, GitLab, Gitea, Forgejo) on a free loopback port: the one fake the house rules
//! allow. It keeps pull requests in memory, can merge one into a real bare git repository, can answer
//! the first requests as rate limited, and checks EVERY request it receives and EVERY response it sends
//! against the forge's official API description (`tests/forge-api/`, see its README for provenance).
//!
//! A request or response that breaks the description is recorded as a violation; `assert_clean` fails
//! the test on any, and dropping the fake after a passing test asserts it too.

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
    pub merge_commit_sha: Option<String>,
    pub remove_source_branch: Option<bool>,
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
            merge_commit_sha: None,
            remove_source_branch: None,
        });
        number
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
        let bare = &self.inner.bare;
        let base = git_rev(bare, &pull.base).expect("base exists");
        let head = git_rev(bare, &pull.head).expect("head exists");
        let tree = git(bare, &["merge-tree", "--write-tree", &base, &head]);
        let message = format!("Merge pull request #{number} from {}", pull.head);
        let commit = git(
            bare,
            &[
                "commit-tree",
                &tree,
                "-p",
                &base,
                "-p",
                &head,
                "-m",
                &message,
            ],
        );
        git(
            bare,
            &[
                "update-ref",
                &format!("refs/heads/{}", pull.base),
                &commit,
                &base,
            ],
        );
        let mut state = self.inner.state.lock().unwrap();
        let stored = state.pulls.iter_mut().find(|p| p.number == number).unwrap();
        stored.state = PullState::Merged;
        stored.merge_commit_sha = Some(commit.clone());
        stored.head_sha = head;
        commit
    }
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
