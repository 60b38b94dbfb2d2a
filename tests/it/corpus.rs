//! The corpus sweep: every real-world file under `tests/corpus/files/` (see its README for sources and
//! licences) is discovered (one snapshot per file, compared with the hand count in `INDEX.tsv`) and
//! rewritten to a new tag and, separately, to a new digest under the three invariants.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tagwatch::manifest::{self, Bump, DigestChange, Target};

use crate::invariants::check_rewrite;

/// A tag that needs quoting in a plain scalar, so the sweep also exercises requoting.
pub const NEW_TAG: &str = "1.10";
pub const NEW_DIGEST: &str =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

struct Row {
    local_path: String,
    kind: String,
    counted: usize,
}

fn rows() -> Vec<Row> {
    let index = std::fs::read_to_string(corpus_dir().join("INDEX.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            Row {
                local_path: columns[0].to_string(),
                kind: columns[4].to_string(),
                counted: columns[5].parse().unwrap(),
            }
        })
        .collect()
}

fn describe(target: &Target) -> String {
    let fields: Vec<String> = target
        .fields
        .iter()
        .map(|field| {
            let verbatim = if field.range.is_some() {
                ""
            } else {
                " not-verbatim"
            };
            format!(
                "{:?}@{} {:?}{verbatim}",
                field.role, field.line, field.style
            )
        })
        .collect();
    let mut line = format!(
        "L{} {:?} [{}] {} `{}` => {}",
        target.line, target.kind, target.rule, target.path, target.written, target.reference
    );
    let _ = write!(line, "\n    fields: {}", fields.join(", "));
    if let Some(marker) = &target.marker {
        let _ = write!(line, "\n    marker: {marker:?}");
    }
    if target.via_alias {
        line.push_str("\n    via alias (the anchor is rewritten)");
    }
    line
}

#[test]
fn corpus_discovery_snapshots_and_rewrite_invariants() {
    let rows = rows();
    assert_eq!(rows.len(), 297, "INDEX.tsv rows");
    let (mut found_total, mut counted_total, mut differing) = (0, 0, Vec::new());
    let mut rewritten_total = (0, 0);
    for row in &rows {
        let path = corpus_dir().join(&row.local_path);
        let bytes = std::fs::read(&path).unwrap();
        let discovery = manifest::discover(Path::new(&row.local_path), &bytes);
        found_total += discovery.targets.len();
        counted_total += row.counted;

        let mut snapshot = format!(
            "file: {}\nkind: {}\nINDEX count: {}\nfound: {}\n",
            row.local_path,
            row.kind,
            row.counted,
            discovery.targets.len()
        );
        if discovery.targets.len() != row.counted {
            differing.push(format!(
                "{} (index {}, found {})",
                row.local_path,
                row.counted,
                discovery.targets.len()
            ));
            snapshot.push_str("count differs from INDEX: see the warnings below\n");
        }
        if discovery.skipped {
            snapshot.push_str("SKIPPED\n");
        }
        for target in &discovery.targets {
            let _ = writeln!(snapshot, "{}", describe(target));
        }
        for warning in &discovery.warnings {
            let _ = writeln!(snapshot, "warning L{}: {}", warning.line, warning.message);
        }

        let name = row.local_path.as_str();
        let tag = check_rewrite(name, &bytes, &|_| Bump {
            name: None,
            tag: Some(NEW_TAG.to_string()),
            digest: DigestChange::Keep,
        });
        let digest = check_rewrite(name, &bytes, &|_| Bump {
            name: None,
            tag: None,
            digest: DigestChange::Set(NEW_DIGEST.to_string()),
        });
        assert_eq!(
            tag.not_loadable, None,
            "{name}: every corpus file loads with libyaml"
        );
        rewritten_total.0 += tag.rewritten;
        rewritten_total.1 += digest.rewritten;
        let _ = writeln!(
            snapshot,
            "new tag {NEW_TAG}: {} rewritten, {} requoted, {} refused",
            tag.rewritten,
            tag.requoted,
            tag.refused.len()
        );
        for refused in &tag.refused {
            let _ = writeln!(snapshot, "  refused L{refused}");
        }
        let _ = writeln!(
            snapshot,
            "new digest: {} rewritten, {} refused",
            digest.rewritten,
            digest.refused.len()
        );
        for refused in &digest.refused {
            let _ = writeln!(snapshot, "  refused L{refused}");
        }
        let snapshot_name = row
            .local_path
            .trim_start_matches("files/")
            .replace('/', "__");
        insta::assert_snapshot!(snapshot_name, snapshot);
    }
    insta::assert_snapshot!(
        "corpus_summary",
        format!(
            "files: {}\nreferences found: {found_total}\nreferences counted in INDEX.tsv: {counted_total}\n\
             rewritten to a new tag: {}\nrewritten to a new digest: {}\nfiles whose count differs:\n  {}\n",
            rows.len(),
            rewritten_total.0,
            rewritten_total.1,
            differing.join("\n  ")
        )
    );
}

/// The read-back after a bump (`reconcile::rewrite`) is derived without a second parse when the edit
/// swaps inert bytes inside one field; over every target of the corpus and tags that take either path
/// (inert, requoted, a null word, a new prefix), the result must be what discovering the rewritten file
/// finds: the same number of targets, the bumped one reading the returned text, every other unchanged.
#[test]
fn the_read_back_of_every_corpus_bump_matches_discovering_the_rewritten_file() {
    use tagwatch::reconcile::rewrite::{Planned, rewrite};
    let (mut bumped, mut refused) = (0, 0);
    for row in rows() {
        let path = corpus_dir().join(&row.local_path);
        let bytes = std::fs::read(&path).unwrap();
        let discovery = manifest::discover(&path, &bytes);
        for (index, target) in discovery.targets.iter().enumerate() {
            for tag in ["9.9.9", "v10-rc.1_b", "null", "1.10", "x"] {
                let edit = Bump {
                    name: None,
                    tag: Some(tag.to_string()),
                    digest: DigestChange::Keep,
                };
                let image = target.reference.name();
                let planned = Planned {
                    target: index,
                    from: &target.written,
                    image: &image,
                    edit: &edit,
                    to: None,
                };
                let Ok(rewritten) = rewrite(&path, &bytes, &discovery, &[planned]) else {
                    refused += 1;
                    continue;
                };
                bumped += 1;
                let again = manifest::discover(&path, &rewritten.after);
                let name = format!("{}: target {index} to {tag}", row.local_path);
                assert_eq!(again.targets.len(), discovery.targets.len(), "{name}");
                assert_eq!(
                    rewritten.written,
                    [again.targets[index].written.clone()],
                    "{name}"
                );
                for (other, (before, now)) in
                    discovery.targets.iter().zip(&again.targets).enumerate()
                {
                    if other != index {
                        assert_eq!(before.written, now.written, "{name}: target {other}");
                    }
                }
            }
        }
    }
    assert!(bumped > 2_000, "{bumped} bumps checked ({refused} refused)");
}
