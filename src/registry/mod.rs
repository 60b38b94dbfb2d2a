//! Registry adapter: talks the OCI distribution API to list tags, resolve manifest digests and read
//! image config `created` times.
//!
//! Owns: authentication (anonymous, basic, Bearer challenge), TLS, retries and backoff, pagination and its
//! quirks, per-registry concurrency limits, the digest → config cache.
//! Must not: rank or filter tags beyond the OCI tag grammar (that is `policy`), read the process
//! environment directly, or put a secret in a log, error or `Debug` output.
//!
//! Transport is `reqwest`; `oci-client` provides the manifest types and media types. Why not
//! `oci-client`'s requests as well: see `docs/registry.md`.

mod auth;
mod endpoint;
mod error;
pub mod pagination;
pub mod settings;

pub use error::{ErrorClass, RegistryError, classify};
pub use settings::{PasswordSource, RegistryAuthSettings, RegistrySettings};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use oci_client::manifest::OciManifest;
use reqwest::Method;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::environment::Environment;
use crate::reference::{ImageReference, is_valid_digest, is_valid_tag};
use crate::source::TagSource;
use endpoint::Endpoint;

/// Every manifest type a digest or config lookup accepts: without the index types a registry would
/// answer with (and hash) a single platform's manifest, and the digest would not be the tag's.
/// Kept in step with the oci-client constants by the `manifest_accept_names_every_type` test.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const TAGS_ACCEPT: &str = "application/json";
const CONFIG_ACCEPT: &str = "application/vnd.oci.image.config.v1+json, application/vnd.docker.container.image.v1+json, application/json";

/// Client for every registry the config names (and anonymous HTTPS for the rest). Cheap to clone: clones
/// share connections, tokens, concurrency limits and the config cache.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    environment: Environment,
    /// Config digest → `created`. Digests are immutable, so entries never expire; the cell makes
    /// concurrent lookups of one digest share a single fetch.
    created: Mutex<HashMap<String, CreatedCell>>,
}

/// One config digest's `created`, fetched at most once.
type CreatedCell = Arc<OnceCell<Option<DateTime<Utc>>>>;

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<String> = self
            .inner
            .endpoints
            .lock()
            .expect("endpoints lock")
            .keys()
            .cloned()
            .collect();
        f.debug_struct("RegistryClient")
            .field("registries", &hosts)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ConfigCreated {
    created: Option<String>,
}

impl RegistryClient {
    /// Builds a client; reads credentials (env vars, files, docker config) through `environment`.
    pub fn new(
        settings: Vec<RegistrySettings>,
        environment: &Environment,
    ) -> Result<Self, RegistryError> {
        let mut endpoints = HashMap::new();
        for settings in &settings {
            let endpoint = Endpoint::new(settings, environment)?;
            endpoints.insert(endpoint.host.clone(), Arc::new(endpoint));
        }
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                endpoints: Mutex::new(endpoints),
                environment: environment.clone(),
                created: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn endpoint(&self, image: &ImageReference) -> Result<Arc<Endpoint>, RegistryError> {
        let host = endpoint::normalize_host(&image.registry);
        let mut endpoints = self.inner.endpoints.lock().expect("endpoints lock");
        if let Some(endpoint) = endpoints.get(&host) {
            return Ok(endpoint.clone());
        }
        let endpoint = Arc::new(Endpoint::new(
            &RegistrySettings::anonymous(host.clone()),
            &self.inner.environment,
        )?);
        endpoints.insert(host, endpoint.clone());
        Ok(endpoint)
    }

    async fn list_tags_in(
        &self,
        endpoint: &Endpoint,
        image: &ImageReference,
    ) -> Result<Vec<String>, RegistryError> {
        let repository = &image.repository;
        let mut url = endpoint.url(&format!("/v2/{repository}/tags/list"));
        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        let mut visited = HashSet::from([url.to_string()]);
        let mut pages = 0usize;
        loop {
            pages += 1;
            let answer = endpoint
                .send(Method::GET, url.clone(), TAGS_ACCEPT, repository)
                .await?;
            let page: TagsPage = serde_json::from_slice(&answer.body).map_err(|error| {
                RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: format!("not a tag list: {error}"),
                }
            })?;
            let page_tags = page.tags.unwrap_or_default();
            let mut new_tags = 0usize;
            for tag in &page_tags {
                if !is_valid_tag(tag) {
                    // Escaped: the text came from the registry and must not reach a log or YAML raw.
                    tracing::warn!(tag = %tag.escape_debug(), "dropping a tag outside the OCI tag grammar");
                    continue;
                }
                if seen.insert(tag.clone()) {
                    tags.push(tag.clone());
                    new_tags += 1;
                }
            }
            let Some(next) = pagination::next_page(&answer.headers, &endpoint.base) else {
                break;
            };
            if !visited.insert(next.to_string()) {
                tracing::warn!(
                    page = pages,
                    "the registry's `Link` points at a page already read; stopping"
                );
                break;
            }
            if new_tags == 0 && !page_tags.is_empty() {
                tracing::warn!(
                    page = pages,
                    "a page repeated only known tags (the registry may ignore `last`); stopping"
                );
                break;
            }
            if pages >= pagination::MAX_PAGES {
                tracing::warn!(
                    pages,
                    tags = tags.len(),
                    "stopping after {} pages; the tag list may be incomplete",
                    pagination::MAX_PAGES
                );
                break;
            }
            url = next;
        }
        tracing::debug!(tags = tags.len(), pages, "listed tags");
        Ok(tags)
    }

    async fn digest_in(
        &self,
        endpoint: &Endpoint,
        image: &ImageReference,
        tag: &str,
    ) -> Result<String, RegistryError> {
        let url = endpoint.url(&format!("/v2/{}/manifests/{tag}", image.repository));
        let answer = endpoint
            .send(
                Method::HEAD,
                url.clone(),
                MANIFEST_ACCEPT,
                &image.repository,
            )
            .await?;
        if let Some(digest) = answer
            .headers
            .get("docker-content-digest")
            .and_then(|value| value.to_str().ok())
            .filter(|digest| is_valid_digest(digest))
        {
            return Ok(digest.to_string());
        }
        // Some registries omit the header on HEAD: the digest is the hash of the manifest bytes as served.
        let answer = endpoint
            .send(Method::GET, url, MANIFEST_ACCEPT, &image.repository)
            .await?;
        Ok(format!("sha256:{:x}", Sha256::digest(&answer.body)))
    }

    async fn created_in(
        &self,
        endpoint: &Endpoint,
        image: &ImageReference,
        tag: &str,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        let repository = &image.repository;
        let mut url = endpoint.url(&format!("/v2/{repository}/manifests/{tag}"));
        let mut manifest = self
            .fetch_manifest(endpoint, url.clone(), repository)
            .await?;
        if let OciManifest::ImageIndex(index) = &manifest {
            // The first platform manifest; attestation entries (`unknown/unknown`) carry no image config.
            let entry = index
                .manifests
                .iter()
                .find(|entry| {
                    entry
                        .platform
                        .as_ref()
                        .is_none_or(|platform| platform.os.to_string() != "unknown")
                })
                .ok_or_else(|| RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: "the image index lists no platform manifest".to_string(),
                })?;
            if !is_valid_digest(&entry.digest) {
                return Err(RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: "an image index entry has an invalid digest".to_string(),
                });
            }
            url = endpoint.url(&format!("/v2/{repository}/manifests/{}", entry.digest));
            manifest = self
                .fetch_manifest(endpoint, url.clone(), repository)
                .await?;
        }
        let OciManifest::Image(image_manifest) = manifest else {
            return Err(RegistryError::InvalidResponse {
                url: url.to_string(),
                reason: "an image index points at another index".to_string(),
            });
        };
        let config_digest = image_manifest.config.digest;
        if !is_valid_digest(&config_digest) {
            return Err(RegistryError::InvalidResponse {
                url: url.to_string(),
                reason: "the manifest's config digest is invalid".to_string(),
            });
        }
        let cell = self
            .inner
            .created
            .lock()
            .expect("created cache lock")
            .entry(config_digest.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let url = endpoint.url(&format!("/v2/{repository}/blobs/{config_digest}"));
            let answer = endpoint
                .send(Method::GET, url.clone(), CONFIG_ACCEPT, repository)
                .await?;
            let config: ConfigCreated =
                serde_json::from_slice(&answer.body).map_err(|error| {
                    RegistryError::InvalidResponse {
                        url: url.to_string(),
                        reason: format!("not an image config: {error}"),
                    }
                })?;
            let created = config.created.and_then(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|time| time.with_timezone(&Utc))
                    .inspect_err(|_| {
                        tracing::warn!(created = %text.escape_debug(), "the image config's `created` is not RFC 3339");
                    })
                    .ok()
            });
            Ok(created)
        })
        .await
        .copied()
    }

    async fn fetch_manifest(
        &self,
        endpoint: &Endpoint,
        url: reqwest::Url,
        repository: &str,
    ) -> Result<OciManifest, RegistryError> {
        let answer = endpoint
            .send(Method::GET, url.clone(), MANIFEST_ACCEPT, repository)
            .await?;
        serde_json::from_slice(&answer.body).map_err(|error| RegistryError::InvalidResponse {
            url: url.to_string(),
            reason: format!("not an image manifest or index: {error}"),
        })
    }
}

fn image_span(image: &ImageReference) -> tracing::Span {
    tracing::info_span!("registry", image = %image.name())
}

/// A tag that came from the caller (policy, config) still goes into a URL: refuse anything outside the
/// grammar rather than let it reshape the path.
fn checked_tag<'a>(image: &ImageReference, tag: &'a str) -> Result<&'a str, RegistryError> {
    if is_valid_tag(tag) {
        Ok(tag)
    } else {
        Err(RegistryError::InvalidResponse {
            url: image.name(),
            reason: format!("refusing tag {:?}: it is outside the OCI tag grammar", tag),
        })
    }
}

impl TagSource for RegistryClient {
    type Error = RegistryError;

    async fn list_tags(&self, image: &ImageReference) -> Result<Vec<String>, RegistryError> {
        let endpoint = self.endpoint(image)?;
        self.list_tags_in(&endpoint, image)
            .instrument(image_span(image))
            .await
    }

    async fn manifest_digest(
        &self,
        image: &ImageReference,
        tag: &str,
    ) -> Result<String, RegistryError> {
        let endpoint = self.endpoint(image)?;
        let tag = checked_tag(image, tag)?;
        self.digest_in(&endpoint, image, tag)
            .instrument(image_span(image))
            .await
    }

    async fn created(
        &self,
        image: &ImageReference,
        tag: &str,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        let endpoint = self.endpoint(image)?;
        let tag = checked_tag(image, tag)?;
        self.created_in(&endpoint, image, tag)
            .instrument(image_span(image))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::manifest::{
        IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
        OCI_IMAGE_MEDIA_TYPE,
    };

    #[test]
    fn manifest_accept_names_every_type() {
        for media_type in [
            OCI_IMAGE_INDEX_MEDIA_TYPE,
            IMAGE_MANIFEST_LIST_MEDIA_TYPE,
            OCI_IMAGE_MEDIA_TYPE,
            IMAGE_MANIFEST_MEDIA_TYPE,
        ] {
            assert!(
                MANIFEST_ACCEPT
                    .split(", ")
                    .any(|accepted| accepted == media_type)
            );
        }
    }
}
