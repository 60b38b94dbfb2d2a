use std::collections::HashMap;
use std::path::PathBuf;

use chrono::TimeZone;

use super::*;

fn policy(order: Order) -> Policy {
    let origin = Origin {
        file: PathBuf::from("test.yaml"),
        line: 1,
        column: 1,
    };
    Policy::new(
        "test",
        ImageReference::parse("registry.example/app").unwrap(),
        order,
        origin,
    )
}

fn semver(range: &str, prerelease: bool, variant: Option<&str>) -> Policy {
    policy(Order::Semver(SemverOrder {
        range: Range::parse(range, prerelease).unwrap(),
        variant: variant.map(str::to_string),
    }))
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

fn reason_of(selection: &Selection, tag: &str) -> Reason {
    selection
        .rejected
        .iter()
        .find(|r| r.tag == tag)
        .unwrap_or_else(|| panic!("{tag} is not rejected"))
        .reason
        .clone()
}

#[test]
fn semver_picks_the_highest_in_range_and_says_why_others_lost() {
    let selection = select(
        &semver("^1.2", false, None),
        &tags(&["1.2.0", "1.9.1", "2.0.0", "latest", "1.10.0-rc.1", "01.2.3"]),
    );
    assert_eq!(selection.candidates, ["1.9.1", "1.2.0"]);
    assert_eq!(reason_of(&selection, "2.0.0"), Reason::OutOfRange);
    assert_eq!(reason_of(&selection, "latest"), Reason::NotSemver);
    assert_eq!(reason_of(&selection, "01.2.3"), Reason::NotSemver);
    assert_eq!(
        reason_of(&selection, "1.10.0-rc.1"),
        Reason::PrereleaseExcluded
    );
}

#[test]
fn only_one_lowercase_v_is_stripped() {
    let selection = select(
        &semver("*", false, None),
        &tags(&["v1.0.0", "V2.0.0", "vv3.0.0"]),
    );
    assert_eq!(selection.candidates, ["v1.0.0"]);
    assert_eq!(reason_of(&selection, "V2.0.0"), Reason::NotSemver);
    assert_eq!(reason_of(&selection, "vv3.0.0"), Reason::NotSemver);
}

#[test]
fn ties_go_to_the_byte_wise_greater_tag() {
    // `v1.2.3` and `1.2.3` have equal precedence; 'v' (0x76) > '1' (0x31).
    let selection = select(&semver("^1", false, None), &tags(&["1.2.3", "v1.2.3"]));
    assert_eq!(selection.candidates, ["v1.2.3", "1.2.3"]);
    let selection = select(&semver("^1", false, None), &tags(&["v1.2.3", "1.2.3"]));
    assert_eq!(
        selection.candidates[0], "v1.2.3",
        "order of the listing does not matter"
    );
}

#[test]
fn variant_tracks_only_its_own_suffix() {
    let listing = tags(&[
        "1.25.3-alpine",
        "1.27.1",
        "1.27.1-alpine",
        "1.27.1-perl",
        "1.27.2-alpine-slim",
        "2.0.0-alpine",
    ]);
    let selection = select(&semver("^1.25", false, Some("alpine")), &listing);
    assert_eq!(selection.candidates, ["1.27.1-alpine", "1.25.3-alpine"]);
    assert_eq!(reason_of(&selection, "1.27.1"), Reason::VariantMismatch);
    assert_eq!(
        reason_of(&selection, "1.27.1-perl"),
        Reason::VariantMismatch
    );
    assert_eq!(
        reason_of(&selection, "1.27.2-alpine-slim"),
        Reason::VariantMismatch
    );
    assert_eq!(reason_of(&selection, "2.0.0-alpine"), Reason::OutOfRange);
}

#[test]
fn tags_that_break_the_grammar_are_dropped_before_anything_else() {
    let evil = "1.2.4\nimage: evil";
    let selection = select(
        &semver("*", false, None),
        &tags(&["1.2.3", evil, "", &"9".repeat(129), "-1.0.0", "1.2.3"]),
    );
    assert_eq!(selection.candidates, ["1.2.3"]);
    assert_eq!(reason_of(&selection, evil), Reason::InvalidTag);
    assert_eq!(reason_of(&selection, "-1.0.0"), Reason::InvalidTag);
    assert_eq!(selection.rejected.last().unwrap().reason, Reason::Duplicate);
    // Shown escaped, never raw.
    let shown = selection
        .rejected
        .iter()
        .find(|r| r.tag == evil)
        .unwrap()
        .to_string();
    assert!(!shown.contains('\n'), "{shown}");
    assert!(shown.contains("\\n"), "{shown}");
}

#[test]
fn filter_extract_numerical_orders_by_the_extracted_number() {
    let mut policy = policy(Order::Numerical(Direction::Ascending));
    policy.filter = Some(TagFilter {
        pattern: Regex::new(r"^main-[0-9a-f]+-(?P<ts>[0-9]+)$").unwrap(),
        extract: Some("$ts".to_string()),
    });
    let listing = tags(&[
        "main-abc1234-1700000000",
        "main-def5678-1700000900",
        "main-0123456-999",
        "feature-x-1800000000",
        "latest",
    ]);
    let selection = select(&policy, &listing);
    assert_eq!(
        selection.candidates,
        [
            "main-def5678-1700000900",
            "main-abc1234-1700000000",
            "main-0123456-999"
        ]
    );
    assert_eq!(
        reason_of(&selection, "feature-x-1800000000"),
        Reason::FilterMismatch
    );
    policy.order = Order::Numerical(Direction::Descending);
    assert_eq!(select(&policy, &listing).candidates[0], "main-0123456-999");
}

#[test]
fn numerical_rejects_keys_that_are_not_numbers() {
    let selection = select(
        &policy(Order::Numerical(Direction::Ascending)),
        &tags(&["10", "9", "abc", "1e3"]),
    );
    assert_eq!(selection.candidates, ["1e3", "10", "9"]);
    assert_eq!(
        reason_of(&selection, "abc"),
        Reason::NotANumber("abc".to_string())
    );
}

#[test]
fn alphabetical_compares_bytes_in_both_directions() {
    let listing = tags(&[
        "RELEASE.2024-01-02",
        "RELEASE.2023-12-31",
        "RELEASE.2024-01-10",
    ]);
    let ascending = select(&policy(Order::Alphabetical(Direction::Ascending)), &listing);
    assert_eq!(ascending.candidates[0], "RELEASE.2024-01-10");
    let descending = select(
        &policy(Order::Alphabetical(Direction::Descending)),
        &listing,
    );
    assert_eq!(descending.candidates[0], "RELEASE.2023-12-31");
}

#[test]
fn exclude_globs_apply_first() {
    let mut policy = semver("^6", false, None);
    for glob in ["*-debug", "6.5.0"] {
        policy.exclude.push(Exclusion::Glob {
            glob: glob.to_string(),
            matcher: globset::Glob::new(glob).unwrap().compile_matcher(),
        });
    }
    let selection = select(&policy, &tags(&["6.4.0", "6.5.0", "6.6.0-debug", "6.4.1"]));
    assert_eq!(selection.candidates, ["6.4.1", "6.4.0"]);
    assert_eq!(
        reason_of(&selection, "6.5.0"),
        Reason::Excluded("\"6.5.0\"".to_string())
    );
    assert_eq!(
        reason_of(&selection, "6.6.0-debug"),
        Reason::Excluded("\"*-debug\"".to_string())
    );
}

#[test]
fn summary_counts_reasons() {
    let selection = select(
        &semver("^9", false, None),
        &tags(&["1.0.0", "2.0.0", "latest"]),
    );
    assert_eq!(
        summarize(&selection.rejected),
        "3 tags: 2 are outside the range, 1 are not semver"
    );
    assert_eq!(summarize(&[]), "the registry lists no tags");
}

/// A `TagSource` with fixed facts, counting `created` lookups.
struct Facts {
    tags: Vec<String>,
    created: HashMap<String, DateTime<Utc>>,
    digests: HashMap<String, String>,
    lookups: std::sync::Mutex<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no such fact")]
struct NoFact;

impl TagSource for Facts {
    type Error = NoFact;

    async fn list_tags(&self, _image: &ImageReference) -> Result<Vec<String>, NoFact> {
        Ok(self.tags.clone())
    }

    async fn manifest_digest(&self, _image: &ImageReference, tag: &str) -> Result<String, NoFact> {
        self.digests.get(tag).cloned().ok_or(NoFact)
    }

    async fn created(
        &self,
        _image: &ImageReference,
        tag: &str,
    ) -> Result<Option<DateTime<Utc>>, NoFact> {
        self.lookups.lock().unwrap().push(tag.to_string());
        Ok(self.created.get(tag).copied())
    }
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0).unwrap()
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn min_age_walks_candidates_newest_first_and_stops_at_the_first_old_enough() {
    let facts = Facts {
        tags: tags(&["1.0.0", "1.1.0", "1.2.0", "1.3.0"]),
        created: [
            ("1.3.0", at(11)),
            ("1.2.0", at(7)),
            ("1.1.0", at(5)),
            ("1.0.0", at(1)),
        ]
        .into_iter()
        .map(|(t, c)| (t.to_string(), c))
        .collect(),
        digests: HashMap::new(),
        lookups: Default::default(),
    };
    let mut policy = semver("^1", false, None);
    policy.min_age = Duration::from_secs(3 * 3600);
    let resolution = run(resolve(&policy, &facts, at(12))).unwrap();
    assert_eq!(resolution.tag, "1.2.0");
    assert_eq!(*facts.lookups.lock().unwrap(), ["1.3.0", "1.2.0"]);
    assert!(matches!(
        reason_of(
            &Selection {
                candidates: vec![],
                rejected: resolution.rejected
            },
            "1.3.0"
        ),
        Reason::TooYoung { .. }
    ));
}

#[test]
fn min_age_without_a_created_time_is_not_a_pass() {
    let facts = Facts {
        tags: tags(&["1.0.0"]),
        created: HashMap::new(),
        digests: HashMap::new(),
        lookups: Default::default(),
    };
    let mut policy = semver("^1", false, None);
    policy.min_age = Duration::from_secs(60);
    match run(resolve(&policy, &facts, at(12))) {
        Err(ResolveError::NoCandidate { summary, .. }) => {
            assert_eq!(summary, "1 tags: 1 have no created time")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn digest_is_resolved_for_the_chosen_tag_and_checked() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let mut facts = Facts {
        tags: tags(&["1.0.0", "1.1.0"]),
        created: HashMap::new(),
        digests: [("1.1.0".to_string(), digest.clone())].into(),
        lookups: Default::default(),
    };
    let mut policy = semver("^1", false, None);
    policy.digest = true;
    let resolution = run(resolve(&policy, &facts, at(12))).unwrap();
    assert_eq!(resolution.digest, Some(digest));
    facts
        .digests
        .insert("1.1.0".to_string(), "sha256:zz\nevil".to_string());
    assert!(matches!(
        run(resolve(&policy, &facts, at(12))),
        Err(ResolveError::InvalidDigest { .. })
    ));
}
