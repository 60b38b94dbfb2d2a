//! Property test: YAML documents with image fields in random styles (quote styles, flow and block
//! collections, block scalars, comments, CRLF, BOM, missing final newline, non-ASCII text, several
//! documents) are discovered completely and rewritten under the three invariants. `tests/run.sh` sets
//! `PROPTEST_CASES=256`.

use proptest::prelude::*;
use tagwatch::manifest::{self, Bump, DigestChange};

use crate::invariants::check_rewrite;

fn reference() -> impl Strategy<Value = String> {
    let registry = prop::sample::select(vec![
        "",
        "docker.io/",
        "ghcr.io/",
        "host:5000/",
        "localhost/",
    ]);
    let path = prop::sample::select(vec![
        "nginx",
        "acme/api",
        "a/b/c",
        "library/redis",
        "x-y_z.w",
    ]);
    let tag = prop::option::of(prop::sample::select(vec![
        "1.0",
        "1.10",
        "v2.3.4",
        "latest",
        "2023.5.4",
        "1e3",
        "16",
        "Build-135",
        "0x1F",
    ]));
    let digest = prop::option::of(Just(format!("sha256:{}", "c".repeat(64))));
    (registry, path, tag, digest).prop_map(|(registry, path, tag, digest)| {
        let mut text = format!("{registry}{path}");
        if let Some(tag) = tag {
            text = format!("{text}:{tag}");
        }
        if let Some(digest) = digest {
            text = format!("{text}@{digest}");
        }
        text
    })
}

/// A scalar written in one of the styles a value can take; `indent` is the block's indentation.
fn styled(value: &str, style: u8, indent: usize) -> String {
    match style {
        0 => format!("'{value}'"),
        1 => format!("\"{value}\""),
        2 => format!(">-\n{}{value}", " ".repeat(indent + 2)),
        _ => value.to_string(),
    }
}

/// Strategy for a tag value of a Helm map (plain values may need quotes, which the generator adds).
fn tag_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["1.0", "v1", "2.3.4", "latest", "7"]).prop_map(str::to_string)
}

#[derive(Debug, Clone)]
struct Piece {
    text: String,
    images: usize,
}

fn comment() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        " # note",
        " # café ☕",
        "\t# tab",
        " # {\"x\": 1}",
    ])
    .prop_map(str::to_string)
}

fn container_list() -> impl Strategy<Value = Piece> {
    (
        prop::collection::vec((reference(), 0u8..4, comment()), 1..4),
        any::<bool>(),
    )
        .prop_map(|(images, flow)| {
            let count = images.len();
            let text = if flow {
                let items: Vec<String> = images
                    .iter()
                    .map(|(image, style, _)| {
                        format!("{{name: c, image: {}}}", styled(image, style % 2, 0))
                    })
                    .collect();
                format!("spec:\n  containers: [{}]\n", items.join(", "))
            } else {
                let mut text =
                    "spec:\n  template:\n    spec:\n      initContainers: []\n      containers:\n"
                        .to_string();
                for (image, style, comment) in &images {
                    let comment = if *style == 2 { "" } else { comment.as_str() };
                    text.push_str(&format!(
                        "        - name: wörker\n          image: {}{comment}\n",
                        styled(image, *style, 10)
                    ));
                }
                text
            };
            Piece {
                text,
                images: count,
            }
        })
}

fn helm_map() -> impl Strategy<Value = Piece> {
    (
        reference(),
        tag_value(),
        0u8..4,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(_, tag, style, registry, digest)| {
            let tag = match style {
                0 => format!("'{tag}'"),
                1 => format!("\"{tag}\""),
                _ => tag,
            };
            let mut text = "values:\n  app:\n    image:\n".to_string();
            if registry {
                text.push_str("      registry: ghcr.io\n");
            }
            text.push_str(&format!(
                "      repository: acme/api # repo\n      tag: {tag}\n"
            ));
            if digest {
                text.push_str(&format!("      digest: sha256:{}\n", "d".repeat(64)));
            }
            text.push_str("      pullPolicy: IfNotPresent\n");
            Piece { text, images: 1 }
        })
}

fn compose() -> impl Strategy<Value = Piece> {
    (reference(), 0u8..4, comment()).prop_map(|(image, style, comment)| {
        let comment = if style == 2 { String::new() } else { comment };
        Piece {
            text: format!(
                "services:\n  web:\n    image: {}{comment}\n    command: |\n      echo \"image: x:1\"\n",
                styled(&image, style, 4)
            ),
            images: 1,
        }
    })
}

fn kustomize() -> impl Strategy<Value = Piece> {
    (tag_value(), 0u8..3).prop_map(|(tag, style)| Piece {
        text: format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: nginx\n    newName: ghcr.io/mirror/nginx\n    newTag: {}\n",
            styled(&tag, style, 4)
        ),
        images: 1,
    })
}

prop_compose! {
    fn document()(
        pieces in prop::collection::vec(prop_oneof![container_list(), helm_map(), compose(), kustomize()], 1..4),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        final_newline in any::<bool>(),
        preamble in prop::sample::select(vec!["", "# généré — ☕\n", "---\n", "%YAML 1.2\n---\n"]),
    ) -> (Vec<u8>, usize) {
        let images = pieces.iter().map(|piece| piece.images).sum();
        let mut text = preamble.to_string();
        let bodies: Vec<String> = pieces.into_iter().map(|piece| piece.text).collect();
        text.push_str(&bodies.join("---\n"));
        if !final_newline {
            text.pop();
        }
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        let mut bytes = Vec::new();
        if bom {
            bytes.extend_from_slice("\u{feff}".as_bytes());
        }
        bytes.extend_from_slice(text.as_bytes());
        (bytes, images)
    }
}

proptest! {
    #[test]
    fn random_documents_keep_the_three_invariants(
        (bytes, images) in document(),
        new_tag in prop::sample::select(vec!["1.10", "2.0.0", "1e3", "true", "0x1F", "v9", "1_000"]),
    ) {
        let discovery = manifest::discover(std::path::Path::new("generated.yaml"), &bytes);
        prop_assert!(!discovery.skipped, "{:?}\n{}", discovery.warnings, String::from_utf8_lossy(&bytes));
        prop_assert_eq!(discovery.targets.len(), images, "{}", String::from_utf8_lossy(&bytes));
        let tag = check_rewrite("generated.yaml", &bytes, &|_| Bump {
            name: None,
            tag: Some(new_tag.to_string()),
            digest: DigestChange::Keep,
        });
        prop_assert!(tag.refused.is_empty(), "{:?}", tag.refused);
        check_rewrite("generated.yaml", &bytes, &|_| Bump {
            name: None,
            tag: None,
            digest: DigestChange::Set(format!("sha256:{}", "e".repeat(64))),
        });
        check_rewrite("generated.yaml", &bytes, &|_| Bump {
            name: Some("registry.example.com:5000/team/app".to_string()),
            tag: Some(new_tag.to_string()),
            digest: DigestChange::Remove,
        });
    }
}

/// A generated document with a few YAML-ish lines spliced in (at the indentation of the line before):
/// some still parse, with image fields in places the generator alone does not produce.
fn noisy_text() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec![
        "image: nginx:1.0",
        "- image: 'a/b:1'",
        "image: \"c:2\" # x",
        "containers:",
        "- name: x",
        "tag: 1.0",
        "tag: ''",
        "tag:",
        "repository: r",
        "registry: ghcr.io",
        "digest: \"\"",
        "services:",
        "web:",
        "images:",
        "- name: n",
        "newTag: v1",
        "newName: m/n",
        "# c",
        "---",
        "...",
        "x: [a, {image: b:1}]",
        "y: |",
        "z: &x nginx:2",
        "image: *x",
        "é: ☕",
        "image: >-",
        "image: 'q:1' # tagwatch: p",
        "image: r:1 # {\"$imagepolicy\": \"n:p\"}",
        "image: ${X}:1",
        "image: [a]",
        "image: {repository: s, tag: 1}",
        "- {image: t:1}",
        "base: &m {repository: u, tag: 1}",
        "<<: *m",
        "<<: [*m, *x]",
        "image: {<<: *m, tag: 2}",
        "- {<<: *m, repository: v}",
        "- <<: *m",
        "w: &n {<<: *m, registry: ghcr.io}",
        "<<: *n",
    ]);
    (
        document(),
        prop::collection::vec((any::<prop::sample::Index>(), line), 0..4),
    )
        .prop_map(|((bytes, _), insertions)| {
            let text = String::from_utf8(bytes).unwrap();
            let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
            for (at, line) in insertions {
                let at = at.index(lines.len() + 1);
                let indent = at
                    .checked_sub(1)
                    .map(|previous| lines[previous].len() - lines[previous].trim_start().len())
                    .unwrap_or(0);
                let ending = if text.contains('\r') { "\r" } else { "" };
                lines.insert(at, format!("{}{line}{ending}", " ".repeat(indent)));
            }
            lines.join("\n")
        })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_and_keeps_the_invariants(text in noisy_text()) {
        let discovery = manifest::discover(std::path::Path::new("noise.yaml"), text.as_bytes());
        if !discovery.skipped && !discovery.targets.is_empty() {
            check_rewrite("noise.yaml", text.as_bytes(), &|_| Bump {
                name: None,
                tag: Some("1.10".to_string()),
                digest: DigestChange::Set(format!("sha256:{}", "f".repeat(64))),
            });
            check_rewrite("noise.yaml", text.as_bytes(), &|_| Bump {
                name: Some("h:5000/new/name".to_string()),
                tag: Some("true".to_string()),
                digest: DigestChange::Remove,
            });
        }
    }
}
