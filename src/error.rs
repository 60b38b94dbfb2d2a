//! The one classification of failures, shared by every adapter (registry, git, forge) and carried through
//! `reconcile` to the daemon's scheduler: can this succeed later, and when?
//!
//! Must not: render messages or decide retries itself — adapters map their failures onto a class in one
//! function each, and the scheduler (or a bounded retry loop) acts on it.

use std::time::Duration;

/// Whether trying again can help, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network trouble, a server hiccup, a lock held by someone else: retry with exponential backoff.
    Transient,
    /// The other side asked us to slow down; `retry_after` is its hint, when it gave one.
    RateLimited { retry_after: Option<Duration> },
    /// Retrying the same thing cannot succeed (bad credentials, unknown repository, invalid data) until
    /// the config or the outside world changes.
    Permanent,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorClass::Permanent)
    }

    /// Rate limited, whatever the hint.
    pub fn is_rate_limited(self) -> bool {
        matches!(self, ErrorClass::RateLimited { .. })
    }

    /// A stable lower-case name, for logs and the `class` metric label.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited { .. } => "rate-limited",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
