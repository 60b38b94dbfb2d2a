//! From a validated repository config to what the adapters take: git `RemoteSettings` and forge
//! `ForgeSettings`. Secrets are read here, through [`Environment`], at the start of each cycle.

use crate::config::{self, GitAuth as ConfigAuth, RepositoryConfig};
use crate::environment::Environment;
use crate::forge::{ForgeKind, ForgeSettings};
use crate::git::{GitAuth, RemoteSettings};
use crate::registry::settings::PasswordSource;
use crate::secret::Secret;

use super::ReconcileError;

/// Commits fetched from network remotes (shallow): exactly the history rollback detection reads
/// (`git::DEFAULT_HISTORY_LIMIT`), so a large repository's first clone stays small. `file://` remotes are
/// always fetched whole (libgit2's local transport cannot fetch shallow).
pub const HISTORY_DEPTH: u32 = crate::git::DEFAULT_HISTORY_LIMIT as u32;

/// The remote of `repository` with its credentials. The target branch is `writeBack.branch` in push
/// mode and the repository's `branch` (the pull-request base) otherwise.
pub fn remote_settings(
    repository: &RepositoryConfig,
    environment: &Environment,
) -> Result<RemoteSettings, ReconcileError> {
    let branch = match repository.write_back.mode {
        config::WriteBackMode::Push => repository.write_back.branch.clone(),
        config::WriteBackMode::PullRequest => repository.branch.clone(),
    };
    let auth = match &repository.auth {
        ConfigAuth::None => GitAuth::None,
        ConfigAuth::Token { env } => GitAuth::Token {
            token: secret_env(environment, env)?,
        },
        ConfigAuth::SshKey {
            key_file,
            known_hosts_file,
        } => GitAuth::Ssh {
            key_file: key_file.clone(),
            known_hosts_file: known_hosts_file.clone(),
            accept_unknown_hosts: false,
        },
        ConfigAuth::Basic { username, password } => GitAuth::Basic {
            username: username.clone(),
            password: match password {
                PasswordSource::Env(name) => secret_env(environment, name)?,
                PasswordSource::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|source| {
                        ReconcileError::ReadSecret {
                            path: path.clone(),
                            source,
                        }
                    })?;
                    Secret::new(text.trim_end_matches(['\r', '\n']))
                }
            },
        },
    };
    let mut settings = RemoteSettings::new(repository.url.clone(), branch)
        .with_auth(auth)
        .with_depth(HISTORY_DEPTH);
    if let Some(ca_file) = &repository.ca_file {
        settings = settings.with_ca_file(ca_file);
    }
    Ok(settings)
}

/// The forge of a pull-request repository.
pub fn forge_settings(
    repository: &RepositoryConfig,
    environment: &Environment,
) -> Result<ForgeSettings, ReconcileError> {
    let forge = repository
        .write_back
        .forge
        .as_ref()
        .ok_or(ReconcileError::NoForge)?;
    let kind = match forge.kind {
        config::ForgeKind::GitHub => ForgeKind::GitHub,
        config::ForgeKind::GitLab => ForgeKind::GitLab,
        config::ForgeKind::Gitea => ForgeKind::Gitea,
        config::ForgeKind::Forgejo => ForgeKind::Forgejo,
    };
    let token = secret_env(environment, &forge.token_env)?;
    let mut settings = ForgeSettings::new(kind, forge.api.clone(), forge.repository.clone(), token);
    settings.labels = forge.labels.clone();
    settings.reviewers = forge.reviewers.clone();
    Ok(settings)
}

fn secret_env(environment: &Environment, name: &str) -> Result<Secret, ReconcileError> {
    environment
        .secret(name)
        .ok_or_else(|| ReconcileError::MissingSecret {
            variable: name.to_string(),
        })
}
