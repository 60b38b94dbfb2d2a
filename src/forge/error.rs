//! Forge errors and their class (STYLE: errors know whether they can succeed later).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

pub use crate::error::ErrorClass;

/// An error from a forge call. URLs are redacted and the token never appears (it is only ever sent in a
/// header marked sensitive, and scrubbed from any message the forge echoes back).
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{method} {url} answered {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
        class: ErrorClass,
        /// How long the forge asked us to wait (rate limits), when it said.
        retry_after: Option<Duration>,
    },
    #[error("{method} {url} failed")]
    Transport {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered with a body tagwatch does not understand")]
    Decode {
        method: String,
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("forge settings: {0}")]
    Settings(String),
    /// The forge refuses to merge now: a required check or approval, a draft, a closed pull request,
    /// a branch protection rule.
    #[error("pull request {number} cannot be merged: {message}")]
    NotMergeable { number: u64, message: String },
    /// The head conflicts with the base.
    #[error("pull request {number} conflicts with its base: {message}")]
    MergeConflict { number: u64, message: String },
    /// The head is not the commit tagwatch decided to merge: someone pushed to the branch, or
    /// tagwatch itself rebuilt it since.
    #[error("pull request {number} was not merged: its head is {} instead of {expected}", found.as_deref().unwrap_or("unknown"))]
    HeadMoved {
        number: u64,
        expected: String,
        found: Option<String>,
    },
}

impl ForgeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ForgeError::Status {
                class: ErrorClass::RateLimited { .. },
                retry_after,
                ..
            } => ErrorClass::RateLimited {
                retry_after: *retry_after,
            },
            ForgeError::Status { class, .. } => *class,
            ForgeError::Transport { .. } => ErrorClass::Transient,
            ForgeError::Decode { .. }
            | ForgeError::Settings(_)
            | ForgeError::NotMergeable { .. }
            | ForgeError::MergeConflict { .. }
            | ForgeError::HeadMoved { .. } => ErrorClass::Permanent,
        }
    }

    /// The wait the forge asked for, for the scheduler to honour when this call gave up.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ForgeError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A known fix, for the `hint:` line of the report at the edge.
    pub fn hint(&self) -> Option<&'static str> {
        match self.status()? {
            401 => Some(
                "the forge rejected the token: check the variable named by writeBack.forge.tokenEnv \
                 and that the token has not expired",
            ),
            403 if self.class() == ErrorClass::Permanent => Some(
                "the token lacks a permission: it needs write access to pull requests (GitHub: \
                 `pull_requests: write`; GitLab: the `api` scope; Gitea/Forgejo: `write:repository`)",
            ),
            404 => Some(
                "check writeBack.forge.api and .repo: the forge knows no such repository, or the \
                 token cannot see it",
            ),
            _ => None,
        }
    }

    /// HTTP status, when the forge answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A refused merge as its own error: `405` (not mergeable now, or conflicts when the message says so),
/// `409` (the head moved: GitHub, GitLab, and Gitea's "head out of date"), GitLab's `422` (the merge
/// failed: conflicts). Any other error is returned as it is.
pub fn merge_refusal(error: ForgeError, number: u64, expected_head_sha: &str) -> ForgeError {
    let ForgeError::Status {
        status, message, ..
    } = &error
    else {
        return error;
    };
    let lower = message.to_ascii_lowercase();
    match status {
        405 | 422 if lower.contains("conflict") || lower.contains("cannot be merged") => {
            ForgeError::MergeConflict {
                number,
                message: message.clone(),
            }
        }
        405 => ForgeError::NotMergeable {
            number,
            message: message.clone(),
        },
        409 if lower.contains("conflict") && !lower.contains("head") => ForgeError::MergeConflict {
            number,
            message: message.clone(),
        },
        409 => ForgeError::HeadMoved {
            number,
            expected: expected_head_sha.to_string(),
            found: None,
        },
        _ => error,
    }
}

/// The one place that maps an answer to an [`ErrorClass`].
///
/// GitHub signals rate limits with 429, or with 403 plus `x-ratelimit-remaining: 0` (primary limit) or a
/// `retry-after` header or "secondary rate limit" message (secondary limit); GitLab with 429.
pub fn classify(status: StatusCode, headers: &HeaderMap, message: &str) -> ErrorClass {
    let remaining_zero = header_str(headers, "x-ratelimit-remaining")
        .or_else(|| header_str(headers, "ratelimit-remaining"))
        .is_some_and(|value| value.trim() == "0");
    match status.as_u16() {
        429 => ErrorClass::RateLimited { retry_after: None },
        403 if remaining_zero
            || headers.contains_key("retry-after")
            || message.to_ascii_lowercase().contains("rate limit") =>
        {
            ErrorClass::RateLimited { retry_after: None }
        }
        408 | 500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn rate_limits_are_told_from_permission_errors() {
        let forbidden = StatusCode::FORBIDDEN;
        assert_eq!(
            classify(forbidden, &headers(&[]), "Resource not accessible"),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(
                forbidden,
                &headers(&[("x-ratelimit-remaining", "0")]),
                "API rate limit exceeded"
            ),
            ErrorClass::RateLimited { retry_after: None }
        );
        assert_eq!(
            classify(forbidden, &headers(&[("retry-after", "60")]), ""),
            ErrorClass::RateLimited { retry_after: None }
        );
        assert_eq!(
            classify(
                forbidden,
                &headers(&[]),
                "You have exceeded a secondary rate limit"
            ),
            ErrorClass::RateLimited { retry_after: None }
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &headers(&[]), ""),
            ErrorClass::RateLimited { retry_after: None }
        );
    }

    fn answered(status: u16, message: &str) -> ForgeError {
        ForgeError::Status {
            method: "PUT".into(),
            url: "https://forge.example/merge".into(),
            status,
            message: message.into(),
            class: ErrorClass::Permanent,
            retry_after: None,
        }
    }

    #[test]
    fn merge_refusals_become_their_own_permanent_errors() {
        // The forge's atomic check of the expected head (GitHub, GitLab 409; Gitea "head out of date").
        for message in [
            "Head branch was modified. Review and try the merge again.",
            "SHA does not match HEAD of source branch: abc",
            "head out of date",
        ] {
            let error = merge_refusal(answered(409, message), 7, "abc");
            assert!(
                matches!(error, ForgeError::HeadMoved { number: 7, .. }),
                "{error:?}"
            );
            assert_eq!(error.class(), ErrorClass::Permanent);
        }
        assert!(matches!(
            merge_refusal(
                answered(409, "merge conflicts: CONFLICT (content)"),
                7,
                "abc"
            ),
            ForgeError::MergeConflict { .. }
        ));
        assert!(matches!(
            merge_refusal(answered(422, "Branch cannot be merged"), 7, "abc"),
            ForgeError::MergeConflict { .. }
        ));
        assert!(matches!(
            merge_refusal(answered(405, "Pull Request is not mergeable"), 7, "abc"),
            ForgeError::NotMergeable { .. }
        ));
        // Anything else stays what it was (a rate limit is still retried later).
        assert!(matches!(
            merge_refusal(answered(403, "Resource not accessible"), 7, "abc"),
            ForgeError::Status { status: 403, .. }
        ));
    }

    #[test]
    fn server_errors_are_transient_and_client_errors_permanent() {
        let none = headers(&[]);
        assert_eq!(
            classify(StatusCode::BAD_GATEWAY, &none, ""),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, &none, ""),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(StatusCode::UNPROCESSABLE_ENTITY, &none, ""),
            ErrorClass::Permanent
        );
    }
}
