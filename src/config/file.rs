//! `tagwatch.yaml` → [`Config`]: registries, repositories, daemon settings, and the policy paths.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use super::raw::{
    RawConfig, RawDaemon, RawForge, RawForgeKind, RawGitAuth, RawGroup, RawRegistry,
    RawRegistryAuth, RawRepository, RawWriteBack, RawWriteBackMode,
};
use super::schema_check::{Positions, child};
use super::{
    Author, Config, DEFAULT_AUTHOR_EMAIL, DEFAULT_AUTHOR_NAME, DEFAULT_BRANCH, DEFAULT_MESSAGE,
    DEFAULT_PULL_REQUEST_BRANCH, DaemonConfig, Diagnostic, ForgeConfig, ForgeKind, GitAuth,
    Grouping, Mark, Report, RepositoryConfig, SecretCheck, WriteBack, WriteBackMode,
    check_document, parse_yaml, read_bounded, suppress_related,
};
use crate::environment::Environment;
use crate::registry::settings::{
    DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT, PasswordSource, RegistryAuthSettings,
    RegistrySettings,
};

/// Placeholders a commit message template may use (docs/design/reconcile.md).
const MESSAGE_PLACEHOLDERS: &[&str] = &["summary", "changes", "policy", "image", "from", "to"];
/// Placeholders a pull-request head branch template may use.
const BRANCH_PLACEHOLDERS: &[&str] = &["group", "repository"];

static CONFIG_SCHEMA: LazyLock<serde_json::Value> = LazyLock::new(super::config_schema);

pub(super) fn load(
    file: &Path,
    environment: &Environment,
    secrets: SecretCheck,
    diagnostics: &mut Vec<Diagnostic>,
) -> Config {
    let mut config = Config {
        file: Some(file.to_path_buf()),
        ..Config::default()
    };
    let mut report = Report { file, diagnostics };
    let Some(text) = read_bounded(file, &mut report) else {
        return config;
    };
    let Some(documents) = parse_yaml(&text, &mut report) else {
        return config;
    };
    let mut documents = documents.into_iter().flatten();
    let Some(root) = documents.next() else {
        return config;
    };
    if let Some(extra) = documents.next() {
        report.add(
            extra.mark,
            "",
            "tagwatch.yaml holds one document; policies go in the files `policies` names",
        );
    }
    let Some(checked) = check_document::<RawConfig>(&CONFIG_SCHEMA, &root, &mut report) else {
        return config;
    };
    let (raw, positions, broken) = (checked.raw, checked.positions, checked.broken);
    let semantic_from = report.diagnostics.len();
    let base = file.parent().unwrap_or(Path::new(""));
    let mut context = Context {
        report,
        positions: &positions,
        environment,
        base,
        secrets,
    };
    config.registries = registries(&mut context, raw.registries.unwrap_or_default());
    config.repositories = repositories(&mut context, raw.repositories.unwrap_or_default());
    config.daemon = daemon(&mut context, raw.daemon, base);
    config.notify = notify(&mut context, raw.notify.unwrap_or_default());

    let mut policy_files = Vec::new();
    for (index, entry) in raw.policies.unwrap_or_default().iter().enumerate() {
        let path = format!("policies[{index}]");
        let resolved = base.join(entry);
        match super::policies::collect_files(&resolved) {
            Ok(files) => {
                for file in files {
                    // A file named both directly and through its directory is read once.
                    let identity = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                    if !policy_files.iter().any(|(seen, _)| *seen == identity) {
                        policy_files.push((identity, file));
                    }
                }
            }
            Err(error) => context.error(&path, format!("policy path {entry:?}: {error}")),
        }
    }
    suppress_related(context.report.diagnostics, semantic_from, &broken);
    let policy_files: Vec<PathBuf> = policy_files.into_iter().map(|(_, file)| file).collect();
    let repository_names: Vec<String> = config
        .repositories
        .iter()
        .map(|repository| repository.name.clone())
        .collect();
    // A repository entry with a structural problem is left out of `config.repositories` (and already
    // reported): policies naming it are then not told that it does not exist.
    let repositories_complete = !broken
        .iter()
        .any(|path| path.is_empty() || path.starts_with("repositories"));
    config.policies = super::policies::load_policy_files_for(
        &policy_files,
        repositories_complete.then_some(repository_names.as_slice()),
        context.report.diagnostics,
    );
    check_promotions(&config, context.report.diagnostics);
    config
}

/// Promotion chains across policies: `requireStatus` needs a forge on the upstream, and following
/// `from` for one image never comes back to where it started (dev → staging → prod, never prod → dev).
fn check_promotions(config: &Config, diagnostics: &mut Vec<Diagnostic>) {
    let at = |promotion: &crate::policy::Promotion, path: &str, message: String| Diagnostic {
        file: promotion.origin.file.clone(),
        mark: super::yaml::Mark {
            line: promotion.origin.line,
            column: promotion.origin.column,
        },
        path: path.to_string(),
        message,
    };
    let names: Vec<&str> = config
        .repositories
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    for policy in &config.policies {
        let Some(promotion) = &policy.promotion else {
            continue;
        };
        let upstream = config
            .repositories
            .iter()
            .find(|r| r.name == promotion.from);
        if !promotion.require_status.is_empty()
            && upstream.is_some_and(|upstream| upstream.write_back.forge.is_none())
        {
            diagnostics.push(at(
                promotion,
                "spec.promotion.requireStatus",
                format!(
                    "requireStatus is read from the forge of repository {:?}, which has no writeBack.forge",
                    promotion.from
                ),
            ));
        }
        // Edges of this image: every repository a promotion policy of it writes → its upstream.
        let image = policy.image.name();
        let edges: Vec<(&str, &str)> = config
            .policies
            .iter()
            .filter(|other| other.image.name() == image)
            .filter_map(|other| other.promotion.as_ref().map(|p| (other, p.from.as_str())))
            .flat_map(|(other, from)| {
                names
                    .iter()
                    .filter(move |name| other.applies_to(name))
                    .map(move |name| (*name, from))
            })
            .collect();
        // From the upstream, can we walk back into a repository this policy writes?
        let mut seen = vec![promotion.from.as_str()];
        let mut frontier = vec![promotion.from.as_str()];
        let mut cycle = None;
        while let Some(node) = frontier.pop() {
            if names
                .iter()
                .any(|name| *name == node && policy.applies_to(name))
            {
                cycle = Some(node);
                break;
            }
            for (_, next) in edges.iter().filter(|(source, _)| *source == node) {
                if !seen.contains(next) {
                    seen.push(next);
                    frontier.push(next);
                }
            }
        }
        if let Some(node) = cycle {
            diagnostics.push(at(
                promotion,
                "spec.promotion.from",
                format!(
                    "promotion of {image} forms a cycle: {:?} leads back to {node:?}, which policy {} writes",
                    promotion.from, policy.name
                ),
            ));
        }
    }
}

pub(super) struct Context<'a, 'r> {
    pub report: Report<'r>,
    pub positions: &'a Positions,
    pub environment: &'a Environment,
    /// The config file's directory: relative file paths in the config are relative to it.
    pub base: &'a Path,
    pub secrets: SecretCheck,
}

impl Context<'_, '_> {
    /// A file path from the config, resolved against the config file's directory.
    pub fn file_path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let mark: Mark = self.positions.of(path);
        self.report.add(mark, path, message);
    }

    pub fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        match humantime::parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(error) => {
                self.error(
                    path,
                    format!("invalid duration {text:?}: {error} (e.g. 30s, 5m, 1h30m)"),
                );
                None
            }
        }
    }

    /// A secret's env var must be set (and not empty) where validation runs.
    pub fn secret_env(&mut self, path: &str, name: &str) {
        if name.is_empty() || name.contains('=') {
            self.error(
                path,
                format!("{name:?} is not an environment variable name"),
            );
        } else if self.secrets == SecretCheck::Require && self.environment.secret(name).is_none() {
            self.error(
                path,
                format!("environment variable {name} is not set (or empty)"),
            );
        }
    }
}

fn registries(context: &mut Context<'_, '_>, raw: Vec<RawRegistry>) -> Vec<RegistrySettings> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut settings = Vec::new();
    for (index, registry) in raw.into_iter().enumerate() {
        let path = format!("registries[{index}]");
        let host_path = child(&path, "host");
        let written = registry.host.trim();
        let host = match normalized_host(written) {
            Some(host) => host,
            None => {
                context.error(
                    &host_path,
                    format!("invalid registry host {written:?}: expected host[:port] as written in image references, without scheme or path"),
                );
                written.to_string()
            }
        };
        if let Some(first) = seen.insert(host.clone(), index) {
            context.error(
                &host_path,
                format!("registry {host} is listed twice (first as registries[{first}])"),
            );
        }
        let auth = registry_auth(context, &child(&path, "auth"), registry.auth);
        let request_timeout = match &registry.timeout {
            Some(text) => context
                .duration(&child(&path, "timeout"), text)
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            None => DEFAULT_REQUEST_TIMEOUT,
        };
        settings.push(RegistrySettings {
            host,
            insecure: registry.insecure.unwrap_or(false),
            ca_file: registry
                .tls
                .and_then(|tls| tls.ca)
                .map(|ca| context.file_path(&ca)),
            auth,
            max_concurrency: registry
                .max_concurrency
                .map_or(DEFAULT_MAX_CONCURRENCY, |n| n as usize),
            request_timeout,
        });
    }
    settings
}

/// `host[:port]` as image references write it, normalized the way references are (`index.docker.io`
/// is `docker.io`), so the registry client can match settings to references by equality.
fn normalized_host(host: &str) -> Option<String> {
    if host.is_empty() || host.contains("://") || host.contains('/') {
        return None;
    }
    let registry = crate::reference::ImageReference::parse(&format!("{host}/probe"))
        .ok()?
        .registry;
    // A first component without `.`, `:` or `localhost` is a Docker Hub namespace, not a host.
    (registry == host || host == "index.docker.io").then_some(registry)
}

fn registry_auth(
    context: &mut Context<'_, '_>,
    path: &str,
    raw: Option<RawRegistryAuth>,
) -> RegistryAuthSettings {
    let Some(auth) = raw else {
        return RegistryAuthSettings::Anonymous;
    };
    let forms = [
        auth.username.is_some() || auth.password_env.is_some() || auth.password_file.is_some(),
        auth.docker_config.is_some(),
        auth.credential_helper.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() > 1 {
        context.error(
            path,
            "choose one of: username with passwordEnv or passwordFile; dockerConfig; credentialHelper",
        );
        return RegistryAuthSettings::Anonymous;
    }
    if let Some(path_text) = auth.docker_config {
        return RegistryAuthSettings::DockerConfig {
            path: context.file_path(&path_text),
        };
    }
    if let Some(name) = auth.credential_helper {
        if name.is_empty() || name.contains(['/', ' ']) {
            context.error(
                &child(path, "credentialHelper"),
                format!("invalid credential helper name {name:?}"),
            );
        }
        return RegistryAuthSettings::CredentialHelper { name };
    }
    match basic(
        context,
        path,
        auth.username,
        auth.password_env,
        auth.password_file,
    ) {
        Some((username, password)) => RegistryAuthSettings::Basic { username, password },
        None => RegistryAuthSettings::Anonymous,
    }
}

/// `username` + exactly one of `passwordEnv` / `passwordFile`.
fn basic(
    context: &mut Context<'_, '_>,
    path: &str,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
) -> Option<(String, PasswordSource)> {
    let password = match (password_env, password_file) {
        (Some(env), None) => {
            context.secret_env(&child(path, "passwordEnv"), &env);
            PasswordSource::Env(env)
        }
        (None, Some(file)) => PasswordSource::File(context.file_path(&file)),
        (Some(_), Some(_)) => {
            context.error(
                &child(path, "passwordFile"),
                "give passwordEnv or passwordFile, not both",
            );
            return None;
        }
        (None, None) => {
            context.error(
                &child(path, "passwordEnv"),
                "missing: username needs passwordEnv or passwordFile",
            );
            return None;
        }
    };
    match username {
        Some(username) => Some((username, password)),
        None => {
            context.error(
                &child(path, "username"),
                "missing: a password needs a username",
            );
            None
        }
    }
}

fn repositories(context: &mut Context<'_, '_>, raw: Vec<RawRepository>) -> Vec<RepositoryConfig> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut result = Vec::new();
    for (index, repository) in raw.into_iter().enumerate() {
        let path = format!("repositories[{index}]");
        let name_path = child(&path, "name");
        if repository.name.trim().is_empty() {
            context.error(&name_path, "must not be empty");
        } else if let Some(first) = seen.insert(repository.name.clone(), index) {
            context.error(
                &name_path,
                format!(
                    "repository name {:?} is used twice (first by repositories[{first}])",
                    repository.name
                ),
            );
        }
        check_git_url(context, &child(&path, "url"), &repository.url);
        let branch = repository
            .branch
            .unwrap_or_else(|| DEFAULT_BRANCH.to_string());
        let mut paths = Vec::new();
        for (i, entry) in repository.paths.unwrap_or_default().iter().enumerate() {
            let entry_path = format!("{path}.paths[{i}]");
            match contained_path(entry) {
                Some(p) => paths.push(p),
                None => context.error(
                    &entry_path,
                    format!("{entry:?} must be a relative path that stays inside the repository"),
                ),
            }
        }
        let auth = git_auth(context, &child(&path, "auth"), repository.auth);
        let write_back = write_back(
            context,
            &child(&path, "writeBack"),
            repository.write_back,
            &branch,
        );
        result.push(RepositoryConfig {
            name: repository.name,
            url: repository.url,
            branch,
            paths,
            auth,
            write_back,
            ca_file: repository.ca_file.map(PathBuf::from),
        });
    }
    result
}

/// `entry` as a relative path without `..` escaping the root (`a/../b` is fine, `../b` is not).
fn contained_path(entry: &str) -> Option<PathBuf> {
    let path = Path::new(entry);
    let mut depth: usize = 0;
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => {
                depth += 1;
                normalized.push(part);
            }
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth.checked_sub(1)?;
                normalized.pop();
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    if entry.is_empty() {
        return None;
    }
    Some(if normalized.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        normalized
    })
}

fn check_git_url(context: &mut Context<'_, '_>, path: &str, url: &str) {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("file" | "https" | "http" | "ssh") => {
            let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
            let authority = rest.split('/').next().unwrap_or_default();
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && userinfo.contains(':')
            {
                context.error(
                        path,
                        format!(
                            "credentials in the URL ({}) are not allowed: use auth.tokenEnv or auth.passwordEnv",
                            crate::secret::redact_url(url)
                        ),
                    );
            }
            if rest.is_empty() {
                context.error(path, format!("{url:?} names no repository"));
            }
        }
        Some(other) => context.error(
            path,
            format!("unsupported URL scheme {other:?}: use file://, https://, http:// or ssh://"),
        ),
        None => {
            // scp-like `user@host:path`.
            let scp = url.split_once(':').is_some_and(|(host, rest)| {
                !host.is_empty() && !rest.is_empty() && !host.contains('/')
            });
            if !scp {
                context.error(
                    path,
                    format!("{url:?} is not a git URL: use file://, https://, http://, ssh:// or user@host:path"),
                );
            }
        }
    }
}

fn git_auth(context: &mut Context<'_, '_>, path: &str, raw: Option<RawGitAuth>) -> GitAuth {
    let Some(auth) = raw else {
        return GitAuth::None;
    };
    let forms = [
        auth.token_env.is_some(),
        auth.ssh_key_file.is_some() || auth.known_hosts_file.is_some(),
        auth.username.is_some() || auth.password_env.is_some() || auth.password_file.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() > 1 {
        context.error(
            path,
            "choose one of: tokenEnv; sshKeyFile (+ knownHostsFile); username with passwordEnv or passwordFile",
        );
        return GitAuth::None;
    }
    if let Some(env) = auth.token_env {
        context.secret_env(&child(path, "tokenEnv"), &env);
        return GitAuth::Token { env };
    }
    if auth.ssh_key_file.is_some() || auth.known_hosts_file.is_some() {
        let Some(key_file) = auth.ssh_key_file else {
            context.error(
                &child(path, "sshKeyFile"),
                "missing: knownHostsFile needs sshKeyFile",
            );
            return GitAuth::None;
        };
        return GitAuth::SshKey {
            key_file: context.file_path(&key_file),
            known_hosts_file: auth.known_hosts_file.map(|file| context.file_path(&file)),
        };
    }
    match basic(
        context,
        path,
        auth.username,
        auth.password_env,
        auth.password_file,
    ) {
        Some((username, password)) => GitAuth::Basic { username, password },
        None => GitAuth::None,
    }
}

fn write_back(
    context: &mut Context<'_, '_>,
    path: &str,
    raw: Option<RawWriteBack>,
    repository_branch: &str,
) -> WriteBack {
    let raw = raw.unwrap_or(RawWriteBack {
        mode: None,
        branch: None,
        group: None,
        author: None,
        message: None,
        forge: None,
        signing: None,
        merge: None,
    });
    let mode = match raw.mode {
        Some(RawWriteBackMode::PullRequest) => WriteBackMode::PullRequest,
        Some(RawWriteBackMode::Push) | None => WriteBackMode::Push,
    };
    let branch = raw.branch.unwrap_or_else(|| match mode {
        WriteBackMode::Push => repository_branch.to_string(),
        WriteBackMode::PullRequest => DEFAULT_PULL_REQUEST_BRANCH.to_string(),
    });
    let branch_path = child(path, "branch");
    match mode {
        WriteBackMode::Push => {
            if branch.contains('{') {
                context.error(
                    &branch_path,
                    "a push branch is a branch name, not a template",
                );
            }
        }
        WriteBackMode::PullRequest => {
            check_template(context, &branch_path, &branch, BRANCH_PLACEHOLDERS);
            if branch == repository_branch {
                context.error(
                    &branch_path,
                    format!("the pull-request head branch must differ from the repository branch {repository_branch:?}"),
                );
            }
        }
    }
    let message = raw.message.unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
    check_template(
        context,
        &child(path, "message"),
        &message,
        MESSAGE_PLACEHOLDERS,
    );
    let author = match raw.author {
        Some(author) => {
            if !author.email.contains('@') {
                context.error(
                    &child(path, "author.email"),
                    format!("{:?} is not an email address", author.email),
                );
            }
            Author {
                name: author.name,
                email: author.email,
            }
        }
        None => Author {
            name: DEFAULT_AUTHOR_NAME.to_string(),
            email: DEFAULT_AUTHOR_EMAIL.to_string(),
        },
    };
    let forge = raw
        .forge
        .map(|forge| forge_config(context, &child(path, "forge"), forge));
    if mode == WriteBackMode::PullRequest && forge.is_none() {
        context.error(
            &child(path, "forge"),
            "missing: mode pull-request needs a forge",
        );
    }
    let merge = raw.merge.and_then(|merge| {
        let merge_path = child(path, "merge");
        if mode != WriteBackMode::PullRequest {
            context.error(&merge_path, "merge applies to mode pull-request only");
            return None;
        }
        let windows = merge
            .windows
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(index, window)| {
                super::policies::schedule_window(
                    context,
                    &format!("{merge_path}.windows[{index}]"),
                    window,
                )
            })
            .collect();
        Some(super::MergeSettings {
            require_approval: merge.require_approval.unwrap_or(true),
            require_checks: merge.require_checks.unwrap_or(true),
            method: match merge.method {
                None | Some(super::raw::RawMergeMethod::Merge) => crate::forge::MergeMethod::Merge,
                Some(super::raw::RawMergeMethod::Squash) => crate::forge::MergeMethod::Squash,
                Some(super::raw::RawMergeMethod::Rebase) => crate::forge::MergeMethod::Rebase,
            },
            windows,
        })
    });
    WriteBack {
        mode,
        branch,
        group: match raw.group {
            None | Some(RawGroup::Repository) => Grouping::Repository,
            Some(RawGroup::Policy) => Grouping::Policy,
            Some(RawGroup::Image) => Grouping::Image,
        },
        author,
        message,
        forge,
        signing: match raw.signing {
            None => crate::git::Signing::None,
            Some(signing) => signing_config(context, &child(path, "signing"), signing),
        },
        merge,
    }
}

/// `writeBack.signing`: exactly one of an SSH key or a GPG key id.
fn signing_config(
    context: &mut Context<'_, '_>,
    path: &str,
    raw: super::raw::RawSigning,
) -> crate::git::Signing {
    match (raw.ssh_key_file, raw.gpg_key_id) {
        (Some(key_file), None) => {
            if raw.gnupg_home.is_some() {
                context.error(path, "gnupgHome belongs to gpgKeyId, not to sshKeyFile");
            }
            crate::git::Signing::Ssh {
                key_file: PathBuf::from(key_file),
            }
        }
        (None, Some(key_id)) => crate::git::Signing::Gpg {
            key_id,
            gnupg_home: raw.gnupg_home.map(PathBuf::from),
        },
        (Some(_), Some(_)) => {
            context.error(path, "choose one: sshKeyFile or gpgKeyId");
            crate::git::Signing::None
        }
        (None, None) => {
            context.error(path, "missing: sshKeyFile or gpgKeyId");
            crate::git::Signing::None
        }
    }
}

fn forge_config(context: &mut Context<'_, '_>, path: &str, raw: RawForge) -> ForgeConfig {
    let kind = match raw.kind {
        RawForgeKind::Github => ForgeKind::GitHub,
        RawForgeKind::Gitlab => ForgeKind::GitLab,
        RawForgeKind::Gitea => ForgeKind::Gitea,
        RawForgeKind::Forgejo => ForgeKind::Forgejo,
    };
    let api = match (raw.api, kind) {
        (Some(api), _) => {
            if !(api.starts_with("https://") || api.starts_with("http://")) {
                context.error(
                    &child(path, "api"),
                    format!("{api:?} is not an http(s) URL"),
                );
            }
            api.trim_end_matches('/').to_string()
        }
        (None, ForgeKind::GitHub) => "https://api.github.com".to_string(),
        (None, ForgeKind::GitLab) => "https://gitlab.com/api/v4".to_string(),
        (None, ForgeKind::Gitea | ForgeKind::Forgejo) => {
            context.error(
                &child(path, "api"),
                "missing: gitea/forgejo needs the API URL, e.g. https://git.example.com/api/v1",
            );
            String::new()
        }
    };
    let segments: Vec<&str> = raw.repo.split('/').collect();
    if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
        context.error(
            &child(path, "repo"),
            format!("{:?} is not owner/name", raw.repo),
        );
    }
    context.secret_env(&child(path, "tokenEnv"), &raw.token_env);
    ForgeConfig {
        kind,
        api,
        repository: raw.repo,
        token_env: raw.token_env,
        labels: raw.labels.unwrap_or_default(),
        reviewers: raw.reviewers.unwrap_or_default(),
    }
}

/// `{name}` placeholders must be known; braces must balance.
fn check_template(context: &mut Context<'_, '_>, path: &str, template: &str, known: &[&str]) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            context.error(path, format!("unclosed `{{` in template {template:?}"));
            return;
        };
        let name = &rest[open + 1..open + close];
        if !known.contains(&name) {
            let names: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
            context.error(
                path,
                format!(
                    "unknown placeholder {{{name}}} in template; known: {}",
                    names.join(", ")
                ),
            );
        }
        rest = &rest[open + close + 1..];
    }
}

fn daemon(context: &mut Context<'_, '_>, raw: Option<RawDaemon>, base: &Path) -> DaemonConfig {
    let mut daemon = DaemonConfig {
        state_dir: base.join(super::DEFAULT_STATE_DIR),
        ..DaemonConfig::default()
    };
    let Some(raw) = raw else {
        return daemon;
    };
    if let Some(listen) = raw.listen {
        match listen.parse::<SocketAddr>() {
            Ok(address) => daemon.listen = address,
            Err(_) => context.error(
                "daemon.listen",
                format!("{listen:?} is not address:port, e.g. 127.0.0.1:8080"),
            ),
        }
    }
    if let Some(dir) = raw.state_dir {
        daemon.state_dir = base.join(dir);
    }
    let positive = |context: &mut Context<'_, '_>, path: &str, text: Option<String>| {
        let text = text?;
        let duration = context.duration(path, &text)?;
        if duration.is_zero() {
            context.error(path, "must be longer than zero");
            return None;
        }
        Some(duration)
    };
    if let Some(duration) = positive(context, "daemon.interval", raw.interval) {
        daemon.interval = duration;
    }
    if let Some(duration) = positive(
        context,
        "daemon.repositoryInterval",
        raw.repository_interval,
    ) {
        daemon.repository_interval = duration;
    }
    if let Some(duration) = positive(context, "daemon.shutdownGrace", raw.shutdown_grace) {
        daemon.shutdown_grace = duration;
    }
    if let Some(election) = raw.leader_election {
        let duration =
            |context: &mut Context<'_, '_>, field: &str, text: Option<String>, default| {
                positive(context, &format!("daemon.leaderElection.{field}"), text)
                    .unwrap_or(default)
            };
        let lease_duration = duration(
            context,
            "leaseDuration",
            election.lease_duration,
            super::DEFAULT_LEASE_DURATION,
        );
        let renew_deadline = duration(
            context,
            "renewDeadline",
            election.renew_deadline,
            super::DEFAULT_RENEW_DEADLINE,
        );
        let retry_period = duration(
            context,
            "retryPeriod",
            election.retry_period,
            super::DEFAULT_RETRY_PERIOD,
        );
        if renew_deadline >= lease_duration {
            context.error(
                "daemon.leaderElection.renewDeadline",
                "must be shorter than leaseDuration (a leader steps down before its Lease can be taken)",
            );
        }
        if retry_period >= renew_deadline {
            context.error(
                "daemon.leaderElection.retryPeriod",
                "must be shorter than renewDeadline",
            );
        }
        daemon.leader_election = Some(super::LeaderElection {
            name: election
                .name
                .unwrap_or_else(|| super::DEFAULT_LEASE_NAME.to_string()),
            namespace: election.namespace,
            identity: election.identity,
            lease_duration,
            renew_deadline,
            retry_period,
        });
    }
    if let Some(webhooks) = raw.webhooks {
        daemon.webhooks = super::Webhooks {
            distribution: webhook(context, "distribution", webhooks.distribution, TOKEN),
            github: webhook(context, "github", webhooks.github, SECRET),
            harbor: webhook(context, "harbor", webhooks.harbor, TOKEN),
            dockerhub: webhook(context, "dockerhub", webhooks.dockerhub, TOKEN),
            quay: webhook(context, "quay", webhooks.quay, TOKEN),
            acr: webhook(context, "acr", webhooks.acr, TOKEN),
            generic: webhook(context, "generic", webhooks.generic, TOKEN | SECRET),
        };
    }
    daemon
}

/// `notify`: exactly one of `url` / `urlEnv` per entry, a known format and known event kinds.
fn notify(
    context: &mut Context<'_, '_>,
    raw: Vec<super::raw::RawNotify>,
) -> Vec<super::NotifyConfig> {
    let mut targets = Vec::new();
    for (index, entry) in raw.into_iter().enumerate() {
        let path = format!("notify[{index}]");
        let errors_before = context.report.diagnostics.len();
        let url = match (entry.url, entry.url_env) {
            (Some(url), None) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    context.error(&child(&path, "url"), "must be an http(s) URL");
                }
                Some(super::NotifyUrl::Literal(crate::secret::Secret::new(url)))
            }
            (None, Some(name)) => {
                context.secret_env(&child(&path, "urlEnv"), &name);
                Some(super::NotifyUrl::Env(name))
            }
            _ => {
                context.error(&path, "give exactly one of url or urlEnv");
                None
            }
        };
        let format = match entry.format.as_deref().unwrap_or("slack").parse() {
            Ok(format) => Some(format),
            Err(message) => {
                context.error(&child(&path, "format"), message);
                None
            }
        };
        let mut events = Vec::new();
        for (event_index, event) in entry.events.unwrap_or_default().iter().enumerate() {
            match event.parse() {
                Ok(kind) => events.push(kind),
                Err(message) => context.error(&format!("{path}.events[{event_index}]"), message),
            }
        }
        if context.report.diagnostics.len() == errors_before
            && let (Some(url), Some(format)) = (url, format)
        {
            targets.push(super::NotifyConfig {
                url,
                format,
                events,
            });
        }
    }
    targets
}

/// Which credentials a webhook endpoint takes (bit set).
const TOKEN: u8 = 1;
const SECRET: u8 = 2;

/// One `daemon.webhooks.NAME`: only the credential kinds the endpoint takes, at least one, each an
/// environment variable that is set.
fn webhook(
    context: &mut Context<'_, '_>,
    name: &str,
    raw: Option<super::raw::RawWebhookAuth>,
    takes: u8,
) -> Option<super::WebhookAuth> {
    let raw = raw?;
    let path = format!("daemon.webhooks.{name}");
    let mut usable = true;
    for (field, value, kind) in [
        ("tokenEnv", &raw.token_env, TOKEN),
        ("secretEnv", &raw.secret_env, SECRET),
    ] {
        let Some(value) = value else { continue };
        if takes & kind == 0 {
            let wanted = if takes & TOKEN != 0 {
                "tokenEnv"
            } else {
                "secretEnv"
            };
            context.error(
                &format!("{path}.{field}"),
                format!("the {name} endpoint does not take {field}; it takes {wanted}"),
            );
            usable = false;
        } else {
            context.secret_env(&format!("{path}.{field}"), value);
        }
    }
    if raw.token_env.is_none() && raw.secret_env.is_none() {
        context.error(
            &path,
            "names no credential: an endpoint without one would be open (leave it out to turn it off)",
        );
        usable = false;
    }
    usable.then_some(super::WebhookAuth {
        token_env: raw.token_env,
        secret_env: raw.secret_env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_are_normalized_like_references() {
        assert_eq!(normalized_host("ghcr.io").as_deref(), Some("ghcr.io"));
        assert_eq!(
            normalized_host("127.0.0.1:5000").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(
            normalized_host("localhost:5000").as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(normalized_host("docker.io").as_deref(), Some("docker.io"));
        assert_eq!(
            normalized_host("index.docker.io").as_deref(),
            Some("docker.io")
        );
        assert_eq!(normalized_host("https://ghcr.io"), None);
        assert_eq!(normalized_host("ghcr.io/acme"), None);
        assert_eq!(normalized_host("myregistry"), None);
    }

    #[test]
    fn contained_paths_stay_inside() {
        assert_eq!(
            contained_path("clusters/prod"),
            Some(PathBuf::from("clusters/prod"))
        );
        assert_eq!(contained_path("a/../b"), Some(PathBuf::from("b")));
        assert_eq!(contained_path("."), Some(PathBuf::from(".")));
        assert_eq!(contained_path("../x"), None);
        assert_eq!(contained_path("a/../../x"), None);
        assert_eq!(contained_path("/etc"), None);
        assert_eq!(contained_path(""), None);
    }
}
