//! The git adapter's errors: each carries the redacted URL, knows whether retrying can help, and never
//! holds a credential (libgit2's messages are scrubbed before they are stored).

use std::path::PathBuf;

pub use crate::error::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },

    #[error("authentication to {url} failed: {detail}")]
    Authentication { url: String, detail: String },

    #[error("the SSH host key of {host} is not trusted: {reason}")]
    HostKey {
        url: String,
        host: String,
        reason: String,
    },

    #[error("the TLS certificate of {url} is not trusted: {detail}")]
    Certificate { url: String, detail: String },

    #[error("no repository at {url}: {detail}")]
    MissingRepository { url: String, detail: String },

    #[error("branch `{branch}` does not exist on {url}")]
    MissingBranch { url: String, branch: String },

    #[error("path `{path}` does not exist in {url} on branch `{branch}`")]
    MissingPath {
        url: String,
        branch: String,
        path: String,
    },

    #[error("path `{path}` is not inside the repository (absolute, or uses `..`)")]
    PathOutsideRepository { path: String },

    #[error("{url} refused the push of `{branch}`: {reason}")]
    PushRefused {
        url: String,
        branch: String,
        reason: String,
    },

    #[error("refusing to force-push `{branch}` of {url}: it is the protected target branch")]
    ProtectedBranch { url: String, branch: String },

    #[error("signing the commit with `{program}` failed: {detail}")]
    Signing { program: String, detail: String },

    #[error("cache directory {} is in use by another process (it holds the lock on the directory's `.lock` file)", path.display())]
    CacheBusy { path: PathBuf },

    /// A blob over the size cap, refused from its object header before its content was read.
    #[error("`{object}` is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The path when the caller named one, else the blob id.
        object: String,
        size: u64,
        limit: u64,
    },

    /// A write to a path that is not a regular file (mode 100644 / 100755): tagwatch never writes
    /// through a symlink or into a submodule, and never replaces a directory.
    #[error("`{path}` in {url} is {found}, not a regular file: tagwatch does not write to it")]
    NotRegularFile {
        url: String,
        path: String,
        /// `a symbolic link`, `a submodule` or `a directory`.
        found: &'static str,
    },

    #[error("cache directory {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("git {operation} on {url} failed: {detail}")]
    Operation {
        operation: &'static str,
        url: String,
        detail: String,
        transient: bool,
    },
}

impl GitError {
    pub fn class(&self) -> ErrorClass {
        match self {
            GitError::Unreachable { .. } | GitError::CacheBusy { .. } => ErrorClass::Transient,
            GitError::Operation { transient, .. } if *transient => ErrorClass::Transient,
            GitError::PushRefused { reason, .. } if server_trouble(reason) => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }

    /// The redacted URL of the remote concerned, when there is one.
    pub fn url(&self) -> Option<&str> {
        match self {
            GitError::Unreachable { url, .. }
            | GitError::Authentication { url, .. }
            | GitError::HostKey { url, .. }
            | GitError::Certificate { url, .. }
            | GitError::MissingRepository { url, .. }
            | GitError::MissingBranch { url, .. }
            | GitError::MissingPath { url, .. }
            | GitError::PushRefused { url, .. }
            | GitError::ProtectedBranch { url, .. }
            | GitError::NotRegularFile { url, .. }
            | GitError::Operation { url, .. } => Some(url),
            GitError::PathOutsideRepository { .. }
            | GitError::Signing { .. }
            | GitError::CacheBusy { .. }
            | GitError::TooLarge { .. }
            | GitError::Cache { .. } => None,
        }
    }
}

/// A refusal the server gave because of its own trouble (out of disk or quota, an unpack that
/// failed), not because of the push: it can succeed once the server recovers.
pub(crate) fn server_trouble(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    [
        "no space left on device",
        "disk quota exceeded",
        "unpacker error",
        "unpack failed",
        "unpacking the sent packfile failed",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// Removes every secret and the raw URL from a message that came from libgit2 or a child process.
pub(crate) fn scrub(message: &str, raw_url: &str, secrets: &[&str]) -> String {
    let mut text = message.to_string();
    if !raw_url.is_empty() {
        text = text.replace(raw_url, &crate::secret::redact_url(raw_url));
    }
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_secrets_and_userinfo() {
        let message = "failed for https://bot:hunter2@example.com/a.git: token hunter2 rejected";
        let scrubbed = scrub(
            message,
            "https://bot:hunter2@example.com/a.git",
            &["hunter2"],
        );
        assert_eq!(
            scrubbed,
            "failed for https://***@example.com/a.git: token [redacted] rejected"
        );
    }
}
