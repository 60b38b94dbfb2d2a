//! Where candidate tags and their facts come from: the seam between the pure policy engine and the
//! registry adapter. `registry::RegistryClient` implements [`TagSource`] against a live registry;
//! [`TagList`] implements it offline from a list (`resolve --tags-file`).
//!
//! Must not: rank or filter tags (that is `policy`), or know about HTTP.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::reference::ImageReference;

/// Every tag of an image's repository from a listing that completed: every page the source announced
/// was read. A listing that stopped early (a cap hit, a pagination loop) is an error, never a shorter
/// `TagListing`, so a policy never chooses from part of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagListing {
    /// In the order the source gave them, duplicates removed.
    pub tags: Vec<String>,
    /// Pages read (1 for a source that answers in one piece).
    pub pages: usize,
}

/// A source of tags and tag facts for images. `image` is always a normalized name without tag/digest.
pub trait TagSource {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every tag of the image's repository, in the order the registry gave them, duplicates removed.
    /// An incomplete listing is an error.
    fn list_tags(
        &self,
        image: &ImageReference,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;

    /// What a pull-request body shows about `image:tag` (digest, created, source, revision). A source
    /// that knows nothing about images keeps this default: no facts.
    fn image_facts(
        &self,
        _image: &ImageReference,
        _tag: &str,
    ) -> impl Future<Output = Result<ImageFacts, Self::Error>> + Send {
        async { Ok(ImageFacts::default()) }
    }

    /// [`Self::list_tags`] with what the listing took. A source that answers in one piece keeps this
    /// default.
    fn listing(
        &self,
        image: &ImageReference,
    ) -> impl Future<Output = Result<TagListing, Self::Error>> + Send {
        let tags = self.list_tags(image);
        async move {
            Ok(TagListing {
                tags: tags.await?,
                pages: 1,
            })
        }
    }

    /// The manifest digest (`sha256:…`) that `tag` points at (an image index keeps the index digest).
    fn manifest_digest(
        &self,
        image: &ImageReference,
        tag: &str,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// The image config's `created` time of `tag` (for an index: of its first platform manifest), or
    /// `None` when the config carries none.
    fn created(
        &self,
        image: &ImageReference,
        tag: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, Self::Error>> + Send;
}

/// What a pull-request body tells a reviewer about one image version (docs/review.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The image config's `created`.
    pub created: Option<DateTime<Utc>>,
    /// The tag's manifest (or index) digest.
    pub digest: Option<String>,
    /// `org.opencontainers.image.source`: from the index's or manifest's annotations, else the config's labels.
    pub source: Option<String>,
    /// `org.opencontainers.image.revision`, found the same way.
    pub revision: Option<String>,
}

/// An offline tag list: every image has these tags; digests and creation times are unknown.
#[derive(Debug, Clone)]
pub struct TagList {
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TagListError {
    #[error("a tag list has no {what}: resolve this policy against the registry instead")]
    Unsupported { what: &'static str },
}

impl TagList {
    /// One tag per line; blank lines and surrounding whitespace (CR included) are ignored.
    pub fn parse(text: &str) -> Self {
        TagList {
            tags: text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

impl TagSource for TagList {
    type Error = TagListError;

    async fn list_tags(&self, _image: &ImageReference) -> Result<Vec<String>, TagListError> {
        Ok(self.tags.clone())
    }

    async fn manifest_digest(
        &self,
        _image: &ImageReference,
        _tag: &str,
    ) -> Result<String, TagListError> {
        Err(TagListError::Unsupported { what: "digests" })
    }

    async fn created(
        &self,
        _image: &ImageReference,
        _tag: &str,
    ) -> Result<Option<DateTime<Utc>>, TagListError> {
        Err(TagListError::Unsupported {
            what: "creation times",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_offline_tag_list_is_one_complete_page() {
        let list = TagList::parse("1.0.0\n1.1.0\n");
        let image = ImageReference::parse("registry.test/app").unwrap();
        assert_eq!(
            list.listing(&image).await.unwrap(),
            TagListing {
                tags: vec!["1.0.0".to_string(), "1.1.0".to_string()],
                pages: 1
            }
        );
    }
}
