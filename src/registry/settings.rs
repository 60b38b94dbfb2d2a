//! How to reach one registry: validated settings built by `config` from `tagwatch.yaml` (docs/reference/configuration.md).

use std::path::PathBuf;
use std::time::Duration;

/// Requests in flight to one registry when the config sets no `maxConcurrency`: enough to hide latency,
/// few enough not to trip a public registry's abuse limits.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Per-request timeout when none is configured: generous for a slow registry, short enough to notice a
/// dead one within one poll interval.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySettings {
    /// `host[:port]` as written in image references (`docker.io` for Docker Hub).
    pub host: String,
    /// Plain HTTP; or, with `ca_file`, nothing changes (TLS verified against it).
    pub insecure: bool,
    /// Extra CA certificate (PEM) to trust for this registry.
    pub ca_file: Option<PathBuf>,
    pub auth: RegistryAuthSettings,
    pub max_concurrency: usize,
    pub request_timeout: Duration,
}

impl RegistrySettings {
    /// Anonymous HTTPS with defaults: what an unlisted registry gets.
    pub fn anonymous(host: impl Into<String>) -> Self {
        RegistrySettings {
            host: host.into(),
            insecure: false,
            ca_file: None,
            auth: RegistryAuthSettings::Anonymous,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Where a registry's credentials come from. Names of env vars and files only: secrets are read when the
/// client is built, never stored in config types.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryAuthSettings {
    Anonymous,
    /// HTTP basic (and the user/password exchanged for a Bearer token when challenged).
    Basic {
        username: String,
        password: PasswordSource,
    },
    /// A docker `config.json` (`auths`, `credsStore`, `credHelpers`).
    DockerConfig {
        path: PathBuf,
    },
    /// Run `docker-credential-NAME get`.
    CredentialHelper {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}
