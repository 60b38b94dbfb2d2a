//! What the git adapter needs to know about one remote, one committer and one signer. Validated values:
//! the config layer resolves env vars and files before building these.

use std::fmt;
use std::path::PathBuf;

use crate::secret::{Secret, redact_url};

/// User name sent with a token when none is configured: GitHub, Gitea and Forgejo accept any user name
/// with a token; GitHub documents this one, GitLab accepts it too.
pub const DEFAULT_TOKEN_USERNAME: &str = "x-access-token";

/// SSH user when the URL names none (`ssh://host/…`): every forge uses `git`.
pub const DEFAULT_SSH_USERNAME: &str = "git";

/// One remote repository and the branch tagwatch works on.
#[derive(Clone)]
pub struct RemoteSettings {
    /// `file://`, `https://`, `http://` or `ssh://` URL. Userinfo is allowed but credentials belong in
    /// [`GitAuth`]; the URL is only ever shown redacted.
    pub url: String,
    /// The protected target branch (`writeBack.branch` in push mode, the PR base in pull-request mode).
    pub branch: String,
    pub auth: GitAuth,
    /// Extra CA certificate(s) (PEM) trusted for this remote's HTTPS server, on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Fetch depth for network remotes; `None` fetches full history. The local (`file://`) transport of
    /// libgit2 cannot fetch shallow, so it always fetches everything.
    pub depth: Option<u32>,
}

impl RemoteSettings {
    /// A remote without credentials, CA or depth.
    pub fn new(url: impl Into<String>, branch: impl Into<String>) -> Self {
        RemoteSettings {
            url: url.into(),
            branch: branch.into(),
            auth: GitAuth::None,
            ca_file: None,
            depth: None,
        }
    }

    pub fn with_auth(mut self, auth: GitAuth) -> Self {
        self.auth = auth;
        self
    }

    pub fn with_ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }

    pub fn with_depth(mut self, depth: u32) -> Self {
        self.depth = Some(depth);
        self
    }

    /// The URL with userinfo masked, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSettings")
            .field("url", &self.redacted_url())
            .field("branch", &self.branch)
            .field("auth", &self.auth)
            .field("ca_file", &self.ca_file)
            .field("depth", &self.depth)
            .finish()
    }
}

/// How to authenticate to a remote.
#[derive(Clone)]
pub enum GitAuth {
    None,
    /// HTTPS token, sent as the Basic password of user [`DEFAULT_TOKEN_USERNAME`] (or the URL's user).
    Token {
        token: Secret,
    },
    /// HTTPS Basic auth.
    Basic {
        username: String,
        password: Secret,
    },
    /// SSH public key. The server's host key must be listed in `known_hosts_file` (OpenSSH format);
    /// an unknown host is rejected unless `accept_unknown_hosts`. A *changed* key is always rejected.
    Ssh {
        key_file: PathBuf,
        known_hosts_file: Option<PathBuf>,
        accept_unknown_hosts: bool,
    },
}

impl GitAuth {
    /// The secret values this auth holds, so error messages can be scrubbed of them.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match self {
            GitAuth::Token { token } => vec![token.expose()],
            GitAuth::Basic { password, .. } => vec![password.expose()],
            GitAuth::None | GitAuth::Ssh { .. } => Vec::new(),
        }
    }
}

// Written by hand (not derived) so a future field holding a plain string cannot leak a secret.
impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitAuth::None => f.write_str("None"),
            GitAuth::Token { .. } => f.write_str("Token { token: [redacted] }"),
            GitAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            GitAuth::Ssh {
                key_file,
                known_hosts_file,
                accept_unknown_hosts,
            } => f
                .debug_struct("Ssh")
                .field("key_file", key_file)
                .field("known_hosts_file", known_hosts_file)
                .field("accept_unknown_hosts", accept_unknown_hosts)
                .finish(),
        }
    }
}

/// Author and committer of tagwatch's commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitIdentity {
    pub name: String,
    pub email: String,
}

impl CommitIdentity {
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        CommitIdentity {
            name: name.into(),
            email: email.into(),
        }
    }
}

/// How commits are signed. The external programs (`ssh-keygen`, `gpg`) are the ones `git` itself uses,
/// so `git verify-commit` accepts the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    None,
    /// `ssh-keygen -Y sign -n git -f KEY_FILE` (private key file; its `.pub` is what verifiers list).
    Ssh {
        key_file: PathBuf,
    },
    /// `gpg --detach-sign --armor -u KEY_ID`; `gnupg_home` sets `GNUPGHOME` for that one process.
    Gpg {
        key_id: String,
        gnupg_home: Option<PathBuf>,
    },
}
