//! The node-semver range and version parsers: never panic on any text, and a parsed range tests any
//! parsed version (with and without the prerelease rule) without panicking. The input is a range and a
//! version separated by the first newline; the first byte picks `includePrerelease`. (Agreement with
//! node-semver itself is `tests/it/semver_oracle.rs`: a process per input is too slow for a fuzzer.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagwatch::policy::{Range, Version};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (range_text, version_text) = text.split_once('\n').unwrap_or((text, "1.2.3"));
    let version = Version::parse(version_text);
    let loose = Version::parse_with_regex(version_text);
    if let Ok(version) = &version {
        assert_eq!(version.compare(version), std::cmp::Ordering::Equal);
        let _ = version.is_prerelease();
    }
    let include_prerelease = flags & 1 == 1;
    if let Ok(range) = Range::parse(range_text, include_prerelease) {
        // The range as kept (whitespace collapsed) parses to the same range.
        let again = Range::parse(range.raw(), include_prerelease)
            .unwrap_or_else(|error| panic!("{range_text:?} → {:?}: {error}", range.raw()));
        assert_eq!(again, range, "{range_text:?}");
        for version in [version.ok(), loose.ok()].into_iter().flatten() {
            let strict = range.test(&version);
            let ignoring = range.test_ignoring_prerelease_rule(&version);
            // The prerelease rule only ever excludes.
            assert!(!strict || ignoring, "{range_text:?} {version_text:?}");
        }
    }
});
