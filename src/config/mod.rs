//! Loading and validating `tagwatch.yaml` and the policy documents it names (docs/reference/configuration.md).
//!
//! Owns: the file formats (`raw`, from which the JSON Schema is generated), the positioned YAML tree
//! (`yaml`), the structural check against that schema (`schema_check`), and the conversion into
//! validated domain types: [`Config`], [`RepositoryConfig`], `registry::RegistrySettings` and
//! `policy::Policy`. Every problem is collected, never just the first, as a [`Diagnostic`] that prints
//! `FILE:LINE:COL: FIELD: message`.
//! Must not: read secrets (only check that the named env vars are set), touch the network, or let a
//! string that should have been parsed (regex, range, duration, cron, time zone) past this module.

mod file;
mod policies;
pub mod raw;
pub mod schema_check;
pub mod yaml;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::DEFAULT_CONFIG_FILE;
use crate::environment::Environment;
use crate::policy::Policy;
use crate::registry::RegistrySettings;
use crate::registry::settings::PasswordSource;

pub use self::policies::{load_policy_files, load_policy_files_for};
pub use self::yaml::Mark;

/// Largest config or policy file read (docs/security.md: document sizes are bounded); real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The daemon's HTTP address when the config names none: loopback only, so nothing is exposed by
/// accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// State directory (relative to the config file) when none is configured.
pub const DEFAULT_STATE_DIR: &str = ".tagwatch-state";
/// Poll period for images whose policy sets none: quick enough for a deploy pipeline, slow enough for
/// Docker Hub's anonymous rate limit with a few dozen images.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The branch read and pushed when a repository names none.
pub const DEFAULT_BRANCH: &str = "main";
/// Commit author when none is configured.
pub const DEFAULT_AUTHOR_NAME: &str = "tagwatch";
pub const DEFAULT_AUTHOR_EMAIL: &str = "tagwatch@localhost";
/// Commit message template when none is configured (docs/reference/configuration.md's example).
pub const DEFAULT_MESSAGE: &str = "chore(images): {summary}";
/// Head branch template for pull requests when none is configured.
pub const DEFAULT_PULL_REQUEST_BRANCH: &str = "tagwatch/{group}";

/// Everything `tagwatch.yaml` and its policies say, validated.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file read; `None` when the default file does not exist (empty config).
    pub file: Option<PathBuf>,
    pub registries: Vec<RegistrySettings>,
    pub repositories: Vec<RepositoryConfig>,
    pub policies: Vec<Policy>,
    pub daemon: DaemonConfig,
    /// `notify`: where events are posted.
    pub notify: Vec<NotifyConfig>,
}

/// One `notify` entry: the URL (a secret: by env var name, or written in the file), format, events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub url: NotifyUrl,
    pub format: crate::notify::Format,
    /// Empty: every kind.
    pub events: Vec<crate::notify::EventKind>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum NotifyUrl {
    Env(String),
    Literal(crate::secret::Secret),
}

impl std::fmt::Debug for NotifyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyUrl::Env(name) => write!(f, "Env({name})"),
            NotifyUrl::Literal(_) => f.write_str("Literal(…)"),
        }
    }
}

/// Every repository is re-read at least this often without a trigger: human commits, reverts and merged
/// pull requests are noticed within minutes, at the cost of one fetch (usually empty) per repository.
pub const DEFAULT_REPOSITORY_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// SIGTERM: in-flight work gets this long to reach a safe point — a push over a slow link fits, and it
/// stays below Kubernetes' default termination grace period (30 s + margin set by the manifests).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub interval: Duration,
    pub repository_interval: Duration,
    pub shutdown_grace: Duration,
    pub webhooks: Webhooks,
    /// `daemon.leaderElection`: absent for a single replica.
    pub leader_election: Option<LeaderElection>,
}

/// `daemon.leaderElection` as written; the namespace and identity are resolved when the daemon starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    pub name: String,
    pub namespace: Option<String>,
    pub identity: Option<String>,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// client-go's defaults: a dead leader is replaced within 15 s, a live one renews every 2 s and steps
/// down after 10 s without a successful renewal (before its Lease could be taken over).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// The Lease's name when none is configured.
pub const DEFAULT_LEASE_NAME: &str = "tagwatch";

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses"),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            interval: DEFAULT_INTERVAL,
            repository_interval: DEFAULT_REPOSITORY_INTERVAL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            webhooks: Webhooks::default(),
            leader_election: None,
        }
    }
}

/// `daemon.webhooks`: each endpoint's credential, by environment variable name. An endpoint that is
/// `None` is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Webhooks {
    pub distribution: Option<WebhookAuth>,
    pub github: Option<WebhookAuth>,
    pub harbor: Option<WebhookAuth>,
    pub dockerhub: Option<WebhookAuth>,
    pub quay: Option<WebhookAuth>,
    pub acr: Option<WebhookAuth>,
    pub generic: Option<WebhookAuth>,
}

impl Webhooks {
    /// The configured endpoints, by the name in their path (`/webhook/NAME`).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &WebhookAuth)> {
        [
            ("distribution", &self.distribution),
            ("github", &self.github),
            ("harbor", &self.harbor),
            ("dockerhub", &self.dockerhub),
            ("quay", &self.quay),
            ("acr", &self.acr),
            ("generic", &self.generic),
        ]
        .into_iter()
        .filter_map(|(name, auth)| auth.as_ref().map(|auth| (name, auth)))
    }
}

/// Names of the environment variables that hold a webhook endpoint's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookAuth {
    pub token_env: Option<String>,
    pub secret_env: Option<String>,
}

/// A config repository (docs/reference/configuration.md `repositories`).
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryConfig {
    pub name: String,
    /// `file://`, `https://`, `http://`, `ssh://` or scp-like `user@host:path`; never with credentials.
    pub url: String,
    pub branch: String,
    /// Relative paths inside the repository; empty: the whole repository.
    pub paths: Vec<PathBuf>,
    pub auth: GitAuth,
    pub write_back: WriteBack,
    /// Extra CA (PEM) for an HTTPS remote with a private certificate authority.
    pub ca_file: Option<PathBuf>,
}

/// Where git credentials come from: names of env vars and files only.
#[derive(Debug, Clone, PartialEq)]
pub enum GitAuth {
    None,
    /// An HTTPS token (sent as the password).
    Token {
        env: String,
    },
    SshKey {
        key_file: PathBuf,
        known_hosts_file: Option<PathBuf>,
    },
    Basic {
        username: String,
        password: PasswordSource,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriteBack {
    pub mode: WriteBackMode,
    /// `push`: the branch pushed to; `pull-request`: the head branch template (`{group}`).
    pub branch: String,
    pub group: Grouping,
    pub author: Author,
    /// Template with `{summary}`, `{changes}`, `{policy}`, `{image}`, `{from}`, `{to}`.
    pub message: String,
    /// Required for `pull-request`.
    pub forge: Option<ForgeConfig>,
    /// How commits are signed (`writeBack.signing`; default: unsigned).
    pub signing: crate::git::Signing,
    /// Pull-request mode: when tagwatch merges its own pull requests (`writeBack.merge`).
    pub merge: Option<MergeSettings>,
}

/// `writeBack.merge` (docs/review.md).
#[derive(Debug, Clone)]
pub struct MergeSettings {
    pub require_approval: bool,
    pub require_checks: bool,
    pub method: crate::forge::MergeMethod,
    /// Empty: any time.
    pub windows: Vec<crate::policy::window::Window>,
}

impl PartialEq for MergeSettings {
    /// Windows compare by their schedules' text (`cron::Schedule` has no equality).
    fn eq(&self, other: &Self) -> bool {
        self.require_approval == other.require_approval
            && self.require_checks == other.require_checks
            && self.method == other.method
            && self.windows.len() == other.windows.len()
            && self.windows.iter().zip(&other.windows).all(|(a, b)| {
                a.schedule.to_string() == b.schedule.to_string()
                    && a.duration == b.duration
                    && a.timezone == b.timezone
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBackMode {
    Push,
    PullRequest,
}

/// How bumps are bundled into commits / pull requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Repository,
    Policy,
    Image,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForgeConfig {
    pub kind: ForgeKind,
    /// API base URL, e.g. `https://api.github.com`.
    pub api: String,
    /// `owner/name` (GitLab: the project path).
    pub repository: String,
    pub token_env: String,
    /// Labels put on every pull request.
    pub labels: Vec<String>,
    /// Reviewers requested on every pull request.
    pub reviewers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    GitHub,
    GitLab,
    Gitea,
    /// Forgejo speaks Gitea's API with a few differences the forge client knows.
    Forgejo,
}

/// Whether loading checks that the env vars named for secrets are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// `validate`, `run`, `daemon`: a missing secret is a problem now, not at the first push.
    Require,
    /// `resolve`: it needs at most a registry's secret, and the registry client reports that one.
    Skip,
}

/// One problem in a config or policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub mark: Mark,
    /// Field path, e.g. `spec.semver.range`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file.display(),
            self.mark.line,
            self.mark.column
        )?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found; printed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file.
pub(crate) struct Report<'a> {
    pub file: &'a Path,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

impl Report<'_> {
    pub fn add(&mut self, mark: Mark, path: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            mark,
            path: path.to_string(),
            message: message.into(),
        });
    }
}

impl Config {
    /// Loads the config file (`path`, or `tagwatch.yaml` in the working directory; a missing default
    /// file is an empty config) and every policy it names.
    pub fn load(path: Option<&Path>, environment: &Environment) -> Result<Config, Diagnostics> {
        Self::load_with(path, environment, SecretCheck::Require)
    }

    /// [`Config::load`], choosing whether env vars named for secrets must be set now.
    pub fn load_with(
        path: Option<&Path>,
        environment: &Environment,
        secrets: SecretCheck,
    ) -> Result<Config, Diagnostics> {
        let (file, explicit) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        if !explicit && !file.exists() {
            return Ok(Config::default());
        }
        let mut diagnostics = Vec::new();
        let config = file::load(&file, environment, secrets, &mut diagnostics);
        sort_diagnostics(&mut diagnostics);
        if diagnostics.is_empty() {
            Ok(config)
        } else {
            Err(Diagnostics(diagnostics))
        }
    }

    /// The policy `name` refers to: a TagPolicy name, a Flux `NAMESPACE:NAME` (as Flux markers write
    /// it), or a Flux policy's bare name when only one namespace has it.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        find_policy(&self.policies, name)
    }

    /// The policy a marker (`# {"$imagepolicy": "flux-system:podinfo"}` or `# tagwatch: podinfo`) names.
    pub fn policy_by_marker(&self, marker: &str) -> Option<&Policy> {
        find_policy(&self.policies, marker)
    }

    /// The registry settings for `host`, if the config lists it.
    pub fn registry(&self, host: &str) -> Option<&RegistrySettings> {
        self.registries.iter().find(|r| r.host == host)
    }
}

/// Files in the order they were first reported, each file's problems by line and column.
fn sort_diagnostics(diagnostics: &mut [Diagnostic]) {
    let mut files: Vec<PathBuf> = Vec::new();
    for diagnostic in diagnostics.iter() {
        if !files.contains(&diagnostic.file) {
            files.push(diagnostic.file.clone());
        }
    }
    diagnostics.sort_by_key(|d| {
        let file = files.iter().position(|f| *f == d.file).unwrap_or(0);
        (file, d.mark.line, d.mark.column)
    });
}

/// Reads the policy documents of `files` alone (`resolve path/to/policy.yaml`).
pub fn load_policies(files: &[PathBuf]) -> Result<Vec<Policy>, Diagnostics> {
    let mut diagnostics = Vec::new();
    let policies = load_policy_files(files, &mut diagnostics);
    sort_diagnostics(&mut diagnostics);
    if diagnostics.is_empty() {
        Ok(policies)
    } else {
        Err(Diagnostics(diagnostics))
    }
}

/// See [`Config::policy`].
pub fn find_policy<'p>(policies: &'p [Policy], name: &str) -> Option<&'p Policy> {
    if let Some(policy) = policies.iter().find(|p| p.name == name) {
        return Some(policy);
    }
    if name.contains(':') {
        return None;
    }
    let mut flux = policies
        .iter()
        .filter(|p| p.name.split_once(':').is_some_and(|(_, bare)| bare == name));
    match (flux.next(), flux.next()) {
        (Some(policy), None) => Some(policy),
        _ => None,
    }
}

/// Reads a config or policy file with the size bound; the error is a diagnostic at 1:1.
pub(crate) fn read_bounded(file: &Path, report: &mut Report<'_>) -> Option<String> {
    let start = Mark { line: 1, column: 1 };
    match std::fs::metadata(file) {
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            report.add(
                start,
                "",
                format!(
                    "file too large: {} bytes (at most {MAX_FILE_BYTES})",
                    meta.len()
                ),
            );
            return None;
        }
        Err(error) => {
            report.add(start, "", format!("cannot read: {error}"));
            return None;
        }
        Ok(_) => {}
    }
    match std::fs::read_to_string(file) {
        Ok(text) => Some(text),
        Err(error) => {
            report.add(start, "", format!("cannot read: {error}"));
            None
        }
    }
}

/// Parses `text` into documents, reporting a syntax error as a diagnostic.
pub(crate) fn parse_yaml(text: &str, report: &mut Report<'_>) -> Option<Vec<Option<yaml::Node>>> {
    match yaml::parse_documents(text) {
        Ok(documents) => Some(documents),
        Err(error) => {
            report.add(
                error.mark,
                "",
                format!("YAML syntax error: {}", error.message),
            );
            None
        }
    }
}

/// A document that passed (or partly passed) the structural check.
pub(crate) struct Checked<T> {
    pub raw: T,
    pub positions: schema_check::Positions,
    /// Field paths with structural problems (already reported).
    pub broken: Vec<String>,
}

/// Checks `node` against the schema of `T`, reports every structural problem, and deserializes what is
/// usable. `None` when a required part is missing or wrong.
pub(crate) fn check_document<T: serde::de::DeserializeOwned>(
    schema: &serde_json::Value,
    node: &yaml::Node,
    report: &mut Report<'_>,
) -> Option<Checked<T>> {
    let checked = schema_check::check(schema, node);
    let broken = checked.problems.iter().map(|p| p.path.clone()).collect();
    for problem in checked.problems {
        report.add(problem.mark, &problem.path, problem.message);
    }
    let raw = match serde_json::from_value(checked.value?) {
        Ok(raw) => raw,
        Err(error) => {
            // The schema and the types come from the same definitions; this is a bug if reached.
            report.add(
                node.mark,
                "",
                format!("internal: schema and types disagree: {error}"),
            );
            return None;
        }
    };
    Some(Checked {
        raw,
        positions: checked.positions,
        broken,
    })
}

/// Drops the semantic diagnostics (those from index `from` on) about a field that has a structural
/// problem or lies inside one: a wrong value is reported once, as what it is. (Checks of a missing
/// choice look at what was written, see `Positions::written`, so `semver: 5` is not also "no
/// selection rule".)
pub(crate) fn suppress_related(diagnostics: &mut Vec<Diagnostic>, from: usize, broken: &[String]) {
    let inside = |outer: &str, inner: &str| {
        outer.is_empty()
            || inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    let mut index = 0;
    diagnostics.retain(|diagnostic| {
        let keep = index < from || !broken.iter().any(|path| inside(path, &diagnostic.path));
        index += 1;
        keep
    });
}

/// The JSON Schema of `tagwatch.yaml` (published as `schema/tagwatch.schema.json`).
pub fn config_schema() -> serde_json::Value {
    schema_of::<raw::RawConfig>()
}

/// The JSON Schema of a TagPolicy document (published as `schema/policy.schema.json`).
pub fn policy_schema() -> serde_json::Value {
    schema_of::<raw::RawTagPolicy>()
}

/// Draft-07: the dialect editors' YAML language servers understand best.
pub(crate) fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_value(schema).expect("schema serializes")
}

#[cfg(test)]
mod tests;
