//! Webhook tests, by concept: the vendor fixtures, parsing rules and limits, authentication.

use std::path::{Path, PathBuf};

use super::*;

mod auth;
mod fixtures;
mod parse;

const DISTRIBUTION_V1: &str = "application/vnd.docker.distribution.events.v1+json";
const DISTRIBUTION_V2: &str = "application/vnd.docker.distribution.events.v2+json";
const JSON: &str = "application/json";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks")
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn event(image: &str, tag: Option<&str>) -> Event {
    Event {
        image: image.to_string(),
        tag: tag.map(str::to_string),
    }
}
