//! The `Link` header parser of tag-list pagination: never panics, and a next page it returns is always
//! on the registry's own origin (scheme, host, port) under `/v2/` — a `Link` never sends a request,
//! and the credentials with it, to another host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderValue, LINK};
use tagwatch::registry::pagination::next_page;

fuzz_target!(|data: &[u8]| {
    let base = Url::parse("https://registry.example:5443/").unwrap();
    let mut headers = HeaderMap::new();
    // Several `Link` headers: the input split at NUL bytes (which no header value holds).
    for value in data.split(|byte| *byte == 0) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(LINK, value);
        }
    }
    if let Some(next) = next_page(&headers, &base) {
        assert_eq!(next.origin(), base.origin(), "{next}");
        assert!(next.path().starts_with("/v2/"), "{next}");
        assert!(
            next.username().is_empty() && next.password().is_none(),
            "{next}"
        );
    }
});
