//! docs/reference/policy.md: `resolve` must agree with node-semver's `maxSatisfying` on every semver range and tag list.
//! node-semver itself (tests/oracle, npm `semver`) decides the expected tag; nothing here is a
//! hand-written expectation. One node process per tag list answers every range of that list.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tagwatch::policy::{Order, Origin, Policy, Range, SemverOrder, Version, select};
use tagwatch::reference::ImageReference;

/// One question to the oracle.
#[derive(Debug, Clone)]
struct Case {
    range: String,
    include_prerelease: bool,
    variant: Option<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tag_lists() -> Vec<(String, Vec<String>)> {
    let mut lists = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/tags")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            let text = std::fs::read_to_string(&path).unwrap();
            let tags = text
                .lines()
                .map(str::to_string)
                .filter(|t| !t.is_empty())
                .collect();
            lists.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                tags,
            ));
        }
    }
    lists.sort();
    assert!(lists.len() >= 20, "tests/tags holds the real tag lists");
    lists
}

/// Asks node-semver for every case of one tag list.
fn oracle(tags: &[String], cases: &[Case]) -> Vec<Option<String>> {
    let dir = root().join("tests/oracle");
    assert!(
        dir.join("node_modules/semver").is_dir(),
        "node-semver is missing: run tests/install-deps.sh"
    );
    let input = serde_json::json!({
        "tags": tags,
        "cases": cases.iter().map(|c| serde_json::json!({
            "range": c.range,
            "includePrerelease": c.include_prerelease,
            "variant": c.variant,
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new("node")
        .arg(dir.join("max_satisfying.js"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "oracle failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn semver_policy(case: &Case) -> Policy {
    let range = Range::parse(&case.range, case.include_prerelease).unwrap_or_else(|e| {
        panic!(
            "node-semver accepts {:?}, tagwatch must too: {e}",
            case.range
        )
    });
    let order = Order::Semver(SemverOrder {
        range,
        variant: case.variant.clone(),
    });
    let origin = Origin {
        file: PathBuf::from("oracle"),
        line: 1,
        column: 1,
    };
    Policy::new(
        "oracle",
        ImageReference::parse("registry.example/oracle").unwrap(),
        order,
        origin,
    )
}

/// The versions of a list as tagwatch reads them (used only to pick ranges that hit the list).
fn versions(tags: &[String]) -> Vec<Version> {
    tags.iter()
        .filter_map(|tag| {
            let text = tag.strip_prefix('v').unwrap_or(tag);
            text.starts_with(|c: char| c.is_ascii_digit())
                .then(|| Version::parse(text).ok())
                .flatten()
        })
        .collect()
}

/// A spread of ranges for one list: caret, tilde, x-ranges, hyphen, `||`, comparators with spaces,
/// prerelease comparators, built from majors and minors the list really has, plus fixed ones.
fn ranges_for(tags: &[String]) -> Vec<String> {
    let versions = versions(tags);
    let mut ranges: Vec<String> = [
        "*",
        "x",
        "",
        ">=0.0.0",
        ">=0.0.0-0",
        "^0.1",
        "0.x",
        "^0.0.3",
        "<1",
        "1.x || 2.x",
        ">1.0.0 <=1.2.3 || ^3",
        "~1",
        "^1.2.3-0",
    ]
    .iter()
    .map(|r| r.to_string())
    .collect();
    let mut by_major: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for v in &versions {
        by_major.entry(v.major).or_default().insert(v.minor);
    }
    let majors: Vec<u64> = by_major.keys().copied().collect();
    if majors.is_empty() {
        return ranges;
    }
    let picks: BTreeSet<u64> = [
        majors[0],
        majors[majors.len() / 2],
        majors[majors.len() - 1],
    ]
    .into();
    for &m in &picks {
        let minors = &by_major[&m];
        let lo = *minors.first().unwrap();
        let hi = *minors.last().unwrap();
        let patch = versions
            .iter()
            .filter(|v| v.major == m && v.minor == hi && !v.is_prerelease())
            .map(|v| v.patch)
            .max()
            .unwrap_or(0);
        ranges.extend([
            format!("^{m}"),
            format!("^{m}.{lo}"),
            format!("~{m}.{hi}"),
            format!("~{m}.{hi}.{patch}"),
            format!("{m}.x"),
            format!("{m}.{hi}.x"),
            format!("{m}.*"),
            format!(">={m}.{lo}.0 <{}", m + 1),
            format!(">{m}.{lo}"),
            format!("<={m}.{hi}"),
            format!("={m}.{hi}.{patch}"),
            format!("{m}.{lo} - {m}.{hi}"),
            format!("{m}.{lo}.0 - {}", m + 1),
            format!("^{m}.{lo}.0-0"),
            format!("~{m}.{hi}.{patch}-rc.1"),
            format!(">= {m}.{lo} < {m}.{hi}"),
            format!("~> {m}.{hi}"),
            format!("^ {m}"),
            format!("v{m}.{hi}.x"),
            format!("<{m}.{hi}.{patch}-0"),
        ]);
    }
    ranges.push(format!("^{} || ^{}", majors[0], majors[majors.len() - 1]));
    ranges.push(format!(
        "{}.x || >={}.1",
        majors[majors.len() / 2],
        majors[majors.len() - 1]
    ));
    // Ranges that name a real prerelease of the list (the only way a prerelease matches by default).
    if let Some(pre) = versions
        .iter()
        .filter(|v| v.is_prerelease())
        .max_by(|a, b| a.compare(b))
    {
        ranges.extend([
            format!(">={pre}"),
            format!("^{pre}"),
            format!("~{pre}"),
            format!("{pre} - {}.{}", pre.major, pre.minor + 1),
        ]);
    }
    ranges
}

/// Variant suffixes that are common in a list (`alpine`, `slim`, …), most frequent first.
fn variants_for(tags: &[String]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for tag in tags {
        if let Some((base, suffix)) = tag.split_once('-') {
            let base = base.strip_prefix('v').unwrap_or(base);
            if Version::parse(base).is_ok() && base.starts_with(|c: char| c.is_ascii_digit()) {
                *counts.entry(suffix).or_default() += 1;
            }
        }
    }
    let mut counts: Vec<_> = counts.into_iter().filter(|(_, n)| *n >= 5).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .into_iter()
        .take(3)
        .map(|(s, _)| s.to_string())
        .collect()
}

fn cases_for(tags: &[String]) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut ranges = ranges_for(tags);
    let mut seen = BTreeSet::new();
    ranges.retain(|range| seen.insert(range.clone()));
    for range in ranges {
        for include_prerelease in [false, true] {
            cases.push(Case {
                range: range.clone(),
                include_prerelease,
                variant: None,
            });
        }
    }
    let highest_major = versions(tags).iter().map(|v| v.major).max();
    for variant in variants_for(tags) {
        let mut ranges = vec!["*".to_string()];
        if let Some(m) = highest_major {
            ranges.push(format!("^{m}"));
            ranges.push(format!("<{m}"));
        }
        for range in ranges {
            cases.push(Case {
                range,
                include_prerelease: false,
                variant: Some(variant.clone()),
            });
        }
    }
    cases
}

#[test]
fn library_agrees_with_node_semver_on_every_tag_list() {
    let mut total = 0;
    let mut chosen = 0;
    let mut ties = 0;
    let mut alpine = 0;
    let mut disagreements = Vec::new();
    let lists = tag_lists();
    let cases: Vec<Vec<Case>> = lists.iter().map(|(_, tags)| cases_for(tags)).collect();
    // node answers list N+1 while tagwatch ranks list N.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        // The sender moves into the oracle thread: if it panics (node-semver missing), the sender is
        // dropped and `recv` fails instead of waiting forever.
        let (lists, cases) = (&lists, &cases);
        scope.spawn(move || {
            for ((_, tags), cases) in lists.iter().zip(cases) {
                if sender.send(oracle(tags, cases)).is_err() {
                    break;
                }
            }
        });
        for ((name, tags), cases) in lists.iter().zip(cases) {
            let expected = receiver
                .recv()
                .expect("the oracle thread answers every list");
            assert_eq!(expected.len(), cases.len());
            for (case, expected) in cases.iter().zip(expected) {
                let selection = select(&semver_policy(case), tags);
                let actual = selection.candidates.first().cloned();
                total += 1;
                chosen += usize::from(expected.is_some());
                alpine +=
                    usize::from(case.variant.as_deref() == Some("alpine") && expected.is_some());
                // A winner whose equal-precedence twin (`v1.2.3` / `1.2.3`) is also listed: the tie rule.
                if let Some(tag) = &expected {
                    let twin = match tag.strip_prefix('v') {
                        Some(bare) => bare.to_string(),
                        None => format!("v{tag}"),
                    };
                    ties += usize::from(tags.contains(&twin));
                }
                if actual != expected {
                    disagreements.push(format!(
                        "{name} {case:?}: tagwatch {actual:?}, node-semver {expected:?}"
                    ));
                }
            }
        }
    });
    eprintln!(
        "semver oracle: {} lists, {total} cases ({chosen} with a tag chosen, {ties} decided by the tie rule, {alpine} alpine variant), {} disagreements",
        lists.len(),
        disagreements.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(total > 2000, "a spread of ranges per list");
    assert!(
        ties > 0,
        "the tie rule is exercised (traefik lists v3.1.2 and 3.1.2)"
    );
    assert!(alpine > 0, "the alpine variant is exercised");
    assert!(
        chosen * 2 > total,
        "most ranges hit their list: {chosen} of {total}"
    );
}

/// The real binary, `resolve FILE --tags-file`, on one caret range per list.
#[test]
fn binary_resolve_agrees_with_node_semver_on_a_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = 0;
    for (index, (name, tags)) in tag_lists().iter().enumerate() {
        let Some(major) = versions(tags)
            .iter()
            .filter(|v| !v.is_prerelease())
            .map(|v| v.major)
            .max()
        else {
            continue;
        };
        // Alternate plain and prerelease-including policies across the lists; add the list's most
        // common variant.
        let mut cases = vec![Case {
            range: format!("^{major}"),
            include_prerelease: index % 2 == 1,
            variant: None,
        }];
        if let Some(variant) = variants_for(tags).into_iter().next() {
            cases.push(Case {
                range: "*".to_string(),
                include_prerelease: false,
                variant: Some(variant),
            });
        }
        let expected = oracle(tags, &cases);
        for (number, (case, expected)) in cases.iter().zip(expected).enumerate() {
            let policy = dir.path().join(format!("{name}-{number}.yaml"));
            let variant = case
                .variant
                .as_ref()
                .map_or(String::new(), |v| format!(", variant: \"{v}\""));
            std::fs::write(
                &policy,
                format!(
                    "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: sample }}\nspec:\n  image: registry.example/sample\n  semver: {{ range: \"{}\", prerelease: {}{variant} }}\n",
                    case.range, case.include_prerelease
                ),
            )
            .unwrap();
            let output = run_resolve(&policy, &root().join("tests/tags").join(name), dir.path());
            runs += 1;
            match expected {
                Some(tag) => {
                    assert_eq!(
                        output.status.code(),
                        Some(0),
                        "{name}: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    assert_eq!(
                        String::from_utf8_lossy(&output.stdout),
                        format!("{tag}\n"),
                        "{name} {case:?}"
                    );
                }
                None => {
                    assert_eq!(output.status.code(), Some(1), "{name}");
                    assert!(String::from_utf8_lossy(&output.stderr).contains("no tag qualifies"));
                }
            }
        }
    }
    assert!(runs > 30, "{runs} binary runs");
}

fn run_resolve(policy: &Path, tags: &Path, cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .arg("resolve")
        .arg(policy)
        .arg("--tags-file")
        .arg(tags)
        .current_dir(cwd)
        .env_remove("TAGWATCH_LOG")
        .output()
        .unwrap()
}
