//! The wire types of `tagwatch.yaml` and policy documents, exactly as written. They are the single
//! description of the file formats: the published JSON Schema is generated from them (and the reference
//! pages `docs/reference/*.md` from that schema), the structural check walks that schema over the YAML
//! tree, and `serde` then fills these types. The validated domain types are built from them in `file`
//! and `policies`.
//!
//! Must not: hold defaults or validation (strings stay strings here). The schema's `default` annotations
//! name the constants `file` and `policies` apply, so the published defaults cannot drift from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// `tagwatch.yaml`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "tagwatch.yaml")]
pub struct RawConfig {
    /// Registries that need settings; any other is reached anonymously over HTTPS.
    pub registries: Option<Vec<RawRegistry>>,
    /// Config repositories that tagwatch keeps up to date.
    pub repositories: Option<Vec<RawRepository>>,
    /// Files or directories of policy documents, relative to this file.
    pub policies: Option<Vec<String>>,
    /// Settings of `tagwatch daemon`; `plan` and `run` also keep their cached clones in `stateDir`, and
    /// `status` asks the daemon at `listen`.
    pub daemon: Option<RawDaemon>,
    /// Where events are posted (bump written, pull request opened / updated / merged / closed, hold,
    /// failure).
    pub notify: Option<Vec<RawNotify>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNotify {
    /// The webhook URL. Prefer `urlEnv`: a Slack webhook URL is a secret.
    pub url: Option<String>,
    /// Environment variable holding the webhook URL.
    pub url_env: Option<String>,
    /// `slack` (`{"text", "blocks"}`) or `json` (the event itself).
    #[schemars(extend("default" = "slack"))]
    pub format: Option<String>,
    /// `bump`, `pull-request`, `hold`, `failure`; default: all.
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRegistry {
    /// `host[:port]` as written in image references, e.g. `ghcr.io` or `127.0.0.1:5000`.
    pub host: String,
    /// Plain HTTP (or TLS without verification when `tls.ca` is not given).
    #[schemars(extend("default" = false))]
    pub insecure: Option<bool>,
    /// TLS settings for this registry.
    pub tls: Option<RawTls>,
    /// Credentials; without them the registry is used anonymously.
    pub auth: Option<RawRegistryAuth>,
    /// Requests in flight to this registry at most.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = crate::registry::settings::DEFAULT_MAX_CONCURRENCY))]
    pub max_concurrency: Option<u32>,
    /// Per-request timeout, e.g. `30s`.
    #[schemars(extend("default" = humantime::format_duration(crate::registry::settings::DEFAULT_REQUEST_TIMEOUT).to_string()))]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTls {
    /// A PEM file with the CA certificate(s) to trust for this registry.
    pub ca: Option<String>,
}

/// One of: `username` with `passwordEnv` or `passwordFile`; `dockerConfig`; `credentialHelper`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRegistryAuth {
    /// User name, with `passwordEnv` or `passwordFile`.
    pub username: Option<String>,
    /// Name of the environment variable that holds the password or token.
    pub password_env: Option<String>,
    /// File that holds the password or token.
    pub password_file: Option<String>,
    /// A docker `config.json` (`auths`, `credsStore`, `credHelpers`).
    pub docker_config: Option<String>,
    /// Run `docker-credential-NAME get`.
    pub credential_helper: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRepository {
    /// Unique name, used in logs, metrics and `plan`.
    pub name: String,
    /// `file://`, `https://`, `http://`, `ssh://` or `user@host:path`.
    pub url: String,
    /// The branch to read (and, by default, to push to).
    #[schemars(extend("default" = super::DEFAULT_BRANCH))]
    pub branch: Option<String>,
    /// Only these paths are scanned (relative, inside the repository); default: the whole repository.
    pub paths: Option<Vec<String>>,
    /// Git credentials; none for a public or `file://` remote.
    pub auth: Option<RawGitAuth>,
    /// How bumps reach the remote: pushed commits (default) or pull requests.
    pub write_back: Option<RawWriteBack>,
    /// Extra CA certificate(s) (PEM) trusted for this remote's HTTPS server, on top of the system roots.
    pub ca_file: Option<String>,
}

/// One of: `tokenEnv`; `sshKeyFile` (+ `knownHostsFile`); `username` with `passwordEnv` or `passwordFile`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitAuth {
    /// Environment variable holding an HTTPS token (sent as the password of user `x-access-token`, or
    /// of `username` when given).
    pub token_env: Option<String>,
    /// Private SSH key file (for `ssh://` and `user@host:path` URLs).
    pub ssh_key_file: Option<String>,
    /// OpenSSH `known_hosts` file the SSH server's host key is checked against; without it every SSH
    /// server is refused.
    pub known_hosts_file: Option<String>,
    /// User name for HTTPS basic authentication.
    pub username: Option<String>,
    /// Environment variable holding the HTTPS password.
    pub password_env: Option<String>,
    /// File holding the HTTPS password.
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWriteBack {
    /// `push`: commit on the branch and push; `pull-request`: push a head branch and open (update,
    /// close) a pull request through `forge`.
    #[schemars(extend("default" = "push"))]
    pub mode: Option<RawWriteBackMode>,
    /// Push target; for `pull-request` the head branch template, e.g. `tagwatch/{group}`. Default: the
    /// repository's `branch` in push mode, `tagwatch/{group}` in pull-request mode.
    pub branch: Option<String>,
    /// One commit (and pull request) per cycle for the whole `repository`, per `policy`, or per `image`.
    #[schemars(extend("default" = "repository"))]
    pub group: Option<RawGroup>,
    /// Commit author (and committer).
    #[schemars(extend("default" = serde_json::json!({"name": super::DEFAULT_AUTHOR_NAME, "email": super::DEFAULT_AUTHOR_EMAIL})))]
    pub author: Option<RawAuthor>,
    /// Commit message template: `{summary}`, `{changes}`, `{policy}`, `{image}`, `{from}`, `{to}`.
    #[schemars(extend("default" = super::DEFAULT_MESSAGE))]
    pub message: Option<String>,
    /// The forge API, for pull requests (required in `pull-request` mode) and commit statuses.
    pub forge: Option<RawForge>,
    /// Sign tagwatch's commits: `{ sshKeyFile: PATH }` or `{ gpgKeyId: ID, gnupgHome: DIR }`.
    pub signing: Option<RawSigning>,
    /// Pull-request mode: merge tagwatch's pull requests when approved and green, inside the windows.
    pub merge: Option<RawMerge>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMerge {
    /// The forge must report the pull request approved.
    #[schemars(extend("default" = true))]
    pub require_approval: Option<bool>,
    /// Every status and check on the head commit must have succeeded.
    #[schemars(extend("default" = true))]
    pub require_checks: Option<bool>,
    /// `merge` (keeps tagwatch's commit and its trailers), `squash` or `rebase`.
    #[schemars(extend("default" = "merge"))]
    pub method: Option<RawMergeMethod>,
    /// Merge only inside these windows (default: any time).
    pub windows: Option<Vec<RawWindow>>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawMergeMethod {
    Merge,
    Squash,
    Rebase,
}

/// One of: `sshKeyFile` (signed with `ssh-keygen -Y sign`), or `gpgKeyId` (+ optional `gnupgHome`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSigning {
    /// Private SSH key file; its `.pub` is what verifiers list in `gpg.ssh.allowedSignersFile`.
    pub ssh_key_file: Option<String>,
    /// GPG key id (`gpg -u`).
    pub gpg_key_id: Option<String>,
    /// `GNUPGHOME` for the gpg process.
    pub gnupg_home: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawWriteBackMode {
    Push,
    PullRequest,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawGroup {
    Repository,
    Policy,
    Image,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthor {
    /// Author name.
    pub name: String,
    /// Author email address.
    pub email: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawForge {
    pub kind: RawForgeKind,
    /// API base URL; defaults for github.com and gitlab.com.
    pub api: Option<String>,
    /// `owner/name` (GitLab: the project path).
    pub repo: String,
    /// Environment variable holding the API token.
    pub token_env: String,
    /// Labels put on every pull request tagwatch opens.
    pub labels: Option<Vec<String>>,
    /// Reviewers requested on every pull request: logins, or `org/team` (GitLab: numeric user ids).
    pub reviewers: Option<Vec<String>>,
}

// A field whose type is a `$ref` (not an `Option`) takes its description from the type: draft-07 ignores
// keywords beside `$ref`, and `schemars` would wrap it in an `allOf` the structural check does not read.
/// The forge's API.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawForgeKind {
    Github,
    Gitlab,
    Gitea,
    Forgejo,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDaemon {
    /// `address:port` of the HTTP server (webhooks, metrics, health).
    #[schemars(extend("default" = super::DEFAULT_LISTEN))]
    pub listen: Option<String>,
    /// Directory of the embedded state store and the cached clones, relative to this file.
    #[schemars(extend("default" = super::DEFAULT_STATE_DIR))]
    pub state_dir: Option<String>,
    /// Default poll period of an image whose policies set no `interval`, e.g. `5m`.
    #[schemars(extend("default" = humantime::format_duration(super::DEFAULT_INTERVAL).to_string()))]
    pub interval: Option<String>,
    /// Every repository is re-read at least this often, also without a trigger, e.g. `5m`.
    #[schemars(extend("default" = humantime::format_duration(super::DEFAULT_REPOSITORY_INTERVAL).to_string()))]
    pub repository_interval: Option<String>,
    /// On SIGTERM, how long in-flight work may take to reach a safe point, e.g. `30s`.
    #[schemars(extend("default" = humantime::format_duration(super::DEFAULT_SHUTDOWN_GRACE).to_string()))]
    pub shutdown_grace: Option<String>,
    /// Webhook endpoints; one without a credential is off (404).
    pub webhooks: Option<RawWebhooks>,
    /// Two or more replicas: only the holder of a Kubernetes Lease polls and writes.
    pub leader_election: Option<RawLeaderElection>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLeaderElection {
    /// The Lease's name (default `tagwatch`).
    pub name: Option<String>,
    /// Its namespace (default: the pod's, from `POD_NAMESPACE` or the service account).
    pub namespace: Option<String>,
    /// This replica's identity (default: `POD_NAME`, else the host name).
    pub identity: Option<String>,
    /// How long a Lease holds without renewal, e.g. `15s`.
    pub lease_duration: Option<String>,
    /// A leader that could not renew this long steps down, e.g. `10s` (less than leaseDuration).
    pub renew_deadline: Option<String>,
    /// How often to renew, or to try to take over, e.g. `2s`.
    pub retry_period: Option<String>,
}

/// `daemon.webhooks`: the credential of each endpoint, by environment variable name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWebhooks {
    /// `POST /webhook/distribution`: `Authorization: Bearer <token>`.
    pub distribution: Option<RawWebhookAuth>,
    /// `POST /webhook/github`: `X-Hub-Signature-256` HMAC of the body with the secret.
    pub github: Option<RawWebhookAuth>,
    /// `POST /webhook/harbor`: the `Authorization` header value configured in Harbor.
    pub harbor: Option<RawWebhookAuth>,
    /// `POST /webhook/dockerhub/<token>`.
    pub dockerhub: Option<RawWebhookAuth>,
    /// `POST /webhook/quay/<token>`.
    pub quay: Option<RawWebhookAuth>,
    /// `POST /webhook/acr`: `Authorization: Bearer <token>`.
    pub acr: Option<RawWebhookAuth>,
    /// `POST /webhook/generic`: Bearer token or `X-Signature-256` HMAC.
    pub generic: Option<RawWebhookAuth>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWebhookAuth {
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// Environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
}

/// A tagwatch policy document (`apiVersion: tagwatch.dev/v1alpha1`, `kind: TagPolicy`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "TagPolicy")]
pub struct RawTagPolicy {
    /// `tagwatch.dev/v1alpha1`.
    pub api_version: String,
    /// `TagPolicy`.
    pub kind: String,
    pub metadata: RawMetadata,
    pub spec: RawTagPolicySpec,
}

/// The policy's name, and labels and annotations tagwatch does not read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetadata {
    /// Unique among all policies, without `:`; what `# tagwatch: NAME` markers, `resolve` and `plan`
    /// name.
    pub name: String,
    /// Free-form labels (not read by tagwatch).
    pub labels: Option<BTreeMap<String, String>>,
    /// Free-form annotations (not read by tagwatch).
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Which tags of the image are candidates, which one wins, and when it is written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTagPolicySpec {
    /// The image whose tags are candidates, without tag or digest, e.g. `ghcr.io/stefanprodan/podinfo`.
    pub image: String,
    /// Selection by semantic version. Exactly one of `semver` and `order`.
    pub semver: Option<RawSemver>,
    /// Only tags matching `pattern` are candidates; `extract` builds the key they are ranked by.
    pub filter: Option<RawFilter>,
    /// How candidates are ranked when `semver` is not used: the extracted key as a number or as text,
    /// or the image's `created` time (`newest`).
    pub order: Option<RawOrder>,
    /// `asc`: the greatest key wins; `desc`: the smallest. Only with `order: numerical | alphabetical`.
    #[schemars(extend("default" = "asc"))]
    pub direction: Option<RawDirection>,
    /// Globs on the tag; matching tags are never candidates.
    pub exclude: Option<Vec<String>>,
    /// Write `tag@sha256:…` and follow digest changes of the chosen tag.
    #[schemars(extend("default" = false))]
    pub digest: Option<bool>,
    /// Poll period for this image, e.g. `1m`; default: `daemon.interval`.
    pub interval: Option<String>,
    /// Bumps are written only inside these windows.
    pub windows: Option<Vec<RawWindow>>,
    /// Ignore tags younger than this (image config `created`), e.g. `1h`.
    #[schemars(extend("default" = "0s"))]
    pub min_age: Option<String>,
    /// The repositories (names from `tagwatch.yaml`) this policy applies to; default: all.
    pub repositories: Option<Vec<String>>,
    /// Candidates are the versions an upstream environment ran long enough (docs/promotion.md).
    pub promotion: Option<RawPromotion>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPromotion {
    /// The upstream: a repository name from `tagwatch.yaml`.
    pub from: String,
    /// Where in the upstream to look; default: that repository's `paths`.
    pub paths: Option<Vec<String>>,
    /// How long the upstream must have run a version, continuously, e.g. `24h`.
    pub soak: String,
    /// Forge commit statuses / check runs that must have succeeded on an upstream commit running the version.
    pub require_status: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSemver {
    /// A node-semver range: `^1.2`, `~1.2.3`, `1.x`, `>=1.2.0 <2`, `1.2 - 1.4`, `||`.
    pub range: String,
    /// node-semver's `includePrerelease`: prerelease versions (`1.3.0-rc.1`) are candidates too.
    #[schemars(extend("default" = false))]
    pub prerelease: Option<bool>,
    /// Track `X.Y.Z-VARIANT` tags as `X.Y.Z`, e.g. `alpine`.
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFilter {
    /// A regex every candidate must match.
    pub pattern: String,
    /// The sort key built from the pattern's groups, e.g. `$ts`.
    pub extract: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawOrder {
    Numerical,
    Alphabetical,
    Newest,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawDirection {
    Asc,
    Desc,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWindow {
    /// Cron schedule: standard `min hour day-of-month month day-of-week` (0 or 7 = Sunday), or
    /// `sec min hour day-of-month month day-of-week [year]` with weekday names.
    pub schedule: String,
    /// How long the window stays open after each opening, e.g. `8h`.
    pub duration: String,
    /// IANA time zone of the schedule, e.g. `Europe/Berlin`.
    #[schemars(extend("default" = "UTC"))]
    pub timezone: Option<String>,
}

/// Flux `ImagePolicy` (`image.toolkit.fluxcd.io/v1beta2` and `v1`): the fields tagwatch reads.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxImagePolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: RawFluxMetadata,
    pub spec: RawFluxImagePolicySpec,
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxMetadata {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxImagePolicySpec {
    pub image_repository_ref: RawFluxReference,
    pub policy: RawFluxPolicyChoice,
    pub filter_tags: Option<RawFilter>,
    pub digest_reflection_policy: Option<RawDigestReflection>,
    pub interval: Option<String>,
    pub suspend: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxReference {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxPolicyChoice {
    pub semver: Option<RawFluxSemver>,
    pub alphabetical: Option<RawFluxOrder>,
    pub numerical: Option<RawFluxOrder>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxSemver {
    pub range: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxOrder {
    pub order: Option<RawDirection>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum RawDigestReflection {
    Never,
    IfNotPresent,
    Always,
}

/// Flux `ImageRepository`: the fields tagwatch reads, and the ones it accepts and ignores (credentials
/// come from tagwatch's own `registries`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxImageRepository {
    pub api_version: String,
    pub kind: String,
    pub metadata: RawFluxMetadata,
    pub spec: RawFluxImageRepositorySpec,
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFluxImageRepositorySpec {
    pub image: String,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub exclusion_list: Option<Vec<String>>,
    pub insecure: Option<bool>,
    pub provider: Option<String>,
    pub suspend: Option<bool>,
    pub secret_ref: Option<serde_json::Value>,
    pub cert_secret_ref: Option<serde_json::Value>,
    pub proxy_secret_ref: Option<serde_json::Value>,
    pub service_account_name: Option<String>,
    pub access_from: Option<serde_json::Value>,
}
