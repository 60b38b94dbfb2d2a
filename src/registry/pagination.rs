//! Tag-list pagination: reading the `Link` header and turning it into the next request, robust to the
//! quirks seen in the wild (a `Link` that drops the port or the host, relative targets, repeated pages).
//!
//! Must not: send a request anywhere but the registry it came from (a `Link` cannot redirect credentials).

use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};

/// Pages followed per listing at most: 1,000 pages of Docker Hub's 100 tags is 100,000 tags, far past any
/// real repository; a registry that keeps answering `Link` beyond that is looping.
pub const MAX_PAGES: usize = 1000;

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
    Some(url)
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
    }
}
