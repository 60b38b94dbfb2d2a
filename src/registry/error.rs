//! The registry client's errors, and their classification into transient / rate-limited / permanent,
//! decided in one place ([`classify`]) from the HTTP status and the OCI error codes of the body.

use std::time::Duration;

use reqwest::StatusCode;

pub use crate::error::ErrorClass;

/// Classifies a failed response. `codes` are the OCI error codes (`{"errors":[{"code":…}]}`) of the body.
pub fn classify(status: StatusCode, codes: &[String], retry_after: Option<Duration>) -> ErrorClass {
    if status == StatusCode::TOO_MANY_REQUESTS || codes.iter().any(|code| code == "TOOMANYREQUESTS")
    {
        return ErrorClass::RateLimited { retry_after };
    }
    match status {
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            ErrorClass::Transient
        }
        StatusCode::REQUEST_TIMEOUT | StatusCode::INTERNAL_SERVER_ERROR
            if codes.iter().all(|code| code != "UNSUPPORTED") =>
        {
            ErrorClass::Transient
        }
        _ => ErrorClass::Permanent,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {host}: {reason}")]
    Settings { host: String, reason: String },
    #[error("registry {host}: cannot read credentials: {reason}")]
    Credentials { host: String, reason: String },
    #[error("cannot reach {url} (after {attempts} attempts)")]
    Unreachable {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// The registry's TLS certificate cannot be verified (unknown issuer, expired, another name).
    #[error("cannot verify the TLS certificate of {url}")]
    Certificate {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {host} refused access to {repository}: {reason}")]
    Unauthorized {
        host: String,
        repository: String,
        reason: String,
    },
    #[error("{url} answered {status}{}", status_suffix(codes, *attempts))]
    Status {
        url: String,
        status: StatusCode,
        codes: Vec<String>,
        class: ErrorClass,
        attempts: u32,
    },
    #[error("{url}: unexpected answer: {reason}")]
    InvalidResponse { url: String, reason: String },
    #[error("{url}: the answer is larger than {limit} bytes, the most read from one answer")]
    TooLarge { url: String, limit: usize },
    /// The tag listing stopped before the registry's last page. Never a shorter list instead: a policy
    /// choosing from part of a list could pick (and commit) an older tag than the real newest.
    #[error(
        "{url}: the tag list is incomplete, {truncation} ({pages} pages and {tags} tags read); no tag is chosen from part of a list"
    )]
    IncompleteListing {
        url: String,
        truncation: Truncation,
        pages: usize,
        tags: usize,
    },
}

/// Why a tag listing stopped before the registry's last page, and which limit it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// `limit` pages were read and the registry still announced a next one.
    Pages { limit: usize },
    /// The repository has more than `limit` distinct tags.
    Tags { limit: usize },
    /// The pages together (or one page alone) were larger than `limit` bytes.
    Bytes { limit: usize },
    /// A `Link` pointed at a page already read.
    LinkLoop,
    /// A page brought only tags already seen: the registry ignores `last`.
    RepeatedPage,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Truncation::Pages { limit } => write!(
                f,
                "the registry announced more pages than the {limit} one listing reads"
            ),
            Truncation::Tags { limit } => write!(
                f,
                "the repository has more tags than the {limit} one listing keeps"
            ),
            Truncation::Bytes { limit } => write!(
                f,
                "the tag lists are larger than the {limit} bytes one listing reads"
            ),
            Truncation::LinkLoop => {
                f.write_str("the registry's `Link` points back at a page already read")
            }
            Truncation::RepeatedPage => {
                f.write_str("a page repeated only tags already seen (the registry ignores `last`)")
            }
        }
    }
}

impl RegistryError {
    /// Whether the daemon should try this again later. An incomplete listing is permanent whatever
    /// stopped it: a repository too large for the caps, or a registry whose pagination loops, answers
    /// the same way on the next attempt (the daemon's next poll still tries again).
    pub fn class(&self) -> ErrorClass {
        match self {
            RegistryError::Unreachable { .. } => ErrorClass::Transient,
            RegistryError::Status { class, .. } => *class,
            _ => ErrorClass::Permanent,
        }
    }

    /// A fix, when one is known, for the `hint:` line of the report.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            RegistryError::Unauthorized { .. } => Some(
                "check the registry's credentials in tagwatch.yaml (env var, file or docker config.json)",
            ),
            RegistryError::Certificate { .. } => Some(
                "give the CA that signed the registry's certificate as `tls: { ca: FILE }` in the registry's entry of tagwatch.yaml, or have the certificate fixed",
            ),
            RegistryError::Unreachable { .. } => Some(
                "check the registry host and port; use `insecure: true` for a plain-HTTP registry and `caFile` for a private CA",
            ),
            RegistryError::IncompleteListing {
                truncation:
                    Truncation::Pages { .. } | Truncation::Tags { .. } | Truncation::Bytes { .. },
                ..
            } => Some(
                "the repository has more tags than tagwatch reads; delete old tags (a retention policy) or track a repository with fewer",
            ),
            RegistryError::IncompleteListing { .. } => Some(
                "the registry's tag pagination is broken; report it to the registry's operator",
            ),
            _ => None,
        }
    }
}

fn status_suffix(codes: &[String], attempts: u32) -> String {
    let mut suffix = String::new();
    if !codes.is_empty() {
        suffix.push_str(&format!(" ({})", codes.join(", ")));
    }
    if attempts > 1 {
        suffix.push_str(&format!(" after {attempts} attempts"));
    }
    suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_map_to_one_class() {
        let none: &[String] = &[];
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                none,
                Some(Duration::from_secs(3))
            ),
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            classify(
                StatusCode::FORBIDDEN,
                &["TOOMANYREQUESTS".to_string()],
                None
            ),
            ErrorClass::RateLimited { retry_after: None }
        );
        for status in [502, 503, 504, 500] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, none, None), ErrorClass::Transient);
        }
        for status in [400, 401, 403, 404] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, none, None), ErrorClass::Permanent);
        }
    }

    #[test]
    fn an_incomplete_listing_is_permanent_and_names_its_cause_and_limit() {
        for (truncation, named) in [
            (Truncation::Pages { limit: 1000 }, "1000"),
            (Truncation::Tags { limit: 100_000 }, "100000"),
            (Truncation::Bytes { limit: 16_777_216 }, "16777216 bytes"),
            (Truncation::LinkLoop, "page already read"),
            (Truncation::RepeatedPage, "ignores `last`"),
        ] {
            let error = RegistryError::IncompleteListing {
                url: "https://registry.test/v2/a/tags/list".to_string(),
                truncation,
                pages: 7,
                tags: 700,
            };
            assert_eq!(error.class(), ErrorClass::Permanent);
            assert!(error.hint().is_some());
            let message = error.to_string();
            for expected in [
                "https://registry.test/v2/a/tags/list",
                "incomplete",
                named,
                "7 pages and 700 tags",
            ] {
                assert!(message.contains(expected), "{expected:?} in {message}");
            }
        }
    }
}
