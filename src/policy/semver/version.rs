//! node-semver versions: strict parsing (by hand, proven equal to node's `FULL` regex), `compare` and
//! `compareBuild`.

use std::cmp::Ordering;
use std::fmt;

use super::{FULL, MAX_LENGTH, MAX_SAFE_INTEGER, SemverError, js_trim};

/// A version as node-semver parses it (strict mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub prerelease: Vec<Identifier>,
    pub build: Vec<String>,
}

/// A prerelease identifier: numeric when it is all digits and below `MAX_SAFE_INTEGER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    Numeric(u64),
    Text(String),
}

impl Version {
    /// `new SemVer(text)` in strict mode (a leading `v` and surrounding whitespace are accepted, as in
    /// node-semver; callers that must not accept them check first).
    pub fn parse(text: &str) -> Result<Version, SemverError> {
        let invalid = || SemverError::InvalidVersion(text.to_string());
        if text.chars().count() > MAX_LENGTH {
            return Err(invalid());
        }
        parse_strict(js_trim(text)).ok_or_else(invalid)
    }

    /// The same as [`Version::parse`], through node-semver's own `FULL` regex; kept to prove the
    /// hand-written parser equal to it (property test in `semver/tests.rs`).
    pub fn parse_with_regex(text: &str) -> Result<Version, SemverError> {
        let invalid = || SemverError::InvalidVersion(text.to_string());
        if text.chars().count() > MAX_LENGTH {
            return Err(invalid());
        }
        let captures = FULL.captures(js_trim(text)).ok_or_else(invalid)?;
        let component = |index: usize| -> Result<u64, SemverError> {
            // The regex guarantees digits; a too-long number is above MAX_SAFE_INTEGER anyway.
            match captures[index].parse::<u64>() {
                Ok(value) if value <= MAX_SAFE_INTEGER => Ok(value),
                _ => Err(invalid()),
            }
        };
        let prerelease = captures
            .get(4)
            .map(|m| m.as_str().split('.').map(Identifier::parse).collect())
            .unwrap_or_default();
        let build = captures
            .get(5)
            .map(|m| m.as_str().split('.').map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Version {
            major: component(1)?,
            minor: component(2)?,
            patch: component(3)?,
            prerelease,
            build,
        })
    }

    pub fn is_prerelease(&self) -> bool {
        !self.prerelease.is_empty()
    }

    /// node-semver's `compare`: precedence, build metadata ignored.
    pub fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_prerelease(&self.prerelease, &other.prerelease))
    }

    /// node-semver's `compareBuild`: precedence, then build identifiers.
    pub fn compare_build(&self, other: &Version) -> Ordering {
        self.compare(other).then_with(|| {
            compare_lists(&self.build, &other.build, |a, b| {
                compare_identifier_text(a, b)
            })
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (index, identifier) in self.prerelease.iter().enumerate() {
            f.write_str(if index == 0 { "-" } else { "." })?;
            match identifier {
                Identifier::Numeric(value) => write!(f, "{value}")?,
                Identifier::Text(text) => f.write_str(text)?,
            }
        }
        Ok(())
    }
}

impl Identifier {
    fn parse(text: &str) -> Identifier {
        if !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && let Ok(value) = text.parse::<u64>()
            && value < MAX_SAFE_INTEGER
        {
            return Identifier::Numeric(value);
        }
        Identifier::Text(text.to_string())
    }
}

/// node-semver's strict `FULL` grammar, by hand (the regex with captures costs more than everything
/// else when ranking 10,000 tags): `v?MAJOR.MINOR.PATCH(-PRERELEASE)?(+BUILD)?`.
fn parse_strict(text: &str) -> Option<Version> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let (rest, build) = match text.split_once('+') {
        Some((rest, build)) => {
            let identifiers: Vec<String> = build.split('.').map(str::to_string).collect();
            if !identifiers.iter().all(|id| is_build_identifier(id)) {
                return None;
            }
            (rest, identifiers)
        }
        None => (text, Vec::new()),
    };
    let (main, prerelease) = match rest.split_once('-') {
        Some((main, pre)) => {
            let identifiers: Vec<&str> = pre.split('.').collect();
            if !identifiers.iter().all(|id| is_prerelease_identifier(id)) {
                return None;
            }
            (
                main,
                identifiers.into_iter().map(Identifier::parse).collect(),
            )
        }
        None => (rest, Vec::new()),
    };
    let mut parts = main.split('.');
    let mut component = || -> Option<u64> {
        let part = parts.next()?;
        if !is_numeric_identifier(part) {
            return None;
        }
        part.parse::<u64>()
            .ok()
            .filter(|value| *value <= MAX_SAFE_INTEGER)
    };
    let (major, minor, patch) = (component()?, component()?, component()?);
    if parts.next().is_some() {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
        prerelease,
        build,
    })
}

/// `0|[1-9]\d*`
fn is_numeric_identifier(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && (id == "0" || !id.starts_with('0'))
}

/// `\d*[a-zA-Z-][a-zA-Z0-9-]*` or a numeric identifier.
fn is_prerelease_identifier(id: &str) -> bool {
    is_build_identifier(id)
        && (id.bytes().any(|b| !b.is_ascii_digit()) || is_numeric_identifier(id))
}

/// `[a-zA-Z0-9-]+`
fn is_build_identifier(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn compare_prerelease(a: &[Identifier], b: &[Identifier]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        (false, false) => compare_lists(a, b, |x, y| match (x, y) {
            (Identifier::Numeric(x), Identifier::Numeric(y)) => x.cmp(y),
            (Identifier::Numeric(x), Identifier::Text(y)) => compare_number_text(*x, y),
            (Identifier::Text(x), Identifier::Numeric(y)) => compare_number_text(*y, x).reverse(),
            (Identifier::Text(x), Identifier::Text(y)) => compare_identifier_text(x, y),
        }),
    }
}

/// A numeric identifier against a text one: a text of digits only (too large to be numeric) compares
/// as a number, any other text is greater.
fn compare_number_text(number: u64, text: &str) -> Ordering {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let y = text.parse::<f64>().unwrap_or(f64::INFINITY);
        (number as f64).partial_cmp(&y).unwrap_or(Ordering::Equal)
    } else {
        Ordering::Less
    }
}

/// Element-wise comparison where a longer list wins when one is a prefix of the other.
fn compare_lists<T>(a: &[T], b: &[T], compare: impl Fn(&T, &T) -> Ordering) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = compare(x, y);
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// node-semver's `compareIdentifiers` on strings: numeric ones compare as JavaScript numbers (doubles)
/// and sort before alphanumeric ones; the rest compare by UTF-16 code units (ASCII here: bytes).
fn compare_identifier_text(a: &str, b: &str) -> Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        (true, true) => {
            let (x, y) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}
