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

proptest::proptest! {
    /// Any text is a range or an error, never a panic (node-semver's grammar characters weighted in).
    #[test]
    fn arbitrary_ranges_never_panic(text in "[0-9xX*vV=<>^~|. +a-z-]{0,40}", include in proptest::bool::ANY) {
        if let Ok(range) = Range::parse(&text, include) {
            let _ = range.test(&Version::parse("1.2.3-rc.1").unwrap());
        }
    }
}

#[test]
fn ranges_parse_the_same_after_the_patterns_are_released() {
    let before = Range::parse(">=1.2.3 <2 || ~3.4 || 5.x - 6.1", false).unwrap();
    super::release_range_patterns();
    let after = Range::parse(">=1.2.3 <2 || ~3.4 || 5.x - 6.1", false).unwrap();
    assert_eq!(before, after);
    assert!(after.test(&Version::parse("3.4.9").unwrap()));
    assert!(!after.test(&Version::parse("3.5.0").unwrap()));
}
