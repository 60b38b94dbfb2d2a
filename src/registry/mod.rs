//! Registry adapter: talks the OCI distribution API (on `oci-client` and `reqwest`) to list tags, resolve
//! manifest digests and read image config `created` times.
//!
//! Owns: authentication (anonymous, basic, Bearer challenge), TLS, retries and backoff, pagination and its
//! quirks, per-registry concurrency limits, the digest → config cache.
//! Must not: rank or filter tags (that is `policy`), or read the process environment directly.

pub mod settings;

pub use settings::{RegistryAuthSettings, RegistrySettings};

use chrono::{DateTime, Utc};

use crate::environment::Environment;
use crate::reference::ImageReference;
use crate::source::TagSource;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry client not built yet")]
    NotBuilt,
}

/// Client for every registry the config names (and anonymous HTTPS for the rest).
/// Placeholder with the final signature; the registry work replaces the body.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    _settings: Vec<RegistrySettings>,
}

impl RegistryClient {
    /// Builds a client; reads credentials (env vars, files, docker config) through `environment`.
    pub fn new(
        settings: Vec<RegistrySettings>,
        _environment: &Environment,
    ) -> Result<Self, RegistryError> {
        Ok(RegistryClient {
            _settings: settings,
        })
    }
}

impl TagSource for RegistryClient {
    type Error = RegistryError;

    async fn list_tags(&self, _image: &ImageReference) -> Result<Vec<String>, RegistryError> {
        Err(RegistryError::NotBuilt)
    }

    async fn manifest_digest(
        &self,
        _image: &ImageReference,
        _tag: &str,
    ) -> Result<String, RegistryError> {
        Err(RegistryError::NotBuilt)
    }

    async fn created(
        &self,
        _image: &ImageReference,
        _tag: &str,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        Err(RegistryError::NotBuilt)
    }
}
