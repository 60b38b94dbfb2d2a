//! Generated edge cases of the rewriter. Each case is a fixture directory under
//! `tests/fixtures/rewrite/<name>/` holding `args` (the `IMAGE=REF` of `tagwatch set`), `input.yaml` and
//! `expected.yaml` (byte-exact, see the `.gitattributes` there); each has a test named after it. Every
//! case also goes through the three invariants, and a second run must change nothing.
//!
//! The `limitation_*` tests pin down what the rewriter deliberately does not do (the list in
//! `src/manifest/mod.rs`).

use std::path::{Path, PathBuf};

use tagwatch::manifest::assignment::{Assignment, rewrite_file};
use tagwatch::manifest::{self, Bump, DigestChange, RewriteError, TargetKind};

use crate::invariants::check_rewrite;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rewrite")
}

fn fixture(name: &str) {
    let directory = fixtures().join(name);
    let args = std::fs::read_to_string(directory.join("args")).unwrap();
    let input = std::fs::read(directory.join("input.yaml")).unwrap();
    let expected = std::fs::read(directory.join("expected.yaml")).unwrap();
    let assignment = Assignment::parse(args.trim()).unwrap();

    let rewrite = rewrite_file(Path::new("input.yaml"), &input, &assignment);
    assert!(rewrite.errors.is_empty(), "{name}: {:?}", rewrite.errors);
    assert!(!rewrite.changes.is_empty(), "{name}: nothing changed");
    assert_eq!(
        String::from_utf8_lossy(&rewrite.after),
        String::from_utf8_lossy(&expected),
        "{name}: output differs from expected.yaml"
    );
    assert_eq!(rewrite.after, expected, "{name}: bytes differ");

    let again = rewrite_file(Path::new("input.yaml"), &rewrite.after, &assignment);
    assert!(
        again.changes.is_empty(),
        "{name}: second run changed {:?}",
        again.changes
    );
    assert_eq!(again.after, rewrite.after);

    let outcome = check_rewrite(name, &input, &|target| {
        if assignment.matches(target) && !target.held() {
            assignment.bump_for(target)
        } else {
            Bump {
                name: None,
                tag: None,
                digest: DigestChange::Keep,
            }
        }
    });
    assert_eq!(
        outcome.rewritten,
        rewrite.changes.len(),
        "{name}: invariant run bumped a different set"
    );
}

#[test]
fn every_fixture_directory_has_a_named_test() {
    let source = include_str!("rewrite.rs");
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let name = entry.file_name().into_string().unwrap();
            assert!(
                source.contains(&format!("fn {name}()")),
                "fixture {name} has no test"
            );
        }
    }
}

#[test]
fn anchors_and_aliases() {
    fixture("anchors_and_aliases");
}

#[test]
fn block_scalars_next_to_field() {
    fixture("block_scalars_next_to_field");
}

#[test]
fn bom() {
    fixture("bom");
}

#[test]
fn comments_on_and_after_value() {
    fixture("comments_on_and_after_value");
}

#[test]
fn crlf() {
    fixture("crlf");
}

#[test]
fn digest_only() {
    fixture("digest_only");
}

#[test]
fn document_markers() {
    fixture("document_markers");
}

#[test]
fn flow_maps_and_sequences() {
    fixture("flow_maps_and_sequences");
}

#[test]
fn flux_field_markers() {
    fixture("flux_field_markers");
}

#[test]
fn full_reference_changes_name() {
    fixture("full_reference_changes_name");
}

#[test]
fn full_reference_same_name_keeps_name_as_written() {
    fixture("full_reference_same_name_keeps_name_as_written");
}

#[test]
fn helm_maps() {
    fixture("helm_maps");
}

#[test]
fn helm_tag_with_digest() {
    fixture("helm_tag_with_digest");
}

#[test]
fn helmrelease_values() {
    fixture("helmrelease_values");
}

#[test]
fn kinds_of_workloads() {
    fixture("kinds_of_workloads");
}

#[test]
fn kustomize_entries() {
    fixture("kustomize_entries");
}

#[test]
fn markers_and_hold() {
    fixture("markers_and_hold");
}

#[test]
fn no_final_newline() {
    fixture("no_final_newline");
}

#[test]
fn non_ascii_before_field() {
    fixture("non_ascii_before_field");
}

#[test]
fn numeric_exponent_tag_double_quoted_by_prevailing_style() {
    fixture("numeric_exponent_tag_double_quoted_by_prevailing_style");
}

#[test]
fn numeric_looking_tags() {
    fixture("numeric_looking_tags");
}

#[test]
fn quote_styles() {
    fixture("quote_styles");
}

#[test]
fn registry_port() {
    fixture("registry_port");
}

#[test]
fn tabs() {
    fixture("tabs");
}

#[test]
fn tag_replaces_pinned_digest() {
    fixture("tag_replaces_pinned_digest");
}

// Limitations (src/manifest/mod.rs), each shown here.

fn only_target(text: &str) -> (manifest::Discovery, manifest::Target) {
    let discovery = manifest::discover(Path::new("limitation.yaml"), text.as_bytes());
    assert_eq!(discovery.targets.len(), 1, "{:?}", discovery);
    let target = discovery.targets[0].clone();
    (discovery, target)
}

fn tag(tag: &str) -> Bump {
    Bump {
        name: None,
        tag: Some(tag.to_string()),
        digest: DigestChange::Remove,
    }
}

#[test]
fn limitation_folded_plain_scalar() {
    // An escaped line break and an escape: both decode to `nginx:1.0`.
    let text = "containers:\n  - image: \"nginx:\\\n      1.0\"\n  - image: \"nginx:\\x31.0\"\n";
    let discovery = manifest::discover(Path::new("limitation.yaml"), text.as_bytes());
    assert_eq!(discovery.targets.len(), 2);
    for target in &discovery.targets {
        assert_eq!(target.reference.tag.as_deref(), Some("1.0"));
        assert!(target.fields[0].range.is_none());
        assert!(matches!(
            manifest::edits_for(target, &tag("1.1"), discovery.quote_style),
            Err(RewriteError::NotVerbatim { .. })
        ));
    }
}

#[test]
fn limitation_missing_field_is_not_inserted() {
    let (discovery, target) = only_target("image:\n  repository: nginx\n");
    assert_eq!(target.kind, TargetKind::HelmMap);
    assert_eq!(
        manifest::edits_for(&target, &tag("1.1"), discovery.quote_style),
        Err(RewriteError::MissingField {
            key: "tag",
            what: "tag"
        })
    );
    let (discovery, target) = only_target("images:\n- name: nginx\n  newTag: '1.0'\n");
    let digest = Bump {
        name: None,
        tag: None,
        digest: DigestChange::Set(format!("sha256:{}", "a".repeat(64))),
    };
    assert_eq!(
        manifest::edits_for(&target, &digest, discovery.quote_style),
        Err(RewriteError::MissingField {
            key: "digest",
            what: "digest"
        })
    );
}

#[test]
fn limitation_null_tag() {
    let (discovery, target) = only_target("image:\n  repository: nginx\n  tag:\n");
    assert_eq!(target.reference.tag, None);
    assert!(matches!(
        manifest::edits_for(&target, &tag("1.1"), discovery.quote_style),
        Err(RewriteError::NotVerbatim { .. })
    ));
}

#[test]
fn limitation_merge_key() {
    let text = "base: &base\n  image: nginx:1.0\nservice:\n  <<: *base\n";
    let discovery = manifest::discover(Path::new("limitation.yaml"), text.as_bytes());
    assert_eq!(discovery.targets.len(), 1);
    assert_eq!(discovery.targets[0].path, "base.image");
}

#[test]
fn limitation_marker_on_line_above() {
    let text = "# tagwatch: hold\nimage: nginx:1.0\n";
    let (_, target) = only_target(text);
    assert_eq!(target.marker, None);
    assert!(!target.held());
}

#[test]
fn limitation_lone_tag_marker() {
    let text = "spec:\n  version: 1.0.0 # {\"$imagepolicy\": \"ns:p:tag\"}\n";
    let discovery = manifest::discover(Path::new("limitation.yaml"), text.as_bytes());
    assert!(discovery.targets.is_empty());
    assert_eq!(discovery.warnings.len(), 1);
    assert!(discovery.warnings[0].message.contains("no `:name` field"));
}

#[test]
fn invalid_references_are_reported_not_guessed() {
    let text = "containers:\n  - image: ${IMAGE}:1.0\n  - image: Nginx:1.0\n  - image: ''\n";
    let discovery = manifest::discover(Path::new("invalid.yaml"), text.as_bytes());
    assert!(discovery.targets.is_empty());
    assert_eq!(discovery.warnings.len(), 3, "{:?}", discovery.warnings);
}

#[test]
fn templates_non_yaml_and_broken_files_are_skipped() {
    for (text, why) in [
        ("image: {{ .Values.image }}\n", "Helm template"),
        ("image: [unclosed\n", "not valid YAML"),
    ] {
        let discovery = manifest::discover(Path::new("skipped.yaml"), text.as_bytes());
        assert!(discovery.skipped, "{why}");
        assert!(discovery.targets.is_empty());
        assert_eq!(discovery.warnings.len(), 1);
    }
    let discovery = manifest::discover(Path::new("binary.yaml"), &[0xff, 0xfe, 0x00, 0x41]);
    assert!(discovery.skipped);
    assert!(discovery.warnings[0].message.contains("not UTF-8"));
}

#[test]
fn alias_to_an_image_is_reported_as_such() {
    let text = "x: &img nginx:1.0\nservices:\n  a:\n    image: *img\n";
    let (_, target) = only_target(text);
    assert!(target.via_alias);
    assert_eq!(target.line, 1);
    assert_eq!(target.kind, TargetKind::Compose);
}
