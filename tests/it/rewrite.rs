//! Generated edge cases of the rewriter. Each case is a fixture directory under
//! `tests/fixtures/rewrite/<name>/` holding `args` (the `IMAGE=REF` of `tagwatch set`), `input.yaml` and
//! `expected.yaml` (byte-exact, see the `.gitattributes` there); each has a test named after it. Every
//! case also goes through the three invariants, and a second run must change nothing.
//!
//! The `limitation_*` tests pin down what the rewriter deliberately does not do (the list in
//! `src/manifest/mod.rs`).

use std::path::{Path, PathBuf};

use tagwatch::manifest::assignment::{Assignment, rewrite_file};
use tagwatch::manifest::{self, Bump, DigestChange, RewriteError, Role, Shared, TargetKind};

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
fn merge_key_override_bumped_at_local_scalar() {
    fixture("merge_key_override_bumped_at_local_scalar");
}

#[test]
fn merge_key_container_override_and_inherited_image() {
    fixture("merge_key_container_override_and_inherited_image");
}

#[test]
fn merge_key_compose_services_share_an_anchor() {
    fixture("merge_key_compose_services_share_an_anchor");
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
fn null_and_empty_tags() {
    fixture("null_and_empty_tags");
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
fn merge_key_override_is_its_own_target_and_an_unchanged_merge_is_the_anchors() {
    let input =
        std::fs::read(fixtures().join("merge_key_override_bumped_at_local_scalar/input.yaml"))
            .unwrap();
    let discovery = manifest::discover(Path::new("values.yaml"), &input);
    assert!(discovery.warnings.is_empty(), "{:?}", discovery.warnings);
    let found: Vec<(&str, usize, &str)> = discovery
        .targets
        .iter()
        .map(|target| (target.path.as_str(), target.line, target.written.as_str()))
        .collect();
    // `worker.image` merges the anchor unchanged: it moves with the anchor's own target.
    assert_eq!(
        found,
        [
            ("base", 2, "ghcr.io/acme/api:1.0.0"),
            ("image", 5, "ghcr.io/acme/api:1.1.0"),
        ]
    );
    let image = &discovery.targets[1];
    assert_eq!(
        image.field(Role::Repository).unwrap().shared,
        Some(Shared::Merged { merge_line: 4 })
    );
    assert_eq!(image.field(Role::Tag).unwrap().shared, None);
    // Renaming through the merging mapping would rename the anchor: refused.
    let rename = Bump {
        name: Some("ghcr.io/acme/other".to_string()),
        tag: None,
        digest: DigestChange::Keep,
    };
    assert_eq!(
        manifest::edits_for(image, &rename, discovery.quote_style),
        Err(RewriteError::Merged {
            role: Role::Repository,
            line: 2,
            merge_line: 4
        })
    );
}

#[test]
fn merge_key_inherited_container_image_is_the_anchors_target() {
    let input = std::fs::read(
        fixtures().join("merge_key_container_override_and_inherited_image/input.yaml"),
    )
    .unwrap();
    let discovery = manifest::discover(Path::new("deployment.yaml"), &input);
    let found: Vec<(&str, usize)> = discovery
        .targets
        .iter()
        .map(|target| (target.path.as_str(), target.line))
        .collect();
    assert_eq!(
        found,
        [
            ("spec.template.spec.containers[0].image", 11),
            ("spec.template.spec.containers[1].image", 15),
        ]
    );
}

#[test]
fn merge_key_first_mapping_owns_an_anchored_tag_nobody_else_uses() {
    let text = "defaults: &defaults\n  tag: \"1.0\"\nimage:\n  <<: *defaults\n  repository: ghcr.io/acme/api\n";
    let (discovery, target) = only_target(text);
    assert_eq!(target.path, "image");
    assert!(target.via_alias, "the edit lands in the anchor");
    assert_eq!(target.line, 2);
    let edits = manifest::edits_for(&target, &tag("1.1"), discovery.quote_style).unwrap();
    let after = manifest::apply(text.as_bytes(), &edits).unwrap();
    assert_eq!(
        String::from_utf8(after).unwrap(),
        text.replace("\"1.0\"", "\"1.1\"")
    );
}

#[test]
fn limitation_merge_key_shared_by_different_images() {
    // `worker` keeps the anchor's tag under another name: bumping either would move the other.
    let text = "base: &base { repository: ghcr.io/acme/api, tag: \"1.0.0\" }\nworker:\n  <<: *base\n  repository: ghcr.io/acme/worker\n";
    let discovery = manifest::discover(Path::new("values.yaml"), text.as_bytes());
    assert_eq!(discovery.targets.len(), 2, "{:?}", discovery.targets);
    let (base, worker) = (&discovery.targets[0], &discovery.targets[1]);
    assert_eq!(
        (base.path.as_str(), worker.path.as_str()),
        ("base", "worker")
    );
    assert_eq!(worker.written, "ghcr.io/acme/worker:1.0.0");
    assert_eq!(worker.line, 4, "the line of its own repository");
    assert_eq!(
        manifest::edits_for(base, &tag("1.1.0"), discovery.quote_style),
        Err(RewriteError::Diverging {
            role: Role::Tag,
            line: 1,
            lines: vec![3]
        })
    );
    assert_eq!(
        manifest::edits_for(worker, &tag("1.1.0"), discovery.quote_style),
        Err(RewriteError::Merged {
            role: Role::Tag,
            line: 1,
            merge_line: 3
        })
    );
    assert_eq!(discovery.warnings.len(), 1, "{:?}", discovery.warnings);
    let warning = &discovery.warnings[0];
    assert_eq!(
        (warning.line, warning.kind),
        (3, manifest::WarningKind::SharedByMerge)
    );
    assert!(
        warning.message.contains("ghcr.io/acme/api:1.0.0")
            && warning.message.contains("ghcr.io/acme/worker:1.0.0"),
        "{}",
        warning.message
    );

    // Through `set`: reported, and the file is left whole.
    let assignment = Assignment::parse("ghcr.io/acme/api=1.1.0").unwrap();
    let rewrite = rewrite_file(Path::new("values.yaml"), text.as_bytes(), &assignment);
    assert_eq!(rewrite.after, text.as_bytes());
    assert_eq!(rewrite.errors.len(), 1, "{:?}", rewrite.errors);
    assert!(rewrite.changes.is_empty());

    let outcome = check_rewrite("shared.yaml", text.as_bytes(), &|_| tag("1.1.0"));
    assert_eq!((outcome.rewritten, outcome.refused.len()), (0, 2));
}

#[test]
fn limitation_merge_key_digest_kept_beside_an_overridden_tag() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let text = format!(
        "base: &base\n  repository: ghcr.io/acme/api\n  tag: \"1.0.0\"\n  digest: {digest}\ncanary:\n  <<: *base\n  tag: \"1.1.0\"\n"
    );
    let discovery = manifest::discover(Path::new("values.yaml"), text.as_bytes());
    assert_eq!(discovery.targets.len(), 2);
    let (base, canary) = (&discovery.targets[0], &discovery.targets[1]);
    // A new tag drops the pinned digest, which the canary shares: refused for both.
    assert!(matches!(
        manifest::edits_for(base, &tag("1.2.0"), discovery.quote_style),
        Err(RewriteError::Diverging {
            role: Role::Digest,
            ..
        })
    ));
    assert!(matches!(
        manifest::edits_for(canary, &tag("1.2.0"), discovery.quote_style),
        Err(RewriteError::Merged {
            role: Role::Digest,
            ..
        })
    ));
    // A tag-only bump that keeps the digest touches no shared bytes.
    let keep = Bump {
        name: None,
        tag: Some("1.2.0".to_string()),
        digest: DigestChange::Keep,
    };
    for target in [base, canary] {
        let edits = manifest::edits_for(target, &keep, discovery.quote_style).unwrap();
        assert_eq!(edits.len(), 1);
        let tag_range = target.field(Role::Tag).unwrap().range.clone().unwrap();
        assert!(
            tag_range.start <= edits[0].range.start && edits[0].range.end <= tag_range.end,
            "only the target's own tag changes"
        );
    }
    assert_eq!(discovery.warnings.len(), 1);
    assert_eq!(discovery.warnings[0].line, 6);
}

#[test]
fn merge_key_alias_list_and_nested_merges_are_followed() {
    let text = "a: &a { registry: ghcr.io }\nb: &b { <<: *a, repository: acme/api }\nimage:\n  <<: [*b, {pullPolicy: Always}]\n  tag: \"2.0\"\n";
    let discovery = manifest::discover(Path::new("values.yaml"), text.as_bytes());
    let image = discovery
        .targets
        .iter()
        .find(|target| target.path == "image")
        .unwrap_or_else(|| panic!("{:?}", discovery.targets));
    assert_eq!(image.written, "ghcr.io/acme/api:2.0");
    assert_eq!(image.line, 5, "the line of its own tag");
    let edits = manifest::edits_for(image, &tag("2.1"), discovery.quote_style).unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0].range,
        text.find("2.0").unwrap() + 2..text.find("2.0").unwrap() + 3
    );
}

#[test]
fn merge_key_that_loops_is_bounded() {
    let text = "a: &a\n  repository: acme/api\n  <<: *a\n  tag: \"1\"\n";
    let discovery = manifest::discover(Path::new("values.yaml"), text.as_bytes());
    assert!(!discovery.skipped);
    assert_eq!(discovery.targets.len(), 1);
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

#[test]
fn limitation_flow_sequence_closed_at_parent_indentation() {
    let text = "containers:\n  - image: nginx:1.0\n    args: [\n      \"-v\"\n    ]\n";
    let discovery = manifest::discover(Path::new("limitation.yaml"), text.as_bytes());
    assert!(discovery.skipped);
    assert!(discovery.targets.is_empty());
    assert!(
        discovery.warnings[0].message.contains("not valid YAML"),
        "{:?}",
        discovery.warnings
    );
}

#[test]
fn limitation_yaml_inside_a_string() {
    let text = "spec:\n  source:\n    helm:\n      values: |\n        image:\n          repository: nginx\n          tag: 1.0\n    kustomize:\n      images: [\"nginx=nginx:1.0\"]\n";
    let discovery = manifest::discover(Path::new("application.yaml"), text.as_bytes());
    assert!(!discovery.skipped);
    assert!(discovery.targets.is_empty(), "{:?}", discovery.targets);
}

#[test]
fn marker_after_other_comment_text_is_found() {
    let text = "image: nginx:1.2.3 # keep  # tagwatch: api\nother:\n  image: nginx:1.2.3 # keep # {\"$imagepolicy\": \"ns:name\"}\nthird:\n  image: nginx:1.2.3 # see mytagwatch: api\n";
    let discovery = manifest::discover(Path::new("markers.yaml"), text.as_bytes());
    let markers: Vec<Option<String>> = discovery
        .targets
        .iter()
        .map(|target| target.marker.as_ref().and_then(manifest::Marker::policy))
        .collect();
    assert_eq!(
        markers,
        [Some("api".to_string()), Some("ns:name".to_string()), None]
    );
    assert!(discovery.warnings.is_empty(), "{:?}", discovery.warnings);
}

/// Fuzzing finding 7: a name-only field holding a tag next to an empty tag field would be bumped into
/// `app:1.0:9.9.9`, which no tool reads. Discovery reports the field and makes no target of it; the
/// fields the tools read without a tag are still targets.
#[test]
fn a_kustomize_name_or_helm_repository_holding_a_tag_is_reported_not_bumped() {
    let cases = [
        (
            "images:\n- name: app:1.0\n  newTag: # c\n",
            "images[0].name: \"app:1.0\"",
        ),
        (
            "images:\n- name: app\n  newName: ghcr.io/x/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  newTag: ''\n",
            "images[0].newName:",
        ),
        (
            "image: {repository: ngs:x, tag: }\n",
            "the repository \"ngs:x\" holds a tag",
        ),
        (
            "chart:\n  image:\n    registry: quay.io\n    repository: org/app:2\n    tag: \"\"\n",
            "the repository \"org/app:2\" holds a tag",
        ),
    ];
    for (text, said) in cases {
        let discovery = manifest::discover(Path::new("values.yaml"), text.as_bytes());
        assert!(
            discovery.targets.is_empty(),
            "{text}: {:?}",
            discovery.targets
        );
        assert!(!discovery.skipped, "{text}");
        assert_eq!(
            discovery.warnings.len(),
            1,
            "{text}: {:?}",
            discovery.warnings
        );
        let warning = &discovery.warnings[0];
        assert_eq!(warning.kind, manifest::WarningKind::InvalidReference);
        assert!(
            warning.message.contains(said),
            "{text}: {}",
            warning.message
        );
        assert!(
            warning.message.ends_with("not bumped"),
            "{}",
            warning.message
        );
    }
    // Without a tag in the name, the same shapes are targets.
    for text in [
        "images:\n- name: app\n  newTag: # c\n",
        "image: {repository: ngs, tag: }\n",
        "image:\n  repository: registry.local:5000/app\n  tag: \"1.0\"\n",
    ] {
        let discovery = manifest::discover(Path::new("values.yaml"), text.as_bytes());
        assert_eq!(discovery.targets.len(), 1, "{text}: {:?}", discovery);
    }
}

/// Fuzzing finding 9: a character outside YAML's printable set makes the file "not YAML": libyaml
/// refuses it, so tagwatch skips it (never touched) and says which line and character.
#[test]
fn a_control_character_makes_the_file_skipped_with_its_line() {
    for (text, line, code) in [
        ("a: 1\nimage: \u{2}nginx:1.0\n", 2, "U+0002"),
        ("image: nginx:1.0 # \u{7f}\n", 1, "U+007F"),
        ("x:\n\n  image: \"nginx:1.0\u{9b}\"\n", 3, "U+009B"),
        ("image: nginx:1.0\u{fffe}\n", 1, "U+FFFE"),
    ] {
        let discovery = manifest::discover(Path::new("bad.yaml"), text.as_bytes());
        assert!(discovery.skipped, "{text:?}");
        assert!(discovery.targets.is_empty());
        let message = &discovery.warnings[0].message;
        assert!(
            message.starts_with(&format!(
                "bad.yaml:{line}: holds the control character {code}"
            )),
            "{message}"
        );
    }
    // Tabs, CRLF, NEL, a BOM and characters beyond the BMP are printable.
    let text = "\u{feff}a: 1\t\r\nb: \"x\u{85}y\"\nimage: nginx:1.0 # \u{1F600}\n";
    let discovery = manifest::discover(Path::new("ok.yaml"), text.as_bytes());
    assert!(!discovery.skipped, "{:?}", discovery.warnings);
    assert_eq!(discovery.targets.len(), 1);
}
