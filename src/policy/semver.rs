//! node-semver, exactly: versions, comparison and ranges as npm's `semver` package (7.x, non-loose)
//! defines them (SPEC §4: `resolve` must agree with `maxSatisfying`).
//!
//! node-semver's range grammar is a pipeline of regex rewrites (hyphen ranges, carets, tildes, x-ranges,
//! stars) that desugars every range into sets of primitive comparators. The rewrites are ported here
//! step by step with the same regular expressions (node's bounded "safe" variants), because the quirks of
//! that pipeline *are* the semantics; the `semver` crate's `VersionReq` has Cargo's semantics, which differ.
//! The test oracle (tests/it/semver_oracle.rs) runs node-semver itself on real tag lists.
//!
//! Must not: know about tags, policies or `v` prefixes (that is `policy`).

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// node-semver's `MAX_LENGTH`: longer version strings are invalid.
const MAX_LENGTH: usize = 256;
/// node-semver's `MAX_SAFE_BUILD_LENGTH` (the shortest version with a build is `0.0.0+X`).
const MAX_SAFE_BUILD_LENGTH: usize = MAX_LENGTH - 6;
/// JavaScript's `Number.MAX_SAFE_INTEGER`: version components above it are invalid in node-semver.
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemverError {
    #[error("invalid version {0:?}")]
    InvalidVersion(String),
    #[error("invalid semver range {range:?}: invalid comparator {comparator:?}")]
    InvalidComparator { range: String, comparator: String },
    #[error("invalid semver range {range:?}: a version number is too large")]
    NumberTooLarge { range: String },
}

// ---- the regular expressions of node-semver's internal/re.js -------------------------------------

/// node-semver's `makeSafeRegex`: bounds `\s*`, `\s+`, `\d*`, `\d+` and identifier repetitions; then
/// `\d` becomes `[0-9]` because Rust's `\d` is Unicode-aware and JavaScript's is not.
fn safe(source: &str) -> String {
    let mut value = source.to_string();
    for (token, max) in [
        (r"\s", 1),
        (r"\d", MAX_LENGTH),
        ("[a-zA-Z0-9-]", MAX_SAFE_BUILD_LENGTH),
    ] {
        value = value
            .replace(&format!("{token}*"), &format!("{token}{{0,{max}}}"))
            .replace(&format!("{token}+"), &format!("{token}{{1,{max}}}"));
    }
    value.replace(r"\d", "[0-9]")
}

struct Sources {
    build: String,
    full_plain: String,
    loose_plain: String,
    gtlt: String,
    xrange_plain: String,
}

static SOURCES: LazyLock<Sources> = LazyLock::new(|| {
    let numeric = r"0|[1-9]\d*";
    let numeric_loose = r"\d+";
    let non_numeric = r"\d*[a-zA-Z-][a-zA-Z0-9-]*";
    let main = format!(r"({numeric})\.({numeric})\.({numeric})");
    let main_loose = format!(r"({numeric_loose})\.({numeric_loose})\.({numeric_loose})");
    let pre_id = format!("(?:{non_numeric}|{numeric})");
    let pre_id_loose = format!("(?:{non_numeric}|{numeric_loose})");
    let prerelease = format!(r"(?:-({pre_id}(?:\.{pre_id})*))");
    let prerelease_loose = format!(r"(?:-?({pre_id_loose}(?:\.{pre_id_loose})*))");
    let build_id = "[a-zA-Z0-9-]+";
    let build = format!(r"(?:\+({build_id}(?:\.{build_id})*))");
    let full_plain = format!("v?{main}{prerelease}?{build}?");
    let loose_plain = format!(r"[v=\s]*{main_loose}{prerelease_loose}?{build}?");
    let gtlt = "((?:<|>)?=?)".to_string();
    let xid = format!(r"{numeric}|x|X|\*");
    let xrange_plain =
        format!(r"[v=\s]*({xid})(?:\.({xid})(?:\.({xid})(?:{prerelease})?{build}?)?)?");
    Sources {
        build,
        full_plain,
        loose_plain,
        gtlt,
        xrange_plain,
    }
});

struct Patterns {
    full: Regex,
    build_strip: Regex,
    build: Regex,
    hyphen_range: Regex,
    comparator_trim: Regex,
    tilde_trim: Regex,
    caret_trim: Regex,
    tilde: Regex,
    caret: Regex,
    xrange: Regex,
    star: Regex,
    gte0: Regex,
    gte0_pre: Regex,
    comparator: Regex,
    whitespace: Regex,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let s = &*SOURCES;
    let compile = |source: String| Regex::new(&safe(&source)).expect("node-semver regex compiles");
    Patterns {
        full: compile(format!("^{}$", s.full_plain)),
        // Range strips build metadata with the unbounded source regex, everything else uses safe ones.
        build_strip: Regex::new(&s.build.replace(r"\d", "[0-9]")).expect("regex compiles"),
        build: compile(s.build.clone()),
        hyphen_range: compile(format!(r"^\s*({xr})\s+-\s+({xr})\s*$", xr = s.xrange_plain)),
        comparator_trim: compile(format!(
            r"(\s*){}\s*({}|{})",
            s.gtlt, s.loose_plain, s.xrange_plain
        )),
        tilde_trim: compile(r"(\s*)(?:~>?)\s+".to_string()),
        caret_trim: compile(r"(\s*)(?:\^)\s+".to_string()),
        tilde: compile(format!("^(?:~>?){}$", s.xrange_plain)),
        caret: compile(format!(r"^(?:\^){}$", s.xrange_plain)),
        xrange: compile(format!(r"^{}\s*{}$", s.gtlt, s.xrange_plain)),
        star: compile(r"(<|>)?=?\s*\*".to_string()),
        gte0: compile(r"^\s*>=\s*0\.0\.0\s*$".to_string()),
        gte0_pre: compile(r"^\s*>=\s*0\.0\.0-0\s*$".to_string()),
        comparator: compile(format!(r"^{}\s*({})$|^$", s.gtlt, s.full_plain)),
        whitespace: Regex::new(r"\s+").expect("regex compiles"),
    }
});

// ---- versions --------------------------------------------------------------------------------------

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
    /// hand-written parser equal to it (property test below).
    pub fn parse_with_regex(text: &str) -> Result<Version, SemverError> {
        let invalid = || SemverError::InvalidVersion(text.to_string());
        if text.chars().count() > MAX_LENGTH {
            return Err(invalid());
        }
        let captures = PATTERNS.full.captures(js_trim(text)).ok_or_else(invalid)?;
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
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(value) = text.parse::<u64>() {
                if value < MAX_SAFE_INTEGER {
                    return Identifier::Numeric(value);
                }
            }
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

// ---- ranges ----------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// One primitive comparator; `version: None` is node-semver's `ANY` (the empty comparator).
#[derive(Debug, Clone, PartialEq)]
struct Comparator {
    operator: Operator,
    version: Option<Version>,
    /// node-semver's `value`: the operator and version text, used to de-duplicate.
    value: String,
}

/// A parsed node-semver range: a disjunction of comparator sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    raw: String,
    include_prerelease: bool,
    sets: Vec<Vec<Comparator>>,
}

impl Range {
    /// `new Range(text, { includePrerelease })`.
    pub fn parse(text: &str, include_prerelease: bool) -> Result<Range, SemverError> {
        let raw = PATTERNS
            .whitespace
            .replace_all(js_trim(text), " ")
            .into_owned();
        let mut sets = Vec::new();
        for part in raw.split("||") {
            let set = parse_set(js_trim(part), include_prerelease, &raw)?;
            if !set.is_empty() {
                sets.push(set);
            }
        }
        if sets.len() > 1 {
            // Null sets go unless all are null; a lone `*` set swallows the others.
            let first = sets[0].clone();
            sets.retain(|set| !is_null_set(&set[0]));
            if sets.is_empty() {
                sets = vec![first];
            } else if sets.len() > 1 {
                if let Some(any) = sets
                    .iter()
                    .find(|set| set.len() == 1 && set[0].version.is_none())
                {
                    sets = vec![any.clone()];
                }
            }
        }
        Ok(Range {
            raw,
            include_prerelease,
            sets,
        })
    }

    /// The range as written (whitespace collapsed).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn include_prerelease(&self) -> bool {
        self.include_prerelease
    }

    /// `range.test(version)`.
    pub fn test(&self, version: &Version) -> bool {
        self.sets.iter().any(|set| self.test_set(set, version))
    }

    /// Whether some comparator set admits `version` when the prerelease rule is left out: tells "a
    /// prerelease the range does not name" apart from "outside the range".
    pub fn test_ignoring_prerelease_rule(&self, version: &Version) -> bool {
        self.sets
            .iter()
            .any(|set| set.iter().all(|comparator| comparator.test(version)))
    }

    fn test_set(&self, set: &[Comparator], version: &Version) -> bool {
        if !set.iter().all(|comparator| comparator.test(version)) {
            return false;
        }
        if version.is_prerelease() && !self.include_prerelease {
            // A prerelease passes only when some comparator names a prerelease of the same
            // MAJOR.MINOR.PATCH.
            return set.iter().any(|comparator| {
                comparator.version.as_ref().is_some_and(|allowed| {
                    allowed.is_prerelease()
                        && (allowed.major, allowed.minor, allowed.patch)
                            == (version.major, version.minor, version.patch)
                })
            });
        }
        true
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Comparator {
    fn parse(text: &str, range: &str) -> Result<Comparator, SemverError> {
        let collapsed = js_split_whitespace(js_trim(text)).join(" ");
        let invalid = || SemverError::InvalidComparator {
            range: range.to_string(),
            comparator: collapsed.clone(),
        };
        let captures = PATTERNS
            .comparator
            .captures(&collapsed)
            .ok_or_else(invalid)?;
        let operator = match captures.get(1).map_or("", |m| m.as_str()) {
            "" | "=" => Operator::Equal,
            "<" => Operator::Less,
            "<=" => Operator::LessOrEqual,
            ">" => Operator::Greater,
            ">=" => Operator::GreaterOrEqual,
            _ => return Err(invalid()),
        };
        match captures.get(2) {
            None => Ok(Comparator {
                operator: Operator::Equal,
                version: None,
                value: String::new(),
            }),
            Some(version) => {
                let version = Version::parse(version.as_str()).map_err(|_| invalid())?;
                let symbol = match operator {
                    Operator::Equal => "",
                    Operator::Less => "<",
                    Operator::LessOrEqual => "<=",
                    Operator::Greater => ">",
                    Operator::GreaterOrEqual => ">=",
                };
                Ok(Comparator {
                    operator,
                    value: format!("{symbol}{version}"),
                    version: Some(version),
                })
            }
        }
    }

    fn test(&self, version: &Version) -> bool {
        let Some(bound) = &self.version else {
            return true;
        };
        let order = version.compare(bound);
        match self.operator {
            Operator::Equal => order == Ordering::Equal,
            Operator::Less => order == Ordering::Less,
            Operator::LessOrEqual => order != Ordering::Greater,
            Operator::Greater => order == Ordering::Greater,
            Operator::GreaterOrEqual => order != Ordering::Less,
        }
    }
}

fn is_null_set(comparator: &Comparator) -> bool {
    comparator.value == "<0.0.0-0"
}

/// `Range.parseRange`: one `||` alternative into its comparators.
fn parse_set(
    text: &str,
    include_prerelease: bool,
    raw: &str,
) -> Result<Vec<Comparator>, SemverError> {
    let p = &*PATTERNS;
    let text = p.build_strip.replace_all(text, "");
    let text = replace_first(&p.hyphen_range, &text, |c| {
        hyphen_replace(c, include_prerelease)
    })
    .map_err(|()| too_large(raw))?;
    let text = p.comparator_trim.replace_all(&text, "${1}${2}${3}");
    let text = p.tilde_trim.replace_all(&text, "${1}~");
    let text = p.caret_trim.replace_all(&text, "${1}^");

    let mut rewritten = Vec::new();
    for comparator in text.split(' ') {
        rewritten
            .push(parse_comparator(comparator, include_prerelease).map_err(|()| too_large(raw))?);
    }
    let joined = rewritten.join(" ");
    let gte0 = if include_prerelease {
        &p.gte0_pre
    } else {
        &p.gte0
    };

    let mut comparators: Vec<Comparator> = Vec::new();
    for piece in js_split_whitespace(&joined) {
        let piece = gte0.replace(js_trim(piece), "");
        let comparator = Comparator::parse(&piece, raw)?;
        if is_null_set(&comparator) {
            return Ok(vec![comparator]);
        }
        // A Map keyed by value: a repeated comparator keeps its first position.
        if !comparators.iter().any(|c| c.value == comparator.value) {
            comparators.push(comparator);
        }
    }
    if comparators.len() > 1 {
        comparators.retain(|c| !c.value.is_empty());
    }
    Ok(comparators)
}

fn too_large(range: &str) -> SemverError {
    SemverError::NumberTooLarge {
        range: range.to_string(),
    }
}

/// `parseComparator`: carets, tildes, x-ranges, stars.
fn parse_comparator(text: &str, include_prerelease: bool) -> Result<String, ()> {
    let p = &*PATTERNS;
    let text = p.build.replace(text, "").into_owned();
    let text = map_pieces(js_trim(&text), |piece| {
        replace_first(&p.caret, piece, |c| caret(c, include_prerelease))
    })?;
    let text = map_pieces(js_trim(&text), |piece| {
        replace_first(&p.tilde, piece, |c| tilde(c, include_prerelease))
    })?;
    // replaceXRanges splits without trimming first.
    let text = map_pieces(&text, |piece| {
        let piece = js_trim(piece);
        replace_first(&p.xrange, piece, |c| xrange(c, piece, include_prerelease))
    })?;
    Ok(p.star.replace(js_trim(&text), "").into_owned())
}

fn map_pieces(text: &str, mut each: impl FnMut(&str) -> Result<String, ()>) -> Result<String, ()> {
    let pieces: Result<Vec<String>, ()> = js_split_whitespace(text)
        .into_iter()
        .map(&mut each)
        .collect();
    Ok(pieces?.join(" "))
}

/// `String.prototype.replace` with a non-global regex and a callback.
fn replace_first(
    regex: &Regex,
    text: &str,
    replacement: impl FnOnce(&Captures) -> Result<String, ()>,
) -> Result<String, ()> {
    match regex.captures(text) {
        None => Ok(text.to_string()),
        Some(captures) => {
            let whole = captures.get(0).expect("group 0 always matches");
            Ok(format!(
                "{}{}{}",
                &text[..whole.start()],
                replacement(&captures)?,
                &text[whole.end()..]
            ))
        }
    }
}

fn group<'t>(captures: &Captures<'t>, index: usize) -> Option<&'t str> {
    captures.get(index).map(|m| m.as_str())
}

/// node-semver's `isX`: absent, `x`, `X` or `*`.
fn is_x(id: Option<&str>) -> bool {
    match id {
        None | Some("") => true,
        Some(id) => id.eq_ignore_ascii_case("x") || id == "*",
    }
}

/// `+id + 1` on a numeric component.
fn plus_one(id: Option<&str>) -> Result<u64, ()> {
    let value: u64 = id.unwrap_or("0").parse().map_err(|_| ())?;
    value.checked_add(1).ok_or(())
}

fn tilde(c: &Captures, include_prerelease: bool) -> Result<String, ()> {
    let z = if include_prerelease { "-0" } else { "" };
    let (major, minor, patch, pre) = (group(c, 1), group(c, 2), group(c, 3), group(c, 4));
    let (ma, mi, pa) = (
        major.unwrap_or(""),
        minor.unwrap_or(""),
        patch.unwrap_or(""),
    );
    Ok(if is_x(major) {
        String::new()
    } else if is_x(minor) {
        format!(">={ma}.0.0{z} <{}.0.0-0", plus_one(major)?)
    } else if is_x(patch) {
        format!(">={ma}.{mi}.0{z} <{ma}.{}.0-0", plus_one(minor)?)
    } else if let Some(pre) = pre.filter(|p| !p.is_empty()) {
        format!(">={ma}.{mi}.{pa}-{pre} <{ma}.{}.0-0", plus_one(minor)?)
    } else {
        format!(">={ma}.{mi}.{pa} <{ma}.{}.0-0", plus_one(minor)?)
    })
}

fn caret(c: &Captures, include_prerelease: bool) -> Result<String, ()> {
    let z = if include_prerelease { "-0" } else { "" };
    let (major, minor, patch, pre) = (group(c, 1), group(c, 2), group(c, 3), group(c, 4));
    let (ma, mi, pa) = (
        major.unwrap_or(""),
        minor.unwrap_or(""),
        patch.unwrap_or(""),
    );
    let pre = pre.filter(|p| !p.is_empty()).map(|p| format!("-{p}"));
    Ok(if is_x(major) {
        String::new()
    } else if is_x(minor) {
        format!(">={ma}.0.0{z} <{}.0.0-0", plus_one(major)?)
    } else if is_x(patch) {
        if ma == "0" {
            format!(">={ma}.{mi}.0{z} <{ma}.{}.0-0", plus_one(minor)?)
        } else {
            format!(">={ma}.{mi}.0{z} <{}.0.0-0", plus_one(major)?)
        }
    } else {
        // With or without a prerelease the upper bound is the same; only the lower bound differs.
        let lower = format!(">={ma}.{mi}.{pa}{}", pre.as_deref().unwrap_or(""));
        if ma == "0" {
            if mi == "0" {
                format!("{lower} <{ma}.{mi}.{}-0", plus_one(patch)?)
            } else {
                format!("{lower} <{ma}.{}.0-0", plus_one(minor)?)
            }
        } else {
            format!("{lower} <{}.0.0-0", plus_one(major)?)
        }
    })
}

fn xrange(c: &Captures, whole: &str, include_prerelease: bool) -> Result<String, ()> {
    let mut gtlt = group(c, 1).unwrap_or("").to_string();
    let (major, minor, patch) = (group(c, 2), group(c, 3), group(c, 4));
    // invalidXRangeOrder: `x.1` or `1.x.1` are left as they are (and fail as comparators).
    if (is_x(major) && !is_x(minor)) || (is_x(minor) && patch.is_some() && !is_x(patch)) {
        return Ok(whole.to_string());
    }
    let x_major = is_x(major);
    let x_minor = x_major || is_x(minor);
    let x_patch = x_minor || is_x(patch);
    if gtlt == "=" && x_patch {
        gtlt.clear();
    }
    let mut pr = if include_prerelease { "-0" } else { "" };
    let ma = major.unwrap_or("");
    Ok(if x_major {
        if gtlt == ">" || gtlt == "<" {
            "<0.0.0-0".to_string()
        } else {
            "*".to_string()
        }
    } else if !gtlt.is_empty() && x_patch {
        let mut m: u64 = if x_minor { 0 } else { parse_number(minor)? };
        let mut big_m: u64 = parse_number(major)?;
        let mut p = 0;
        if gtlt == ">" {
            gtlt = ">=".to_string();
            if x_minor {
                big_m = big_m.checked_add(1).ok_or(())?;
                m = 0;
                p = 0;
            } else {
                m = m.checked_add(1).ok_or(())?;
                p = 0;
            }
        } else if gtlt == "<=" {
            gtlt = "<".to_string();
            if x_minor {
                big_m = big_m.checked_add(1).ok_or(())?;
            } else {
                m = m.checked_add(1).ok_or(())?;
            }
        }
        if gtlt == "<" {
            pr = "-0";
        }
        format!("{gtlt}{big_m}.{m}.{p}{pr}")
    } else if x_minor {
        format!(">={ma}.0.0{pr} <{}.0.0-0", plus_one(major)?)
    } else if x_patch {
        let mi = minor.unwrap_or("");
        format!(">={ma}.{mi}.0{pr} <{ma}.{}.0-0", plus_one(minor)?)
    } else {
        c.get(0).expect("group 0").as_str().to_string()
    })
}

fn parse_number(id: Option<&str>) -> Result<u64, ()> {
    id.unwrap_or("0").parse().map_err(|_| ())
}

fn hyphen_replace(c: &Captures, include_prerelease: bool) -> Result<String, ()> {
    let z = if include_prerelease { "-0" } else { "" };
    let from_text = group(c, 1).unwrap_or("");
    let (f_major, f_minor, f_patch, f_pre) = (group(c, 2), group(c, 3), group(c, 4), group(c, 5));
    let to_text = group(c, 7).unwrap_or("");
    let (t_major, t_minor, t_patch, t_pre) = (group(c, 8), group(c, 9), group(c, 10), group(c, 11));
    let fm = f_major.unwrap_or("");
    let from = if is_x(f_major) {
        String::new()
    } else if is_x(f_minor) {
        format!(">={fm}.0.0{z}")
    } else if is_x(f_patch) {
        format!(">={fm}.{}.0{z}", f_minor.unwrap_or(""))
    } else if f_pre.is_some_and(|p| !p.is_empty()) {
        format!(">={from_text}")
    } else {
        format!(">={from_text}{z}")
    };
    let (tm, tmi, tp) = (
        t_major.unwrap_or(""),
        t_minor.unwrap_or(""),
        t_patch.unwrap_or(""),
    );
    let to = if is_x(t_major) {
        String::new()
    } else if is_x(t_minor) {
        format!("<{}.0.0-0", plus_one(t_major)?)
    } else if is_x(t_patch) {
        format!("<{tm}.{}.0-0", plus_one(t_minor)?)
    } else if let Some(pre) = t_pre.filter(|p| !p.is_empty()) {
        format!("<={tm}.{tmi}.{tp}-{pre}")
    } else if include_prerelease {
        format!("<{tm}.{tmi}.{}-0", plus_one(t_patch)?)
    } else {
        format!("<={to_text}")
    };
    Ok(js_trim(&format!("{from} {to}")).to_string())
}

/// JavaScript's `String.prototype.trim`.
fn js_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// JavaScript's `text.split(/\s+/)`: empty strings at the ends are kept.
fn js_split_whitespace(text: &str) -> Vec<&str> {
    PATTERNS.whitespace.split(text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn satisfies(version: &str, range: &str) -> bool {
        Range::parse(range, false)
            .unwrap()
            .test(&Version::parse(version).unwrap())
    }

    #[test]
    fn desugared_ranges_match_node_semver_examples() {
        // Cases from node-semver's README.
        assert!(satisfies("1.2.3", "^1.2"));
        assert!(satisfies("1.9.9", "^1.2"));
        assert!(!satisfies("2.0.0", "^1.2"));
        assert!(satisfies("0.2.5", "^0.2.3"));
        assert!(!satisfies("0.3.0", "^0.2.3"));
        assert!(!satisfies("0.0.4", "^0.0.3"));
        assert!(satisfies("1.2.9", "~1.2.3"));
        assert!(!satisfies("1.3.0", "~1.2.3"));
        assert!(satisfies("1.4.7", "1.2 - 1.4"));
        assert!(!satisfies("1.5.0", "1.2 - 1.4"));
        assert!(satisfies("1.9.0", "1.x"));
        assert!(satisfies("1.5.0", ">=1.2.0 <2"));
        assert!(satisfies("3.0.0", "^1 || ^3"));
        assert!(satisfies("3.0.0", "*"));
        assert!(satisfies("1.2.3", "> 1.2.2 < 1.2.4"));
    }

    #[test]
    fn prereleases_need_a_comparator_on_the_same_tuple() {
        assert!(satisfies("1.2.3-alpha.7", ">1.2.3-alpha.3"));
        assert!(!satisfies("3.4.5-alpha.9", ">1.2.3-alpha.3"));
        assert!(!satisfies("1.3.0-rc.1", "^1.2"));
        let range = Range::parse("^1.2", true).unwrap();
        assert!(range.test(&Version::parse("1.3.0-rc.1").unwrap()));
    }

    #[test]
    fn invalid_ranges_are_errors() {
        for range in ["not a range", "^1.2.3.4", ">=x.1", "1.2.3 -"] {
            assert!(Range::parse(range, false).is_err(), "{range}");
        }
    }

    #[test]
    fn precedence_and_build_order() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(
            v("1.0.0-alpha").compare(&v("1.0.0-alpha.1")),
            Ordering::Less
        );
        assert_eq!(
            v("1.0.0-alpha.1").compare(&v("1.0.0-alpha.beta")),
            Ordering::Less
        );
        assert_eq!(v("1.0.0-rc.1").compare(&v("1.0.0")), Ordering::Less);
        assert_eq!(v("1.0.0-2").compare(&v("1.0.0-10")), Ordering::Less);
        assert_eq!(v("1.2.3+a").compare(&v("1.2.3+b")), Ordering::Equal);
        assert_eq!(v("1.2.3+a").compare_build(&v("1.2.3+b")), Ordering::Less);
        assert_eq!(v("1.2.3").compare_build(&v("1.2.3+b")), Ordering::Less);
        assert!(Version::parse("01.2.3").is_err());
        assert!(Version::parse("1.2").is_err());
        assert!(Version::parse("9007199254740992.0.0").is_err());
    }

    proptest::proptest! {
        /// The hand-written parser and node-semver's regex agree on version-like strings.
        #[test]
        fn hand_parser_equals_the_regex(text in "v?[0-9]{1,3}(\\.[0-9x]{1,2}){0,3}(-[0-9a-z.-]{0,8})?(\\+[0-9a-z.-]{0,6})?") {
            proptest::prop_assert_eq!(Version::parse(&text), Version::parse_with_regex(&text));
        }
    }
}
