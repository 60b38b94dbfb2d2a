//! Registry webhooks (docs/daemon.md), the pure part the daemon's HTTP server calls: which endpoints exist
//! ([`Endpoint`]), who may call them ([`authenticate`]) and which images a payload names ([`parse`]).
//!
//! A webhook is a hint: an [`Event`] names an image (and the tag the registry says was pushed) to
//! re-check, and the tag list is then read from the registry. So parsing extracts `(image, tag)` and
//! nothing else; every name and tag is checked against the reference grammar, and an entry that fails
//! is dropped (the whole payload is an error only when nothing in it is usable).
//!
//! Must not: do I/O or know HTTP server types, trust a payload beyond the image and tag it names,
//! compare secrets in variable time, echo a secret or a payload in an error, or panic on any input.
//! See `docs/webhooks.md` for each endpoint's format, authentication and registry-side setup.

use std::collections::HashSet;
use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ErrorClass;
use crate::reference::{self, ImageReference};

/// Bodies over this size are refused (413) before credentials are looked at: 1 MiB is far above any
/// registry's notification (a distribution envelope of 100 events is ~100 KiB) and bounds the work an
/// unauthenticated caller can cause.
pub const MAX_BODY: usize = 1024 * 1024;

/// The path prefix every webhook lives under.
pub const PATH_PREFIX: &str = "/webhook/";

/// Where GitHub's container registry lives; GitHub's `package` events name packages, not hosts.
const GITHUB_CONTAINER_REGISTRY: &str = "ghcr.io";

/// One webhook endpoint: a registry's notification format and its authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /webhook/distribution`: CNCF distribution (`registry:2`, `docker-registry`) notifications.
    Distribution,
    /// `POST /webhook/dockerhub/<token>`: Docker Hub repository webhooks.
    DockerHub,
    /// `POST /webhook/github`: GitHub `package` / `registry_package` events for ghcr.io.
    GitHub,
    /// `POST /webhook/harbor`: Harbor project webhooks (default and CloudEvents formats).
    Harbor,
    /// `POST /webhook/quay/<token>`: Quay "Push to Repository" notifications.
    Quay,
    /// `POST /webhook/acr`: Azure Container Registry webhooks.
    Acr,
    /// `POST /webhook/generic`: `{"image": "host/repository", "tag": "1.2.3"}` from anything else.
    Generic,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Distribution,
        Endpoint::DockerHub,
        Endpoint::GitHub,
        Endpoint::Harbor,
        Endpoint::Quay,
        Endpoint::Acr,
        Endpoint::Generic,
    ];

    /// The name in the path, in `daemon.webhooks` and in the `endpoint` metric label.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Distribution => "distribution",
            Endpoint::DockerHub => "dockerhub",
            Endpoint::GitHub => "github",
            Endpoint::Harbor => "harbor",
            Endpoint::Quay => "quay",
            Endpoint::Acr => "acr",
            Endpoint::Generic => "generic",
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL
            .into_iter()
            .find(|endpoint| endpoint.name() == name)
    }

    /// Whether the credential is the last path segment (`/webhook/dockerhub/<token>`): the registry
    /// sends no header we could check.
    pub fn takes_path_token(self) -> bool {
        matches!(self, Endpoint::DockerHub | Endpoint::Quay)
    }

    /// The endpoint a request path names, with its path token: `/webhook/quay/abc` →
    /// `(Quay, Some("abc"))`. `None` for any other path (the server answers 404), including a
    /// path-token endpoint without a token and a header-authenticated endpoint with extra segments.
    pub fn route(path: &str) -> Option<(Endpoint, Option<&str>)> {
        let rest = path.strip_prefix(PATH_PREFIX)?;
        let (name, token) = match rest.split_once('/') {
            Some((name, token)) => (name, Some(token)),
            None => (rest, None),
        };
        let endpoint = Endpoint::from_name(name)?;
        match token {
            Some(token)
                if endpoint.takes_path_token() && !token.is_empty() && !token.contains('/') =>
            {
                Some((endpoint, Some(token)))
            }
            None if !endpoint.takes_path_token() => Some((endpoint, None)),
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An image to re-check, named by a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// Normalized `host/repository` ([`reference::normalize_name`]): `127.0.0.1:5000/acme/app`,
    /// `docker.io/library/nginx`.
    pub image: String,
    /// The tag the registry says was pushed (a valid OCI tag), when the payload names one.
    pub tag: Option<String>,
}

/// What a payload held: its events (deduplicated, in payload order) and how many entries were
/// skipped as not a tagged push (pulls, deletes, blobs, other event types) or rejected as invalid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub events: Vec<Event>,
    pub ignored: usize,
    pub rejected: usize,
}

/// Why a payload was refused. Messages name the endpoint and the reason, never payload contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the {endpoint} webhook body is {size} bytes, over the {MAX_BODY}-byte limit")]
    TooLarge { endpoint: Endpoint, size: usize },
    #[error("the {endpoint} webhook takes JSON, not {content_type}")]
    UnsupportedContentType {
        endpoint: Endpoint,
        /// The first characters of the header, quoted and escaped.
        content_type: String,
    },
    #[error("the {endpoint} webhook body is not valid JSON (line {line}, column {column})")]
    Malformed {
        endpoint: Endpoint,
        line: usize,
        column: usize,
    },
    #[error("the {endpoint} webhook body is not {expected}")]
    Shape {
        endpoint: Endpoint,
        expected: &'static str,
    },
    #[error(
        "the {endpoint} webhook names no usable image: {rejected} rejected entr{plural} (first: {reason})",
        plural = if *rejected == 1 { "y" } else { "ies" }
    )]
    Rejected {
        endpoint: Endpoint,
        rejected: usize,
        reason: &'static str,
    },
}

impl WebhookError {
    /// The status the server answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::TooLarge { .. } => 413,
            WebhookError::UnsupportedContentType { .. } => 415,
            WebhookError::Malformed { .. }
            | WebhookError::Shape { .. }
            | WebhookError::Rejected { .. } => 400,
        }
    }

    /// The same body never becomes valid.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// Parses a webhook body into the images it names (see [`parse_detailed`]).
pub fn parse(
    endpoint: Endpoint,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<Event>, WebhookError> {
    parse_detailed(endpoint, content_type, body).map(|parsed| parsed.events)
}

/// Parses a webhook body: the size is checked first, then the content type (JSON: absent,
/// `application/json` or any `application/*+json`), then the JSON, then each entry. A payload of only
/// ignored entries (a pull, a ping) is `Ok` with no events; one whose relevant entries were all
/// invalid is [`WebhookError::Rejected`].
pub fn parse_detailed(
    endpoint: Endpoint,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Parsed, WebhookError> {
    if body.len() > MAX_BODY {
        return Err(WebhookError::TooLarge {
            endpoint,
            size: body.len(),
        });
    }
    if let Some(content_type) = content_type
        && !is_json(content_type)
    {
        let shown: String = content_type.chars().take(64).collect();
        return Err(WebhookError::UnsupportedContentType {
            endpoint,
            content_type: format!("{shown:?}"),
        });
    }
    let root: Value = serde_json::from_slice(body).map_err(|error| WebhookError::Malformed {
        endpoint,
        line: error.line(),
        column: error.column(),
    })?;
    if !root.is_object() {
        return Err(WebhookError::Shape {
            endpoint,
            expected: "a JSON object",
        });
    }

    let mut entries = Entries::default();
    match endpoint {
        Endpoint::Distribution => {
            let events =
                root.get("events")
                    .and_then(Value::as_array)
                    .ok_or(WebhookError::Shape {
                        endpoint,
                        expected: "a distribution envelope (`{\"events\": [...]}`)",
                    })?;
            for event in events {
                entries.add(distribution_event(event));
            }
        }
        Endpoint::DockerHub => entries.add(dockerhub(&root)),
        Endpoint::GitHub => entries.add(github(&root)),
        Endpoint::Harbor => harbor(&root, &mut entries),
        Endpoint::Quay => quay(&root, &mut entries),
        Endpoint::Acr => entries.add(acr(&root)),
        Endpoint::Generic => entries.add(generic(&root)),
    }
    entries.finish(endpoint)
}

/// `Ok(Some)`: an event; `Ok(None)`: not a tagged push, ignored; `Err`: invalid, with the reason.
type Outcome = Result<Option<Event>, &'static str>;

const WRONG_TYPE: &str = "a field has the wrong JSON type";
const INVALID_TAG: &str = "a tag is not a valid OCI tag";
const INVALID_NAME: &str = "an image name is not a valid reference";
const NO_HOST: &str = "a registry host is missing or not a host[:port]";

/// `{"events": [...]}` from distribution: act on `push` events that name a tag. Blob pushes carry
/// no tag, nor does a manifest pushed by digest; pulls, mounts and deletes are ignored.
fn distribution_event(event: &Value) -> Outcome {
    if text(event, &["action"])? != Some("push") {
        return Ok(None);
    }
    let Some(tag) = text(event, &["target", "tag"])?.filter(|tag| !tag.is_empty()) else {
        return Ok(None);
    };
    if text(event, &["target", "mediaType"])?.is_some_and(is_layer_media_type) {
        return Ok(None);
    }
    let repository =
        text(event, &["target", "repository"])?.ok_or("target.repository is missing")?;
    let host = text(event, &["request", "host"])?.ok_or(NO_HOST)?;
    event_on_host(host, repository, Some(tag))
}

fn is_layer_media_type(media_type: &str) -> bool {
    media_type.contains(".layer.") || media_type.contains("rootfs.diff")
}

/// Docker Hub: `repository.repo_name` + `push_data.tag`; Hub only sends pushes.
fn dockerhub(root: &Value) -> Outcome {
    let repo_name =
        text(root, &["repository", "repo_name"])?.ok_or("repository.repo_name is missing")?;
    let tag = text(root, &["push_data", "tag"])?.ok_or("push_data.tag is missing")?;
    event(&format!("{}/{repo_name}", reference::DOCKER_HUB), Some(tag))
}

/// GitHub `package` / `registry_package` events (told apart by the signed body, not by the unsigned
/// `X-GitHub-Event` header): `published` / `updated` container versions that carry a tag.
fn github(root: &Value) -> Outcome {
    let Some(package) = root.get("package").or_else(|| root.get("registry_package")) else {
        return Ok(None); // ping and every other event
    };
    if !matches!(text(root, &["action"])?, Some("published" | "updated")) {
        return Ok(None);
    }
    let kind = match text(package, &["package_type"])? {
        Some(kind) => Some(kind),
        None => text(package, &["ecosystem"])?,
    };
    if !kind.is_some_and(|kind| kind.eq_ignore_ascii_case("container")) {
        return Ok(None);
    }
    let tag = text(
        package,
        &["package_version", "container_metadata", "tag", "name"],
    )?;
    let Some(tag) = tag.filter(|tag| !tag.is_empty()) else {
        return Ok(None); // an untagged version (a platform manifest of a multi-arch push)
    };
    let owner = match text(package, &["owner", "login"])? {
        Some(login) => login,
        None => text(package, &["namespace"])?
            .filter(|namespace| !namespace.contains('/'))
            .ok_or("package.owner.login is missing")?,
    };
    let name = text(package, &["name"])?.ok_or("package.name is missing")?;
    // ghcr.io names are lowercase; GitHub logins and package names may not be.
    let image = format!(
        "{GITHUB_CONTAINER_REGISTRY}/{}/{}",
        owner.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    );
    event(&image, Some(tag))
}

/// Harbor: `PUSH_ARTIFACT` (default format) or `harbor.artifact.pushed` (CloudEvents), one entry per
/// `resources[]` item.
fn harbor(root: &Value, entries: &mut Entries) {
    let (push_type, data_key) = if root.get("specversion").is_some() {
        ("harbor.artifact.pushed", "data")
    } else {
        ("PUSH_ARTIFACT", "event_data")
    };
    match text(root, &["type"]) {
        Ok(Some(kind)) if kind == push_type => {}
        Ok(_) => return entries.add(Ok(None)),
        Err(reason) => return entries.add(Err(reason)),
    }
    let Some(resources) = root
        .get(data_key)
        .and_then(|data| data.get("resources"))
        .and_then(Value::as_array)
    else {
        return entries.add(Err("the resources list is missing"));
    };
    let repo_full_name = text(root, &[data_key, "repository", "repo_full_name"]);
    for resource in resources {
        entries.add(repo_full_name.and_then(|full_name| harbor_resource(resource, full_name)));
    }
}

/// One pushed artifact: `resource_url` (`harbor.example.com/library/nginx:1.2`) names the image,
/// `tag` the tag; both must agree with each other and with `repo_full_name`. An artifact pushed by
/// digest carries the digest as its "tag" and is ignored.
fn harbor_resource(resource: &Value, repo_full_name: Option<&str>) -> Outcome {
    let tag = text(resource, &["tag"])?;
    let Some(tag) = tag.filter(|tag| !tag.is_empty() && !reference::is_valid_digest(tag)) else {
        return Ok(None);
    };
    let url = text(resource, &["resource_url"])?.ok_or("resource_url is missing")?;
    if reference::split_domain(url).0.is_none() {
        return Err(NO_HOST);
    }
    let parsed = ImageReference::parse(url).map_err(|_| INVALID_NAME)?;
    if parsed.tag.as_deref().is_some_and(|url_tag| url_tag != tag) {
        return Err("resource_url and tag name different tags");
    }
    if repo_full_name.is_some_and(|full_name| full_name != parsed.repository) {
        return Err("resource_url and repository.repo_full_name name different repositories");
    }
    event(&parsed.name(), Some(tag))
}

/// Quay: a "Push to Repository" notification carries `updated_tags` (a list; a tag → digest map in
/// its first format); other notifications (builds, vulnerabilities) do not and are ignored.
fn quay(root: &Value, entries: &mut Entries) {
    let tags: Vec<Option<&str>> = match root.get("updated_tags") {
        None | Some(Value::Null) => return entries.add(Ok(None)),
        Some(Value::Array(tags)) => tags.iter().map(Value::as_str).collect(),
        Some(Value::Object(tags)) => tags.keys().map(|tag| Some(tag.as_str())).collect(),
        Some(_) => return entries.add(Err(WRONG_TYPE)),
    };
    let image = quay_image(root);
    for tag in tags {
        entries.add(match (&image, tag) {
            (Err(reason), _) => Err(*reason),
            (Ok(_), None) => Err(WRONG_TYPE),
            (Ok(image), Some(tag)) => event(image, Some(tag)),
        });
    }
}

/// `docker_url` (`quay.io/namespace/repository`, the server's hostname included), checked against
/// `repository` when present.
fn quay_image(root: &Value) -> Result<String, &'static str> {
    let url = text(root, &["docker_url"])?.ok_or("docker_url is missing")?;
    if reference::split_domain(url).0.is_none() {
        return Err(NO_HOST);
    }
    let parsed = ImageReference::parse(url).map_err(|_| INVALID_NAME)?;
    if parsed.tag.is_some() || parsed.digest.is_some() {
        return Err(INVALID_NAME);
    }
    if text(root, &["repository"])?.is_some_and(|repository| repository != parsed.repository) {
        return Err("docker_url and repository name different repositories");
    }
    Ok(parsed.name())
}

/// ACR: one event per request, `action: push` with `target.tag`; `request.host` is the registry.
fn acr(root: &Value) -> Outcome {
    if text(root, &["action"])? != Some("push") {
        return Ok(None); // chart_push, delete, chart_delete, quarantine
    }
    let Some(tag) = text(root, &["target", "tag"])?.filter(|tag| !tag.is_empty()) else {
        return Ok(None);
    };
    let repository =
        text(root, &["target", "repository"])?.ok_or("target.repository is missing")?;
    let host = text(root, &["request", "host"])?.ok_or(NO_HOST)?;
    event_on_host(host, repository, Some(tag))
}

/// tagwatch's own format: `{"image": "host/repository", "tag": "1.2.3"}`, `tag` optional, nothing else.
fn generic(root: &Value) -> Outcome {
    if root
        .as_object()
        .is_some_and(|object| object.keys().any(|key| key != "image" && key != "tag"))
    {
        return Err("only `image` and `tag` are allowed");
    }
    let image = text(root, &["image"])?.ok_or("`image` is missing")?;
    if ImageReference::parse(image)
        .is_ok_and(|parsed| parsed.tag.is_some() || parsed.digest.is_some())
    {
        return Err("`image` carries a tag or digest; send the tag as `tag`");
    }
    event(image, text(root, &["tag"])?)
}

/// `host/repository` as an event, when `host` really is a registry host (`registry/acme/app` would
/// otherwise be read as a Docker Hub image).
fn event_on_host(host: &str, repository: &str, tag: Option<&str>) -> Outcome {
    let name = format!("{host}/{repository}");
    if host.is_empty() || reference::split_domain(&name).0 != Some(host) {
        return Err(NO_HOST);
    }
    event(&name, tag)
}

fn event(name: &str, tag: Option<&str>) -> Outcome {
    if tag.is_some_and(|tag| !reference::is_valid_tag(tag)) {
        return Err(INVALID_TAG);
    }
    // The error would quote the name; the reason is enough.
    let image = reference::normalize_name(name).map_err(|_| INVALID_NAME)?;
    Ok(Some(Event {
        image,
        tag: tag.map(str::to_string),
    }))
}

/// The string at `path`: `None` when a step is missing or `null`, an error when a step has another
/// type than expected (an object on the way, a string at the end).
fn text<'v>(value: &'v Value, path: &[&str]) -> Result<Option<&'v str>, &'static str> {
    let mut current = value;
    for key in path {
        match current {
            Value::Object(object) => match object.get(*key) {
                Some(next) => current = next,
                None => return Ok(None),
            },
            Value::Null => return Ok(None),
            _ => return Err(WRONG_TYPE),
        }
    }
    match current {
        Value::String(text) => Ok(Some(text)),
        Value::Null => Ok(None),
        _ => Err(WRONG_TYPE),
    }
}

/// `application/json` or a structured `+json` type (distribution's `…events.v1+json`), parameters
/// ignored.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[derive(Default)]
struct Entries {
    parsed: Parsed,
    seen: HashSet<Event>,
    first_rejection: Option<&'static str>,
}

impl Entries {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Ok(Some(event)) => {
                if self.seen.insert(event.clone()) {
                    self.parsed.events.push(event);
                }
            }
            Ok(None) => self.parsed.ignored += 1,
            Err(reason) => {
                self.parsed.rejected += 1;
                self.first_rejection.get_or_insert(reason);
            }
        }
    }

    fn finish(self, endpoint: Endpoint) -> Result<Parsed, WebhookError> {
        match self.first_rejection {
            Some(reason) if self.parsed.events.is_empty() => Err(WebhookError::Rejected {
                endpoint,
                rejected: self.parsed.rejected,
                reason,
            }),
            _ => Ok(self.parsed),
        }
    }
}

/// A configured credential of an endpoint (the values come from `daemon.webhooks.*`).
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// A token the request presents in `Authorization`: `Bearer <token>` (distribution, ACR,
    /// generic); Harbor sends its configured header value verbatim, so there the value is the token
    /// itself or `Bearer <token>`.
    Bearer(&'a str),
    /// A secret the request's body is signed with: `X-Hub-Signature-256` (GitHub) or
    /// `X-Signature-256` (generic), `sha256=<hex HMAC-SHA256 of the raw body>`.
    Hmac(&'a [u8]),
    /// A token that is the last path segment (Docker Hub, Quay).
    PathToken(&'a str),
}

impl Credential<'_> {
    fn applies_to(&self, endpoint: Endpoint) -> bool {
        match self {
            Credential::Bearer(_) => matches!(
                endpoint,
                Endpoint::Distribution | Endpoint::Harbor | Endpoint::Acr | Endpoint::Generic
            ),
            Credential::Hmac(_) => matches!(endpoint, Endpoint::GitHub | Endpoint::Generic),
            Credential::PathToken(_) => endpoint.takes_path_token(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Credential::Bearer(token) | Credential::PathToken(token) => token.is_empty(),
            Credential::Hmac(secret) => secret.is_empty(),
        }
    }
}

/// Shows the kind only, never the value.
impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::Bearer(_) => "Credential::Bearer([redacted])",
            Credential::Hmac(_) => "Credential::Hmac([redacted])",
            Credential::PathToken(_) => "Credential::PathToken([redacted])",
        })
    }
}

/// Why a request was not let in. Never carries what was presented or expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable credential is configured: the endpoint is off.
    #[error("the {endpoint} webhook is off: no credential is configured for it")]
    NotConfigured { endpoint: Endpoint },
    #[error("the {endpoint} webhook request carries no credential")]
    Missing { endpoint: Endpoint },
    #[error("the {endpoint} webhook request carries a wrong credential")]
    Wrong { endpoint: Endpoint },
}

impl AuthError {
    /// The status the server answers with: an endpoint that is off does not exist (404), a missing
    /// or wrong credential is 401.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::NotConfigured { .. } => 404,
            AuthError::Missing { .. } | AuthError::Wrong { .. } => 401,
        }
    }

    pub fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// Checks a request against an endpoint's configured credentials; any one of them lets it in.
/// `headers` looks a header up by its lower-case name (`authorization`, `x-hub-signature-256`,
/// `x-signature-256`); `path_token` is the segment after `/webhook/<name>/`; `body` is the raw body
/// (signatures cover its bytes). Credentials of a kind the endpoint does not use, and empty ones, are
/// not usable: with none left the endpoint is [`AuthError::NotConfigured`]. Tokens are compared as
/// SHA-256 digests in constant time (neither content nor length leaks), signatures with `hmac`'s
/// constant-time check.
pub fn authenticate(
    endpoint: Endpoint,
    expected: &[Credential<'_>],
    headers: &dyn Fn(&str) -> Option<String>,
    path_token: Option<&str>,
    body: &[u8],
) -> Result<(), AuthError> {
    let mut usable = expected
        .iter()
        .filter(|credential| credential.applies_to(endpoint) && !credential.is_empty())
        .peekable();
    if usable.peek().is_none() {
        return Err(AuthError::NotConfigured { endpoint });
    }
    let mut presented = false;
    for credential in usable {
        match check(endpoint, credential, headers, path_token, body) {
            Check::Accepted => return Ok(()),
            Check::Wrong => presented = true,
            Check::Absent => {}
        }
    }
    Err(if presented {
        AuthError::Wrong { endpoint }
    } else {
        AuthError::Missing { endpoint }
    })
}

enum Check {
    Accepted,
    Wrong,
    Absent,
}

fn check(
    endpoint: Endpoint,
    credential: &Credential<'_>,
    headers: &dyn Fn(&str) -> Option<String>,
    path_token: Option<&str>,
    body: &[u8],
) -> Check {
    let accepted = match credential {
        Credential::Bearer(token) => {
            let Some(value) = headers("authorization") else {
                return Check::Absent;
            };
            let bearer =
                strip_bearer(&value).is_some_and(|presented| tokens_equal(presented, token));
            // Harbor sends the header value it was given, verbatim.
            bearer || (endpoint == Endpoint::Harbor && tokens_equal(&value, token))
        }
        Credential::Hmac(secret) => {
            let header = if endpoint == Endpoint::GitHub {
                "x-hub-signature-256"
            } else {
                "x-signature-256"
            };
            let Some(value) = headers(header) else {
                return Check::Absent;
            };
            signature_matches(&value, secret, body)
        }
        Credential::PathToken(token) => {
            let Some(presented) = path_token else {
                return Check::Absent;
            };
            tokens_equal(presented, token)
        }
    };
    if accepted {
        Check::Accepted
    } else {
        Check::Wrong
    }
}

/// `Bearer <token>`, the scheme case-insensitive (RFC 9110 §11.1).
fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Equal in constant time: the digests have a fixed length, so neither content nor length leaks.
fn tokens_equal(presented: &str, expected: &str) -> bool {
    Sha256::digest(presented.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into()
}

/// `sha256=<hex>` over `body` with `secret`.
fn signature_matches(value: &str, secret: &[u8], body: &[u8]) -> bool {
    let Some(signature) = value.strip_prefix("sha256=").and_then(decode_hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |byte: u8| (byte as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests;
