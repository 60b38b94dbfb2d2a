//! Registry adapter: talks the OCI distribution API to list tags, resolve manifest digests and read
//! image config `created` times, and the facts a pull-request body shows about an image ([`ImageFacts`]).
//!
//! Owns: authentication (anonymous, basic, Bearer challenge), TLS, retries and backoff, pagination and its
//! quirks, per-registry concurrency limits, size limits on every answer and listing, the bounded
//! digest → config cache.
//! Must not: rank or filter tags beyond the OCI tag grammar (that is `policy`), read the process
//! environment directly, put a secret in a log, error or `Debug` output, or return part of a tag list
//! as if it were all of it.
//!
//! Transport is `reqwest`; `oci-client` provides the manifest types and media types. Why not
//! `oci-client`'s requests as well: see `docs/design/registry.md`.

mod auth;
mod cache;
mod endpoint;
mod error;
pub mod pagination;
pub mod settings;

pub use error::{ErrorClass, RegistryError, Truncation, classify};
pub use settings::{PasswordSource, RegistryAuthSettings, RegistrySettings};

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use oci_client::manifest::OciManifest;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::environment::Environment;
use crate::reference::{ImageReference, is_valid_digest, is_valid_tag};
use crate::source::{TagListing, TagSource};
use cache::ClockCache;
use endpoint::Endpoint;
pub use endpoint::Observer;
use pagination::Collector;

/// Every manifest type a digest or config lookup accepts: without the index types a registry would
/// answer with (and hash) a single platform's manifest, and the digest would not be the tag's.
/// Kept in step with the oci-client constants by the `manifest_accept_names_every_type` test.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const TAGS_ACCEPT: &str = "application/json";
const CONFIG_ACCEPT: &str = "application/vnd.oci.image.config.v1+json, application/vnd.docker.container.image.v1+json, application/json";

/// The largest manifest or index read: distribution refuses to store a manifest over 4 MiB
/// (`maxManifestBodySize`), so no registry it backs can serve a larger one.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The largest image config read. Configs are a few kilobytes (history and `rootfs` grow by a line per
/// layer); 8 MiB leaves room for huge label sets and still bounds what a registry can make us hold.
const MAX_CONFIG_BYTES: usize = 8 * 1024 * 1024;
/// Config digests whose `created` the client remembers. `order: newest` looks up at most 25 candidates
/// per policy and resolve (`policy::MAX_NEWEST_LOOKUPS`; `minAge` 10): 1,000 such policies need 25,000
/// entries, so 50,000 keeps a large daemon's working set with room to spare, at about 10 MB. Beyond
/// it an entry not looked up lately (clock) is dropped, and fetched again if it is ever needed.
pub const CREATED_CACHE_CAPACITY: usize = 50_000;
/// Manifest digests whose [`ImageFacts`] the client remembers. Facts are read only for the images of
/// open pull requests (two per change), so 10,000 covers thousands of pull requests; an entry is a few
/// hundred bytes.
pub const FACTS_CACHE_CAPACITY: usize = 10_000;
/// The OCI annotation (or label) naming the repository an image was built from.
pub const SOURCE_ANNOTATION: &str = "org.opencontainers.image.source";
/// The OCI annotation (or label) naming the commit an image was built from.
pub const REVISION_ANNOTATION: &str = "org.opencontainers.image.revision";
/// Longest annotation or label value kept in [`ImageFacts`]: a URL or a commit id, not an essay.
const MAX_FACT_BYTES: usize = 2048;

pub use crate::source::ImageFacts;

/// Client for every registry the config names (and anonymous HTTPS for the rest). Cheap to clone: clones
/// share connections, tokens, concurrency limits and the config cache.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    environment: Environment,
    /// Config digest → `created`. Digests are immutable, so entries never go stale; the cache is
    /// bounded ([`CREATED_CACHE_CAPACITY`]) and the cell makes concurrent lookups of one digest share a
    /// single fetch (an entry being fetched is never evicted).
    created: Mutex<ClockCache<OnceCell<Option<DateTime<Utc>>>>>,
    /// Manifest digest → [`ImageFacts`], bounded like `created` ([`FACTS_CACHE_CAPACITY`]).
    facts: Mutex<ClockCache<OnceCell<ImageFacts>>>,
    observer: Option<Observer>,
}

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

/// One page of a tag list. The tags borrow from the answer's body (a tag with a JSON escape, which
/// the grammar refuses anyway, is unescaped into its own string): the collector copies each kept tag
/// once.
#[derive(Deserialize)]
struct TagsPage<'a> {
    #[serde(default, borrow)]
    tags: Option<Vec<PageTag<'a>>>,
}

/// A tag as a page has it: `Cow<str>` inside a `Vec` would always be copied (serde borrows only a
/// field marked `borrow`, hence the newtype).
#[derive(Deserialize)]
struct PageTag<'a>(#[serde(borrow)] Cow<'a, str>);

impl AsRef<str> for PageTag<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<PageTag<'_>> for String {
    fn from(tag: PageTag<'_>) -> String {
        tag.0.into_owned()
    }
}

#[derive(Deserialize)]
struct ConfigCreated {
    created: Option<String>,
}

/// The parts of an image config [`ImageFacts`] reads.
#[derive(Deserialize)]
struct ConfigFacts {
    created: Option<String>,
    #[serde(default)]
    config: Option<ConfigLabels>,
}

#[derive(Deserialize)]
struct ConfigLabels {
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

impl RegistryClient {
    /// Builds a client; reads credentials (env vars, files, docker config) through `environment`.
    pub fn new(
        settings: Vec<RegistrySettings>,
        environment: &Environment,
    ) -> Result<Self, RegistryError> {
        Self::observed(settings, environment, None)
    }

    /// [`RegistryClient::new`], telling `observer` about every HTTP exchange (the daemon's metrics).
    pub fn observed(
        settings: Vec<RegistrySettings>,
        environment: &Environment,
        observer: Option<Observer>,
    ) -> Result<Self, RegistryError> {
        let mut endpoints = HashMap::new();
        for settings in &settings {
            let endpoint = Endpoint::new(settings, environment)?.observed(observer.clone());
            endpoints.insert(endpoint.host.clone(), Arc::new(endpoint));
        }
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                endpoints: Mutex::new(endpoints),
                environment: environment.clone(),
                created: Mutex::new(ClockCache::new(CREATED_CACHE_CAPACITY)),
                facts: Mutex::new(ClockCache::new(FACTS_CACHE_CAPACITY)),
                observer,
            }),
        })
    }

    fn endpoint(&self, image: &ImageReference) -> Result<Arc<Endpoint>, RegistryError> {
        let host = endpoint::normalize_host(&image.registry);
        let mut endpoints = self.inner.endpoints.lock().expect("endpoints lock");
        if let Some(endpoint) = endpoints.get(&host) {
            return Ok(endpoint.clone());
        }
        let endpoint = Arc::new(
            Endpoint::new(
                &RegistrySettings::anonymous(host.clone()),
                &self.inner.environment,
            )?
            .observed(self.inner.observer.clone()),
        );
        endpoints.insert(host, endpoint.clone());
        Ok(endpoint)
    }

    /// Every page of the image's tag list, or an error saying why the listing could not be finished.
    async fn listing_in(
        &self,
        endpoint: &Endpoint,
        image: &ImageReference,
    ) -> Result<TagListing, RegistryError> {
        let repository = &image.repository;
        let plain = endpoint.url(&format!("/v2/{repository}/tags/list"));
        let mut url = if endpoint.page_size_refused() {
            plain.clone()
        } else {
            endpoint.url(&format!(
                "/v2/{repository}/tags/list?n={}",
                pagination::PAGE_SIZE
            ))
        };
        let mut collector = Collector::new(pagination::LIMITS, &url);
        let incomplete = |collector: &Collector, truncation| RegistryError::IncompleteListing {
            url: plain.to_string(),
            truncation,
            pages: collector.pages(),
            tags: collector.tag_count(),
        };
        loop {
            let answer = match endpoint
                .send(
                    Method::GET,
                    url.clone(),
                    TAGS_ACCEPT,
                    repository,
                    collector.byte_budget(),
                )
                .await
            {
                Ok(answer) => answer,
                // distribution 3.1.0 answers 400 to an `n` above its `tags.maxtags`: ask without it.
                Err(RegistryError::Status {
                    status: StatusCode::BAD_REQUEST,
                    ..
                }) if collector.pages() == 0 && url != plain => {
                    tracing::info!(
                        "the registry refuses the page size `n`; listing without it from now on"
                    );
                    endpoint.refuse_page_size();
                    url = plain.clone();
                    collector = Collector::new(pagination::LIMITS, &url);
                    continue;
                }
                Err(RegistryError::TooLarge { url: too_large, .. })
                    if too_large == url.as_str() =>
                {
                    return Err(incomplete(
                        &collector,
                        Truncation::Bytes {
                            limit: pagination::MAX_LISTING_BYTES,
                        },
                    ));
                }
                Err(error) => return Err(error),
            };
            let page: TagsPage = serde_json::from_slice(&answer.body).map_err(|error| {
                RegistryError::InvalidResponse {
                    url: url.to_string(),
                    reason: format!("not a tag list: {error}"),
                }
            })?;
            let page = collector
                .add_page(page.tags.unwrap_or_default(), answer.body.len())
                .map_err(|truncation| incomplete(&collector, truncation))?;
            let next = pagination::next_page(&answer.headers, &endpoint.base);
            match collector
                .follow(page, next)
                .map_err(|truncation| incomplete(&collector, truncation))?
            {
                Some(next) => url = next,
                None => break,
            }
        }
        let collected = collector.finish();
        tracing::debug!(
            tags = collected.tags.len(),
            pages = collected.pages,
            bytes = collected.bytes,
            "listed tags"
        );
        Ok(TagListing {
            tags: collected.tags,
            pages: collected.pages,
        })
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
                MAX_MANIFEST_BYTES,
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
            .send(
                Method::GET,
                url,
                MANIFEST_ACCEPT,
                &image.repository,
                MAX_MANIFEST_BYTES,
            )
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
            .get_or_default(&config_digest);
        cell.get_or_try_init(|| async {
            let url = endpoint.url(&format!("/v2/{repository}/blobs/{config_digest}"));
            let answer = endpoint
                .send(
                    Method::GET,
                    url.clone(),
                    CONFIG_ACCEPT,
                    repository,
                    MAX_CONFIG_BYTES,
                )
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

    /// The [`ImageFacts`] of `image:tag`, for a pull-request body: its digest, its config's `created`,
    /// and its source repository and revision from the index's or manifest's annotations (which win)
    /// or the config's labels. Cached per manifest digest (one HEAD per call otherwise).
    pub async fn image_facts(
        &self,
        image: &ImageReference,
        tag: &str,
    ) -> Result<ImageFacts, RegistryError> {
        let endpoint = self.endpoint(image)?;
        let tag = checked_tag(image, tag)?;
        self.facts_in(&endpoint, image, tag)
            .instrument(image_span(image))
            .await
    }

    async fn facts_in(
        &self,
        endpoint: &Endpoint,
        image: &ImageReference,
        tag: &str,
    ) -> Result<ImageFacts, RegistryError> {
        let digest = self.digest_in(endpoint, image, tag).await?;
        let cell = self
            .inner
            .facts
            .lock()
            .expect("facts cache lock")
            .get_or_default(&digest);
        cell.get_or_try_init(|| self.read_facts(endpoint, image, &digest))
            .await
            .cloned()
    }

    async fn read_facts(
        &self,
        endpoint: &Endpoint,
        image: &ImageReference,
        digest: &str,
    ) -> Result<ImageFacts, RegistryError> {
        let repository = &image.repository;
        let mut url = endpoint.url(&format!("/v2/{repository}/manifests/{digest}"));
        let mut manifest = self
            .fetch_manifest(endpoint, url.clone(), repository)
            .await?;
        let mut annotations = std::collections::BTreeMap::new();
        if let OciManifest::ImageIndex(index) = &manifest {
            annotations.extend(index.annotations.clone().unwrap_or_default());
            let entry = index.manifests.iter().find(|entry| {
                is_valid_digest(&entry.digest)
                    && entry
                        .platform
                        .as_ref()
                        .is_none_or(|platform| platform.os.to_string() != "unknown")
            });
            let Some(entry) = entry else {
                // No platform image to read a config from: what the index says is all there is.
                return Ok(facts_from(digest, None, &annotations, None));
            };
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
        for (key, value) in image_manifest.annotations.unwrap_or_default() {
            annotations.entry(key).or_insert(value);
        }
        let config_digest = image_manifest.config.digest;
        if !is_valid_digest(&config_digest) {
            return Err(RegistryError::InvalidResponse {
                url: url.to_string(),
                reason: "the manifest's config digest is invalid".to_string(),
            });
        }
        let url = endpoint.url(&format!("/v2/{repository}/blobs/{config_digest}"));
        let answer = endpoint
            .send(
                Method::GET,
                url.clone(),
                CONFIG_ACCEPT,
                repository,
                MAX_CONFIG_BYTES,
            )
            .await?;
        let config: ConfigFacts = serde_json::from_slice(&answer.body).map_err(|error| {
            RegistryError::InvalidResponse {
                url: url.to_string(),
                reason: format!("not an image config: {error}"),
            }
        })?;
        let labels = config.config.and_then(|config| config.labels);
        let created = config.created.and_then(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|time| time.with_timezone(&Utc))
                .ok()
        });
        Ok(facts_from(digest, created, &annotations, labels.as_ref()))
    }

    async fn fetch_manifest(
        &self,
        endpoint: &Endpoint,
        url: reqwest::Url,
        repository: &str,
    ) -> Result<OciManifest, RegistryError> {
        let answer = endpoint
            .send(
                Method::GET,
                url.clone(),
                MANIFEST_ACCEPT,
                repository,
                MAX_MANIFEST_BYTES,
            )
            .await?;
        serde_json::from_slice(&answer.body).map_err(|error| RegistryError::InvalidResponse {
            url: url.to_string(),
            reason: format!("not an image manifest or index: {error}"),
        })
    }
}

/// [`ImageFacts`] from what was read: annotations win over labels; over-long values are dropped.
fn facts_from(
    digest: &str,
    created: Option<DateTime<Utc>>,
    annotations: &std::collections::BTreeMap<String, String>,
    labels: Option<&HashMap<String, String>>,
) -> ImageFacts {
    let find = |key: &str| {
        annotations
            .get(key)
            .or_else(|| labels.and_then(|labels| labels.get(key)))
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty() && value.len() <= MAX_FACT_BYTES)
    };
    ImageFacts {
        created,
        digest: Some(digest.to_string()),
        source: find(SOURCE_ANNOTATION),
        revision: find(REVISION_ANNOTATION),
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

    async fn image_facts(
        &self,
        image: &ImageReference,
        tag: &str,
    ) -> Result<ImageFacts, RegistryError> {
        RegistryClient::image_facts(self, image, tag).await
    }

    async fn list_tags(&self, image: &ImageReference) -> Result<Vec<String>, RegistryError> {
        Ok(self.listing(image).await?.tags)
    }

    async fn listing(&self, image: &ImageReference) -> Result<TagListing, RegistryError> {
        let endpoint = self.endpoint(image)?;
        self.listing_in(&endpoint, image)
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
    fn a_tag_page_is_read_borrowed_and_an_escaped_tag_unescaped() {
        let body = br#"{"name":"a/b","tags":["1.0.0","1.0\u002e1",null]}"#;
        assert!(
            serde_json::from_slice::<TagsPage>(body).is_err(),
            "null is no tag"
        );
        let body = br#"{"name":"a/b","tags":["1.0.0","1.0\u002e1"]}"#;
        let page: TagsPage = serde_json::from_slice(body).unwrap();
        let tags = page.tags.unwrap();
        assert!(matches!(tags[0].0, Cow::Borrowed("1.0.0")));
        assert_eq!(tags[1].as_ref(), "1.0.1");
        let tags: Vec<String> = tags.into_iter().map(String::from).collect();
        assert_eq!(tags, ["1.0.0", "1.0.1"]);
        let page: TagsPage = serde_json::from_slice(br#"{"name":"a/b","tags":null}"#).unwrap();
        assert!(page.tags.is_none());
        let page: TagsPage = serde_json::from_slice(br#"{"name":"a/b"}"#).unwrap();
        assert!(page.tags.is_none());
    }

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
