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
}

impl RegistryError {
    /// Whether the daemon should try this again later.
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
            RegistryError::Unreachable { .. } => Some(
                "check the registry host and port; use `insecure: true` for a plain-HTTP registry and `caFile` for a private CA",
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
}
