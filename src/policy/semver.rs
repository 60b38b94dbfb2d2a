//! node-semver, exactly: versions, comparison and ranges as npm's `semver` package (7.x, non-loose)
//! defines them (docs/reference/policy.md: `resolve` must agree with `maxSatisfying`).
//!
//! node-semver's range grammar is a pipeline of regex rewrites (hyphen ranges, carets, tildes, x-ranges,
//! stars) that desugars every range into sets of primitive comparators. The rewrites are ported here
//! step by step with the same regular expressions (node's bounded "safe" variants), because the quirks of
//! that pipeline *are* the semantics; the `semver` crate's `VersionReq` has Cargo's semantics, which differ.
//! The test oracle (tests/it/semver_oracle.rs) runs node-semver itself on real tag lists.
//!
//! Must not: know about tags, policies or `v` prefixes (that is `policy`).

mod version;

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use regex::{Captures, Regex};

pub use self::version::{Identifier, Version};

/// node-semver's `MAX_LENGTH`: longer version strings are invalid.
const MAX_LENGTH: usize = 256;
/// node-semver's `MAX_SAFE_BUILD_LENGTH` (the shortest version with a build is `0.0.0+X`).
const MAX_SAFE_BUILD_LENGTH: usize = MAX_LENGTH - 6;
/// JavaScript's `Number.MAX_SAFE_INTEGER`: version components above it are invalid in node-semver.
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

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

/// The patterns of range parsing ([`Range::parse`]). Together they take about 3 MB (the bounded
/// repetitions make large automata, and each thread that matches keeps its own caches), and a process
/// needs them only while it loads policies: so they are compiled on first use, shared by every parse
/// until [`release_range_patterns`], and compiled again if a range is parsed after that. Tags are
/// matched without them ([`Version::parse`] is hand-written).
struct Patterns {
    build_strip: LazyLock<Regex>,
    build: LazyLock<Regex>,
    hyphen_range: LazyLock<Regex>,
    comparator_trim: LazyLock<Regex>,
    tilde_trim: LazyLock<Regex>,
    caret_trim: LazyLock<Regex>,
    tilde: LazyLock<Regex>,
    caret: LazyLock<Regex>,
    xrange: LazyLock<Regex>,
    star: LazyLock<Regex>,
    gte0: LazyLock<Regex>,
    gte0_pre: LazyLock<Regex>,
    comparator: LazyLock<Regex>,
    whitespace: LazyLock<Regex>,
}

/// Compiles a node-semver source pattern with its unbounded repetitions made safe.
fn compile(source: String) -> Regex {
    Regex::new(&safe(&source)).expect("node-semver regex compiles")
}

/// node-semver's `FULL`: a version; only [`Version::parse_with_regex`] uses it, the proof of the
/// hand-written [`Version::parse`].
static FULL: LazyLock<Regex> = LazyLock::new(|| compile(format!("^{}$", SOURCES.full_plain)));

/// The range patterns while they are held (see [`Patterns`]).
static RANGE_PATTERNS: Mutex<Option<Arc<Patterns>>> = Mutex::new(None);

/// The range patterns, compiled if released (each pattern still on its first use: a process that
/// parses one range pays for the few it needs, not for all of them — 20–25 ms otherwise).
fn range_patterns() -> Arc<Patterns> {
    let mut held = RANGE_PATTERNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(held.get_or_insert_with(|| Arc::new(Patterns::new())))
}

/// Frees the range patterns (and every thread's matching caches of them); the next
/// [`Range::parse`] compiles them again. The daemon calls it after loading its policies: parsed
/// ranges do not need them, and a long-lived process would otherwise keep ≈ 3 MB for the next reload.
pub fn release_range_patterns() {
    RANGE_PATTERNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
}

impl Patterns {
    fn new() -> Patterns {
        Patterns {
            build_strip: LazyLock::new(|| {
                Regex::new(&SOURCES.build.replace(r"\d", "[0-9]")).expect("regex compiles")
            }),
            build: LazyLock::new(|| compile(SOURCES.build.clone())),
            hyphen_range: LazyLock::new(|| {
                compile(format!(
                    r"^\s*({xr})\s+-\s+({xr})\s*$",
                    xr = SOURCES.xrange_plain
                ))
            }),
            comparator_trim: LazyLock::new(|| {
                compile(format!(
                    r"(\s*){}\s*({}|{})",
                    SOURCES.gtlt, SOURCES.loose_plain, SOURCES.xrange_plain
                ))
            }),
            tilde_trim: LazyLock::new(|| compile(r"(\s*)(?:~>?)\s+".to_string())),
            caret_trim: LazyLock::new(|| compile(r"(\s*)(?:\^)\s+".to_string())),
            tilde: LazyLock::new(|| compile(format!("^(?:~>?){}$", SOURCES.xrange_plain))),
            caret: LazyLock::new(|| compile(format!(r"^(?:\^){}$", SOURCES.xrange_plain))),
            xrange: LazyLock::new(|| {
                compile(format!(r"^{}\s*{}$", SOURCES.gtlt, SOURCES.xrange_plain))
            }),
            star: LazyLock::new(|| compile(r"(<|>)?=?\s*\*".to_string())),
            gte0: LazyLock::new(|| compile(r"^\s*>=\s*0\.0\.0\s*$".to_string())),
            gte0_pre: LazyLock::new(|| compile(r"^\s*>=\s*0\.0\.0-0\s*$".to_string())),
            comparator: LazyLock::new(|| {
                compile(format!(r"^{}\s*({})$|^$", SOURCES.gtlt, SOURCES.full_plain))
            }),
            whitespace: LazyLock::new(|| Regex::new(r"\s+").expect("regex compiles")),
        }
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
        let patterns = range_patterns();
        let p = patterns.as_ref();
        let raw = p.whitespace.replace_all(js_trim(text), " ").into_owned();
        let mut sets = Vec::new();
        for part in raw.split("||") {
            let set = parse_set(p, js_trim(part), include_prerelease, &raw)?;
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
            } else if sets.len() > 1
                && let Some(any) = sets
                    .iter()
                    .find(|set| set.len() == 1 && set[0].version.is_none())
            {
                sets = vec![any.clone()];
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
    fn parse(p: &Patterns, text: &str, range: &str) -> Result<Comparator, SemverError> {
        let collapsed = js_split_whitespace(p, js_trim(text)).join(" ");
        let invalid = || SemverError::InvalidComparator {
            range: range.to_string(),
            comparator: collapsed.clone(),
        };
        let captures = p.comparator.captures(&collapsed).ok_or_else(invalid)?;
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
    p: &Patterns,
    text: &str,
    include_prerelease: bool,
    raw: &str,
) -> Result<Vec<Comparator>, SemverError> {
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
        rewritten.push(
            parse_comparator(p, comparator, include_prerelease).map_err(|()| too_large(raw))?,
        );
    }
    let joined = rewritten.join(" ");
    let gte0 = if include_prerelease {
        &p.gte0_pre
    } else {
        &p.gte0
    };

    let mut comparators: Vec<Comparator> = Vec::new();
    for piece in js_split_whitespace(p, &joined) {
        let piece = gte0.replace(js_trim(piece), "");
        let comparator = Comparator::parse(p, &piece, raw)?;
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
fn parse_comparator(p: &Patterns, text: &str, include_prerelease: bool) -> Result<String, ()> {
    let text = p.build.replace(text, "").into_owned();
    let text = map_pieces(p, js_trim(&text), |piece| {
        replace_first(&p.caret, piece, |c| caret(c, include_prerelease))
    })?;
    let text = map_pieces(p, js_trim(&text), |piece| {
        replace_first(&p.tilde, piece, |c| tilde(c, include_prerelease))
    })?;
    // replaceXRanges splits without trimming first.
    let text = map_pieces(p, &text, |piece| {
        let piece = js_trim(piece);
        replace_first(&p.xrange, piece, |c| xrange(c, piece, include_prerelease))
    })?;
    Ok(p.star.replace(js_trim(&text), "").into_owned())
}

fn map_pieces(
    p: &Patterns,
    text: &str,
    mut each: impl FnMut(&str) -> Result<String, ()>,
) -> Result<String, ()> {
    let pieces: Result<Vec<String>, ()> = js_split_whitespace(p, text)
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
fn js_split_whitespace<'t>(p: &Patterns, text: &'t str) -> Vec<&'t str> {
    p.whitespace.split(text).collect()
}

#[cfg(test)]
mod tests;
