//! Carrying out the bumps of one file with `manifest`'s edits, checked on both sides: before an edit,
//! each target must still read `from` and name the same image (targets are found again by index, so a
//! file that changed since it was planned must not receive an edit meant for another field); after it,
//! the file must discover to the same targets, every bumped target must read exactly its `to`, and every
//! other target must read as before. Otherwise nothing of the file is written. Pure.

use std::path::Path;

use crate::manifest::{self, Discovery};

use super::Bump;

/// The bumped file: new bytes and, per bump (in the order given), the reference as now written.
#[derive(Debug)]
pub struct Rewritten {
    pub after: Vec<u8>,
    pub written: Vec<String>,
}

/// One bump of a file, before its `to` text is known.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub target: usize,
    /// The target's reference as written when it was planned.
    pub from: &'a str,
    /// Its normalized image.
    pub image: &'a str,
    pub edit: &'a manifest::Bump,
    /// What the target must read after the edit; `None` while planning (the text is learnt here).
    pub to: Option<&'a str>,
}

impl<'a> From<&'a Bump> for Planned<'a> {
    fn from(bump: &'a Bump) -> Self {
        Planned {
            target: bump.target,
            from: &bump.from,
            image: &bump.image,
            edit: &bump.edit,
            to: Some(&bump.to),
        }
    }
}

/// Applies `bumps` to `bytes` (`discovery` is `manifest::discover(path, bytes)`); the error says why
/// the file is left unchanged.
pub fn rewrite(
    path: &Path,
    bytes: &[u8],
    discovery: &Discovery,
    bumps: &[Planned<'_>],
) -> Result<Rewritten, String> {
    let mut edits = Vec::new();
    for bump in bumps {
        let Some(target) = discovery.targets.get(bump.target) else {
            return Err("the file changed since it was planned".to_string());
        };
        if target.written != bump.from || !names_image(target, bump.image) {
            return Err(format!(
                "line {}: the target reads `{}` now, not `{}`: the file changed since it was planned",
                target.line, target.written, bump.from
            ));
        }
        let target_edits =
            manifest::edits_for(target, bump.edit, discovery.quote_style).map_err(|error| {
                format!(
                    "line {}: cannot bump `{}`: {error}",
                    target.line, target.written
                )
            })?;
        edits.extend(target_edits);
    }
    let after = manifest::apply(bytes, &edits).map_err(|error| error.to_string())?;
    let check = manifest::discover(path, &after);
    if check.skipped || check.targets.len() != discovery.targets.len() {
        return Err("the rewritten file would not read back the same targets".to_string());
    }
    let mut written = Vec::with_capacity(bumps.len());
    for (index, (before, now)) in discovery.targets.iter().zip(&check.targets).enumerate() {
        let bumped = bumps.iter().find(|bump| bump.target == index);
        match bumped {
            None if before.written != now.written => {
                return Err(format!(
                    "line {}: an edit would also change `{}`, which is not being bumped",
                    before.line, before.written
                ));
            }
            Some(bump) if bump.to.is_some_and(|to| to != now.written) => {
                return Err(format!(
                    "line {}: the bumped target would read `{}`, not the planned `{}`",
                    before.line,
                    now.written,
                    bump.to.unwrap_or_default()
                ));
            }
            Some(bump)
                if now.reference.name() != before.reference.name() && bump.edit.name.is_none() =>
            {
                return Err(format!(
                    "line {}: the bumped target would name another image (`{}`)",
                    before.line, now.written
                ));
            }
            _ => {}
        }
    }
    for bump in bumps {
        written.push(check.targets[bump.target].written.clone());
    }
    Ok(Rewritten { after, written })
}

/// Whether `target` deploys `image`, or (a kustomize entry) matches it by `name`.
fn names_image(target: &manifest::Target, image: &str) -> bool {
    target.reference.name() == image
        || target
            .field(manifest::Role::Name)
            .and_then(|field| crate::reference::normalize_name(&field.value).ok())
            .is_some_and(|name| name == image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Bump as Edit, DigestChange};

    const FILE: &str = "containers:\n  - name: a\n    image: r.io/acme/a:1.0.0\n  - name: b\n    image: r.io/acme/b:2.0.0\n";

    fn edit(tag: &str) -> Edit {
        Edit {
            name: None,
            tag: Some(tag.to_string()),
            digest: DigestChange::Keep,
        }
    }

    fn discovery(text: &str) -> Discovery {
        manifest::discover(Path::new("pod.yaml"), text.as_bytes())
    }

    #[test]
    fn a_bump_rewrites_only_its_target_and_reports_the_new_text() {
        let found = discovery(FILE);
        let edit = edit("1.1.0");
        let planned = Planned {
            target: 0,
            from: "r.io/acme/a:1.0.0",
            image: "r.io/acme/a",
            edit: &edit,
            to: None,
        };
        let done = rewrite(Path::new("pod.yaml"), FILE.as_bytes(), &found, &[planned]).unwrap();
        assert_eq!(
            String::from_utf8(done.after).unwrap(),
            FILE.replace("a:1.0.0", "a:1.1.0")
        );
        assert_eq!(done.written, vec!["r.io/acme/a:1.1.0".to_string()]);
    }

    #[test]
    fn a_target_that_no_longer_reads_from_is_not_edited() {
        let found = discovery(FILE);
        let edit = edit("1.1.0");
        // Planned against another version of the file: index 0 now holds something else.
        let planned = Planned {
            target: 0,
            from: "r.io/acme/a:0.9.0",
            image: "r.io/acme/a",
            edit: &edit,
            to: None,
        };
        let error =
            rewrite(Path::new("pod.yaml"), FILE.as_bytes(), &found, &[planned]).unwrap_err();
        assert!(error.contains("changed since it was planned"), "{error}");
    }

    #[test]
    fn a_target_that_names_another_image_is_not_edited() {
        let found = discovery(FILE);
        let edit = edit("2.1.0");
        let planned = Planned {
            target: 1,
            from: "r.io/acme/b:2.0.0",
            image: "r.io/acme/a",
            edit: &edit,
            to: None,
        };
        assert!(rewrite(Path::new("pod.yaml"), FILE.as_bytes(), &found, &[planned]).is_err());
    }

    #[test]
    fn a_result_that_does_not_read_back_as_planned_is_refused() {
        let found = discovery(FILE);
        let edit = edit("1.1.0");
        let planned = Planned {
            target: 0,
            from: "r.io/acme/a:1.0.0",
            image: "r.io/acme/a",
            edit: &edit,
            to: Some("r.io/acme/a:1.2.0"),
        };
        let error =
            rewrite(Path::new("pod.yaml"), FILE.as_bytes(), &found, &[planned]).unwrap_err();
        assert!(error.contains("not the planned"), "{error}");
    }
}
