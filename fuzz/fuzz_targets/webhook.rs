//! The webhook payload parsers of every endpoint: never panic, refuse a body over the limit, and every
//! event they return names a valid image reference (and a valid tag, when it names one). The first
//! byte picks the endpoint and the content type; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagwatch::daemon::webhook::{Endpoint, parse_detailed};
use tagwatch::reference::{ImageReference, is_valid_tag};

const ENDPOINTS: [&str; 7] = [
    "distribution",
    "dockerhub",
    "github",
    "harbor",
    "quay",
    "acr",
    "generic",
];
const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/vnd.docker.distribution.events.v2+json"),
    Some("text/plain"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Some(endpoint) = Endpoint::from_name(ENDPOINTS[usize::from(selector) % ENDPOINTS.len()])
    else {
        panic!("an endpoint name is unknown");
    };
    let content_type = CONTENT_TYPES[usize::from(selector / 16) % CONTENT_TYPES.len()];
    let Ok(parsed) = parse_detailed(endpoint, content_type, body) else {
        return;
    };
    for event in parsed.events {
        let text = format!("{event:?}");
        assert!(!text.is_empty());
        let image = ImageReference::parse(&event.image)
            .unwrap_or_else(|error| panic!("{event:?}: {error}"));
        assert!(image.tag.is_none() && image.digest.is_none(), "{event:?}");
        if let Some(tag) = &event.tag {
            assert!(is_valid_tag(tag), "{event:?}");
        }
    }
});
