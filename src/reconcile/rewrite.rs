//! Carrying out the bumps of one file with `manifest`'s edits, checked on both sides: before an edit,
//! each target must still read `from` and name the same image (targets are found again by index, so a
//! file that changed since it was planned must not receive an edit meant for another field); after it,
//! the file must discover to the same targets, every bumped target must read exactly its `to`, and every
//! other target must read as before. Otherwise nothing of the file is written. Pure.
//!
//! The read-back parses the rewritten file again, unless every edit only swaps inert bytes inside one
//! field of its own target ([`derived_read_back`]): then the file tokenizes exactly as before, and what
//! parsing would find is derived from the edit itself. Debug builds (the tests, the fuzz targets) do
//! both and fail on any difference.

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
    let mut per_bump = Vec::with_capacity(bumps.len());
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
        per_bump.push(edits.len()..edits.len() + target_edits.len());
        edits.extend(target_edits);
    }
    let after = manifest::apply(bytes, &edits).map_err(|error| error.to_string())?;
    let derived = (after.len() <= manifest::discover::MAX_FILE_SIZE)
        .then(|| derived_read_back(bytes, discovery, bumps, &edits, &per_bump))
        .flatten();
    if let Some(written) = derived {
        if cfg!(debug_assertions) {
            let parsed = read_back(path, &after, discovery, bumps);
            assert_eq!(
                parsed.as_ref().ok(),
                Some(&written),
                "{}: the derived read-back differs from parsing the rewritten file",
                path.display()
            );
        }
        return Ok(Rewritten { after, written });
    }
    let written = read_back(path, &after, discovery, bumps)?;
    Ok(Rewritten { after, written })
}

/// Discovers `after` and checks it against `discovery`: the same targets, each bumped one reading its
/// `to`, every other one as before. Returns the bumped targets' new text, in `bumps` order.
fn read_back(
    path: &Path,
    after: &[u8],
    discovery: &Discovery,
    bumps: &[Planned<'_>],
) -> Result<Vec<String>, String> {
    let check = manifest::discover(path, after);
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
    Ok(written)
}

/// Bytes that end no scalar and start no token in any YAML context, plain or quoted: no space, no
/// indicator (`:#,[]{}&*!|>'"%@\``), no line break, no quote or escape.
fn inert(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// What [`read_back`] would return, found without parsing `after` again — or `None` when that is not
/// certain, and the file must be parsed. Certain when every edit replaces inert bytes with inert bytes
/// strictly inside the verbatim value of one field (plain or quoted), of its own target only, without
/// quoting it: the rewritten file then scans to the same tokens, the same structure and the same
/// scalars except those values, so discovery finds the same targets. The value stays a string that
/// starts with a letter, digit or `_` and is not a null (`null`), so each rule composes the target's
/// reference the same way; it is found once in the target's text, replaced there, and parsed: it must
/// still be a valid reference to the same image, and read the planned `to` where that is known.
/// Anything else (a digest, a quoted-on-write value, a field two targets share, several edited fields
/// in one target, a new name) returns `None`. The caller checks that the rewritten file is still within
/// discovery's size limit.
fn derived_read_back(
    bytes: &[u8],
    discovery: &Discovery,
    bumps: &[Planned<'_>],
    edits: &[manifest::Edit],
    per_bump: &[std::ops::Range<usize>],
) -> Option<Vec<String>> {
    let mut written = Vec::with_capacity(bumps.len());
    for (bump, range) in bumps.iter().zip(per_bump) {
        let target = discovery.targets.get(bump.target)?;
        let edits = &edits[range.clone()];
        if bump.edit.name.is_some() {
            return None;
        }
        let [edit] = edits else {
            // No edit (already at its values) or several fields: parse.
            return None;
        };
        let old = bytes.get(edit.range.clone())?;
        if edit.requoted || !inert(old) || !inert(edit.replacement.as_bytes()) {
            return None;
        }
        let mut holders = target.fields.iter().filter(|field| {
            field
                .range
                .as_ref()
                .is_some_and(|range| range.start <= edit.range.start && edit.range.end <= range.end)
        });
        let (Some(field), None) = (holders.next(), holders.next()) else {
            return None;
        };
        let field_range = field.range.clone()?;
        // Of no other target: a field reached through an alias or merged elsewhere is parsed.
        let shared = discovery
            .targets
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != bump.target)
            .flat_map(|(_, other)| &other.fields)
            .filter_map(|other| other.range.as_ref())
            .any(|other| other.start < field_range.end && field_range.start < other.end);
        if shared || field.shared.is_some() {
            return None;
        }
        // The field's new value.
        let before = &bytes[field_range.start..edit.range.start];
        let after = &bytes[edit.range.end..field_range.end];
        let old_value = &bytes[field_range.clone()];
        if old_value != field.value.as_bytes() {
            return None;
        }
        let mut value = Vec::with_capacity(before.len() + edit.replacement.len() + after.len());
        value.extend_from_slice(before);
        value.extend_from_slice(edit.replacement.as_bytes());
        value.extend_from_slice(after);
        let value = String::from_utf8(value).ok()?;
        let plain_string = |value: &str| {
            value
                .bytes()
                .next()
                .is_some_and(|first| first.is_ascii_alphanumeric() || first == b'_')
                && !matches!(value, "null" | "Null" | "NULL")
        };
        if !plain_string(&field.value) || !plain_string(&value) {
            return None;
        }
        // The target's text holds the old value once: that is the field's place in it.
        let mut places = target.written.match_indices(field.value.as_str());
        let (Some((at, _)), None) = (places.next(), places.next()) else {
            return None;
        };
        let mut text = String::with_capacity(target.written.len() + value.len());
        text.push_str(&target.written[..at]);
        text.push_str(&value);
        text.push_str(&target.written[at + field.value.len()..]);
        let reference = crate::reference::ImageReference::parse(&text).ok()?;
        if reference.name() != target.reference.name() || bump.to.is_some_and(|to| to != text) {
            return None;
        }
        written.push(text);
    }
    Some(written)
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

    /// A bump of `FILE`'s first target, `r.io/acme/a:1.0.0`.
    fn first(edit: &Edit) -> Planned<'_> {
        Planned {
            target: 0,
            from: "r.io/acme/a:1.0.0",
            image: "r.io/acme/a",
            edit,
            to: None,
        }
    }

    fn discovery(text: &str) -> Discovery {
        manifest::discover(Path::new("pod.yaml"), text.as_bytes())
    }

    #[test]
    fn a_bump_rewrites_only_its_target_and_reports_the_new_text() {
        let found = discovery(FILE);
        let edit = edit("1.1.0");
        let planned = first(&edit);
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

    /// `derived_read_back` for one bump of target `target` of `text` to `tag`.
    fn derived(text: &str, target: usize, tag: &str) -> Option<Vec<String>> {
        derived_in(&discovery(text), text, target, tag)
    }

    fn derived_in(found: &Discovery, text: &str, target: usize, tag: &str) -> Option<Vec<String>> {
        let edit = edit(tag);
        let image = found.targets[target].reference.name();
        let planned = Planned {
            target,
            from: &found.targets[target].written,
            image: &image,
            edit: &edit,
            to: None,
        };
        let edits = manifest::edits_for(&found.targets[target], &edit, found.quote_style).unwrap();
        let count = edits.len();
        derived_read_back(
            text.as_bytes(),
            found,
            &[planned],
            &edits,
            std::slice::from_ref(&(0..count)),
        )
    }

    #[test]
    fn an_inert_tag_swap_is_read_back_without_a_second_parse() {
        assert_eq!(
            derived(FILE, 1, "2.10.0-rc_1"),
            Some(vec!["r.io/acme/b:2.10.0-rc_1".to_string()])
        );
        let kustomize = "images:\n  - name: r.io/acme/a\n    newTag: \"1.0\"\n";
        assert_eq!(
            derived(kustomize, 0, "1.1"),
            Some(vec!["r.io/acme/a:1.1".to_string()])
        );
        let helm = "image:\n  repository: acme/a\n  tag: 1.0.0 # pinned\n";
        assert_eq!(
            derived(helm, 0, "1.0.1"),
            Some(vec!["acme/a:1.0.1".to_string()])
        );
    }

    #[test]
    fn edits_that_could_change_how_the_file_reads_are_parsed_again() {
        // A value that would read as a null, or as a number once plain (quoted on write).
        let kustomize = "images:\n  - name: r.io/acme/a\n    newTag: 1.0.0\n";
        assert_eq!(derived(kustomize, 0, "null"), None);
        assert_eq!(derived(kustomize, 0, "1.10"), None);
        // A field another target also reads (as two targets found through one anchor would).
        let mut found = discovery(FILE);
        let twin = found.targets[0].clone();
        found.targets.push(twin);
        assert_eq!(derived_in(&found, FILE, 0, "1.1.0"), None);
        // Already at the tag: no edit, nothing to derive from.
        assert_eq!(derived(FILE, 0, "1.0.0"), None);
    }

    #[test]
    fn a_bump_that_would_push_the_file_past_the_size_limit_is_refused() {
        // Exactly at discovery's limit; one byte more and discovery skips the file.
        let limit = manifest::discover::MAX_FILE_SIZE;
        let mut text = FILE.to_string();
        text.push('#');
        text.push_str(&"x".repeat(limit - text.len() - 1));
        text.push('\n');
        assert_eq!(text.len(), limit);
        let found = discovery(&text);
        assert_eq!(found.targets.len(), 2);
        let edit = edit("1.0.10");
        let planned = first(&edit);
        let error =
            rewrite(Path::new("pod.yaml"), text.as_bytes(), &found, &[planned]).unwrap_err();
        assert!(error.contains("would not read back"), "{error}");
    }
}
