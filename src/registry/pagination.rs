//! Tag-list pagination: the page size asked for, reading the `Link` header and turning it into the next
//! request (robust to the quirks seen in the wild: a `Link` that drops the port or the host, relative
//! targets), and [`Collector`], which gathers the pages of one listing and refuses to call a listing
//! complete when it is not (a page, tag or byte cap hit, a `Link` loop, a page repeating known tags).
//!
//! Must not: send a request anywhere but the registry it came from (a `Link` cannot redirect credentials),
//! or hand out part of a listing as if it were all of it.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};

use super::error::Truncation;
use crate::reference::is_valid_tag;

/// The `n` sent on a listing's first request. 1,000 is the largest page the registries we checked
/// serve without complaint: distribution 3.1's default `tags.maxtags` (3.1.0 answers 400 above it,
/// 3.1.1 clamps to it), ECR's maximum; Quay clamps any `n` to its page of 100, distribution 2.8
/// ignores `n` and sends everything. A page of 1,000 tags is about 30 KB. A registry answering 400
/// to `n` is asked again without it (see `docs/design/registry.md`).
pub const PAGE_SIZE: usize = 1000;

/// Pages read per listing at most. With [`PAGE_SIZE`] honoured that is a million tags; with Quay's or
/// Docker Hub's 100-tag pages it is [`MAX_LISTING_TAGS`]. A registry still announcing a next page
/// beyond that is looping, or the repository is too large to track: the listing fails.
pub const MAX_PAGES: usize = 1000;

/// Distinct tags per listing at most. The largest real repositories we know have tens of thousands
/// (`mcr.microsoft.com/dotnet/aspnet` 11,021, Docker Hub's `node` 9,042; `tests/tags/`); 100,000 leaves
/// room for ten times that and bounds memory (about 15 MB even for 128-character tags).
pub const MAX_LISTING_TAGS: usize = 100_000;

/// Bytes of tag-list answers per listing at most, all pages together. 100,000 tags of the usual 10 to 30
/// characters are 1.5 to 3.5 MB of JSON, 100,000 tags of the longest legal 128 characters 13.1 MB: 16 MiB
/// lets [`MAX_LISTING_TAGS`] bind first for any honest list, and stops a registry padding its pages
/// with duplicates or invalid tags.
pub const MAX_LISTING_BYTES: usize = 16 * 1024 * 1024;

/// The caps of one listing (the constants above; tests use small ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub pages: usize,
    pub tags: usize,
    pub bytes: usize,
}

/// The caps every listing runs under.
pub const LIMITS: Limits = Limits {
    pages: MAX_PAGES,
    tags: MAX_LISTING_TAGS,
    bytes: MAX_LISTING_BYTES,
};

/// The next page's URL from a `Link: <…>; rel="next"` header, or `None` on the last page.
///
/// Only the path and query of the target are used, joined to the registry's own scheme, host and port:
/// registries behind proxies send `Link`s without the port, or with no host at all, and following another
/// host would hand it our credentials.
pub fn next_page(headers: &HeaderMap, base: &Url) -> Option<Url> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|link| {
            let (target, parameters) = link.trim().strip_prefix('<')?.split_once('>')?;
            let is_next = parameters.split(';').any(|parameter| {
                let parameter = parameter.trim().replace(' ', "");
                parameter == "rel=\"next\"" || parameter == "rel=next"
            });
            is_next.then(|| resolve(target.trim(), base)).flatten()
        })
}

fn resolve(target: &str, base: &Url) -> Option<Url> {
    // `http://host/v2/…`, `//host/v2/…`, `/v2/…` and `v2/…` all name the same path.
    let after_scheme = match target.find("://") {
        Some(index) => &target[index + 3..],
        None => target.strip_prefix("//").unwrap_or(target),
    };
    let path_and_query = if target.contains("://") || target.starts_with("//") {
        &after_scheme[after_scheme.find('/')?..]
    } else {
        after_scheme
    };
    let path_and_query = path_and_query.trim_start_matches('/');
    if !path_and_query.starts_with("v2/") {
        return None;
    }
    let mut url = base.clone();
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    url.set_path(&format!("/{path}"));
    url.set_query(query);
    // `v2/../x` is normalized to `/x` by the URL parser: a `Link` names a page of the API, never
    // another path of the registry's host.
    url.path().starts_with("/v2/").then_some(url)
}

/// The pages of one listing, gathered under [`Limits`]: tags outside the OCI grammar dropped (and
/// logged escaped), duplicates kept once in first-seen order, and an error instead of a shorter list
/// whenever the listing cannot be finished.
///
/// Each tag is copied once, into the list [`Self::finish`] hands out; duplicates are found through a
/// hash of each kept tag (a matching hash is confirmed by comparing the tags), so a listing costs one
/// allocation per tag and no re-sort (the daemon lists every tracked image once per interval).
pub struct Collector {
    limits: Limits,
    /// The kept tags, in first-seen order.
    tags: Vec<String>,
    /// Hash of a kept tag → its position in `tags` (the first one with that hash).
    positions: HashMap<u64, usize>,
    hasher: RandomState,
    visited: HashSet<Url>,
    pages: usize,
    bytes: usize,
}

/// A finished listing: every page the registry announced was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub tags: Vec<String>,
    pub pages: usize,
    pub bytes: usize,
}

impl Collector {
    /// A listing whose first request goes to `first`.
    pub fn new(limits: Limits, first: &Url) -> Self {
        Collector {
            limits,
            tags: Vec::new(),
            positions: HashMap::new(),
            hasher: RandomState::new(),
            visited: HashSet::from([first.clone()]),
            pages: 0,
            bytes: 0,
        }
    }

    /// The most bytes the next page may have.
    pub fn byte_budget(&self) -> usize {
        self.limits.bytes.saturating_sub(self.bytes)
    }

    pub fn pages(&self) -> usize {
        self.pages
    }

    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// Whether `tag` is kept already.
    fn is_kept(&self, tag: &str, hash: u64) -> bool {
        match self.positions.get(&hash) {
            None => false,
            Some(&position) if self.tags[position] == tag => true,
            // Two tags with one 64-bit hash: never seen in practice, settled by looking at every tag.
            Some(_) => self.tags.iter().any(|kept| kept == tag),
        }
    }

    /// Takes in one page (its tags, borrowed or owned, and its size in bytes).
    pub fn add_page<T>(
        &mut self,
        page: impl IntoIterator<Item = T>,
        bytes: usize,
    ) -> Result<PageOutcome, Truncation>
    where
        T: AsRef<str> + Into<String>,
    {
        self.pages += 1;
        self.bytes += bytes;
        if self.bytes > self.limits.bytes {
            return Err(Truncation::Bytes {
                limit: self.limits.bytes,
            });
        }
        let page = page.into_iter();
        let room = page.size_hint().0.min(self.limits.tags - self.tags.len());
        self.tags.reserve(room);
        self.positions.reserve(room);
        let mut new_tags = 0usize;
        let mut listed = 0usize;
        for tag in page {
            listed += 1;
            let text = tag.as_ref();
            if !is_valid_tag(text) {
                // Escaped and cut short: the text came from the registry and must not reach a log or
                // YAML raw, nor fill a log line.
                tracing::warn!(tag = ?shown(text), "dropping a tag outside the OCI tag grammar");
                continue;
            }
            let hash = self.hasher.hash_one(text);
            if self.is_kept(text, hash) {
                continue;
            }
            if self.tags.len() == self.limits.tags {
                return Err(Truncation::Tags {
                    limit: self.limits.tags,
                });
            }
            self.positions.entry(hash).or_insert(self.tags.len());
            self.tags.push(tag.into());
            new_tags += 1;
        }
        Ok(PageOutcome { listed, new_tags })
    }

    /// Decides whether to follow `next` (the page's `rel="next"` target, if any) after `page`:
    /// `Ok(None)` when the listing is complete, `Ok(Some(url))` for the next request, or why it cannot
    /// be finished.
    pub fn follow(
        &mut self,
        page: PageOutcome,
        next: Option<Url>,
    ) -> Result<Option<Url>, Truncation> {
        let Some(next) = next else {
            return Ok(None);
        };
        if !self.visited.insert(next.clone()) {
            return Err(Truncation::LinkLoop);
        }
        if page.new_tags == 0 && page.listed > 0 {
            return Err(Truncation::RepeatedPage);
        }
        if self.pages >= self.limits.pages {
            return Err(Truncation::Pages {
                limit: self.limits.pages,
            });
        }
        if self.byte_budget() == 0 {
            return Err(Truncation::Bytes {
                limit: self.limits.bytes,
            });
        }
        Ok(Some(next))
    }

    /// The tags in first-seen order.
    pub fn finish(self) -> Collected {
        Collected {
            tags: self.tags,
            pages: self.pages,
            bytes: self.bytes,
        }
    }
}

/// Characters of a dropped tag shown in the log: longer than any valid tag (128), so what made it
/// invalid is usually visible.
const SHOWN_TAG_CHARS: usize = 160;

/// A dropped tag for a log line, logged with `?` (quoted and escaped: no newline, quote or terminal
/// escape survives, and no text after a space can pass for another field): at most
/// [`SHOWN_TAG_CHARS`] characters of it, with its full length when cut.
fn shown(tag: &str) -> String {
    let mut text: String = tag.chars().take(SHOWN_TAG_CHARS).collect();
    if tag.chars().nth(SHOWN_TAG_CHARS).is_some() {
        text.push_str(&format!("… ({} bytes)", tag.len()));
    }
    text
}

/// What one page brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageOutcome {
    /// Entries in the page, valid or not.
    pub listed: usize,
    /// Valid tags not seen on an earlier page.
    pub new_tags: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn link(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn link_targets_are_joined_to_the_registrys_own_origin() {
        let base = Url::parse("https://127.0.0.1:5443/").unwrap();
        let expected = "https://127.0.0.1:5443/v2/a/b/tags/list?last=1.0.9&n=10";
        for target in [
            "</v2/a/b/tags/list?last=1.0.9&n=10>; rel=\"next\"",
            "<https://127.0.0.1/v2/a/b/tags/list?last=1.0.9&n=10>; rel=\"next\"",
            "<http://other.example:80/v2/a/b/tags/list?last=1.0.9&n=10>; rel=next",
            "<v2/a/b/tags/list?last=1.0.9&n=10>; rel=\"next\"",
            "<http:///v2/a/b/tags/list?last=1.0.9&n=10>; rel=\"next\"",
        ] {
            assert_eq!(
                next_page(&link(target), &base).map(|url| url.to_string()),
                Some(expected.to_string()),
                "{target}"
            );
        }
    }

    #[test]
    fn only_rel_next_is_followed() {
        let base = Url::parse("http://localhost:5000/").unwrap();
        assert_eq!(
            next_page(&link("</v2/a/tags/list?n=1>; rel=\"prev\""), &base),
            None
        );
        assert_eq!(next_page(&HeaderMap::new(), &base), None);
        assert_eq!(next_page(&link("</elsewhere>; rel=\"next\""), &base), None);
        // Found by `fuzz/` (target `link_header`): dot segments left the API.
        for target in [
            "</v2/../token?x=1>; rel=\"next\"",
            "</v2/./../../admin>; rel=next",
            "<v2/%2e%2e/admin>; rel=next",
        ] {
            assert_eq!(next_page(&link(target), &base), None, "{target}");
        }
    }

    const SMALL: Limits = Limits {
        pages: 3,
        tags: 5,
        bytes: 1000,
    };

    fn url(query: &str) -> Url {
        Url::parse(&format!("http://registry.test/v2/a/tags/list{query}")).unwrap()
    }

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn a_complete_listing_keeps_valid_tags_once_in_first_seen_order() {
        let mut collector = Collector::new(SMALL, &url(""));
        let page = collector
            .add_page(tags(&["b", "a", "bad\ntag", "b"]), 10)
            .unwrap();
        assert_eq!(
            page,
            PageOutcome {
                listed: 4,
                new_tags: 2
            }
        );
        let next = collector.follow(page, Some(url("?last=a"))).unwrap();
        assert_eq!(next, Some(url("?last=a")));
        let page = collector.add_page(tags(&["a", "c"]), 10).unwrap();
        assert_eq!(collector.follow(page, None), Ok(None));
        assert_eq!(
            collector.finish(),
            Collected {
                tags: tags(&["b", "a", "c"]),
                pages: 2,
                bytes: 20
            }
        );
    }

    #[test]
    fn two_tags_sharing_a_hash_are_both_kept_once() {
        let mut collector = Collector::new(SMALL, &url(""));
        collector.add_page(tags(&["a"]), 10).unwrap();
        // Make `b` look like `a` to the index: the hash of `b` now points at `a`'s position.
        let hash_of_b = collector.hasher.hash_one("b");
        collector.positions.insert(hash_of_b, 0);
        let page = collector.add_page(tags(&["b", "b", "a"]), 10).unwrap();
        assert_eq!(
            page,
            PageOutcome {
                listed: 3,
                new_tags: 1
            }
        );
        assert_eq!(collector.finish().tags, tags(&["a", "b"]));
    }

    #[test]
    fn a_page_of_borrowed_tags_is_collected_like_owned_ones() {
        let body = String::from("b a b c");
        let mut collector = Collector::new(SMALL, &url(""));
        let page = collector.add_page(body.split(' '), body.len()).unwrap();
        assert_eq!(page.new_tags, 3);
        assert_eq!(collector.finish().tags, tags(&["b", "a", "c"]));
    }

    #[test]
    fn a_dropped_tag_is_logged_escaped_and_cut_short() {
        assert_eq!(
            format!("{:?}", shown("1.0\nimage: \"x\u{1b} class=y")),
            r#""1.0\nimage: \"x\u{1b} class=y""#
        );
        let long = format!("1.0-{}", "a".repeat(10_000));
        let text = shown(&long);
        assert!(text.ends_with("… (10004 bytes)"), "{text}");
        assert!(text.chars().count() < SHOWN_TAG_CHARS + 20, "{text}");
    }

    #[test]
    fn a_listing_with_more_tags_than_the_cap_is_truncated_not_shortened() {
        let mut collector = Collector::new(SMALL, &url(""));
        // Exactly the cap is fine; one more distinct tag is not (a duplicate is).
        let page = collector
            .add_page(tags(&["1", "2", "3", "4", "5", "5"]), 10)
            .unwrap();
        assert_eq!(page.new_tags, 5);
        assert_eq!(
            collector.add_page(tags(&["1", "6"]), 10),
            Err(Truncation::Tags { limit: 5 })
        );
    }

    #[test]
    fn a_registry_announcing_a_page_past_the_cap_truncates_the_listing() {
        let mut collector = Collector::new(SMALL, &url(""));
        for (index, tag) in ["1", "2"].into_iter().enumerate() {
            let page = collector.add_page(tags(&[tag]), 10).unwrap();
            let next = url(&format!("?last={index}"));
            assert_eq!(collector.follow(page, Some(next.clone())), Ok(Some(next)));
        }
        let page = collector.add_page(tags(&["3"]), 10).unwrap();
        assert_eq!(
            collector.follow(page, Some(url("?last=3"))),
            Err(Truncation::Pages { limit: 3 })
        );
        // The same third page without a `Link` would have been the last: complete.
        let mut complete = Collector::new(SMALL, &url(""));
        for tag in ["1", "2", "3"] {
            let page = complete.add_page(tags(&[tag]), 10).unwrap();
            let next = (tag != "3").then(|| url(&format!("?last={tag}")));
            complete.follow(page, next).unwrap();
        }
        assert_eq!(complete.finish().tags, tags(&["1", "2", "3"]));
    }

    #[test]
    fn loops_and_repeated_pages_truncate_the_listing() {
        let mut collector = Collector::new(SMALL, &url(""));
        let page = collector.add_page(tags(&["1"]), 10).unwrap();
        assert_eq!(
            collector.follow(page, Some(url(""))),
            Err(Truncation::LinkLoop)
        );

        let mut collector = Collector::new(SMALL, &url(""));
        let page = collector.add_page(tags(&["1", "2"]), 10).unwrap();
        collector.follow(page, Some(url("?last=2"))).unwrap();
        let page = collector.add_page(tags(&["2", "1"]), 10).unwrap();
        assert_eq!(
            collector.follow(page, Some(url("?last=3"))),
            Err(Truncation::RepeatedPage)
        );
    }

    #[test]
    fn pages_over_the_byte_budget_truncate_the_listing() {
        let mut collector = Collector::new(SMALL, &url(""));
        let page = collector.add_page(tags(&["1"]), 1000).unwrap();
        assert_eq!(collector.byte_budget(), 0);
        assert_eq!(
            collector.follow(page, Some(url("?last=1"))),
            Err(Truncation::Bytes { limit: 1000 })
        );
        let mut collector = Collector::new(SMALL, &url(""));
        assert_eq!(
            collector.add_page(tags(&["1"]), 1001),
            Err(Truncation::Bytes { limit: 1000 })
        );
    }
}
