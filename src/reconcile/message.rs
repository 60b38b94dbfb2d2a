//! Commit messages: the configured template (docs/design/reconcile.md variables) plus trailers that make every commit
//! traceable to its policies and registry tags, and let a later cycle recognise tagwatch's own changes.

use std::collections::BTreeSet;

use super::Bump;

/// One trailer per policy involved.
pub const TRAILER_POLICY: &str = "Tagwatch-Policy";
/// One trailer per change: `FILE IMAGE FROM -> TO` (versions as `tag` or `tag@digest`).
pub const TRAILER_BUMP: &str = "Tagwatch-Bump";
/// One trailer per promoted change: `IMAGE TO ran in UPSTREAM since TIME (commit ID)[, statuses …]`.
pub const TRAILER_PROMOTION: &str = "Tagwatch-Promotion";

/// Renders `template` for `bumps` (one commit's worth) and appends the trailers.
///
/// Variables: `{summary}` (one line), `{changes}` (one line per change), `{policy}`, `{image}`, `{from}`,
/// `{to}` (the distinct values, comma-separated when there are several).
pub fn render_message(template: &str, bumps: &[Bump]) -> String {
    let distinct = |field: fn(&Bump) -> &str| {
        let values: BTreeSet<&str> = bumps.iter().map(field).collect();
        values.into_iter().collect::<Vec<_>>().join(", ")
    };
    let changes = bumps
        .iter()
        .map(|bump| {
            let mut line = format!(
                "- {}:{} {} {} → {} ({})",
                bump.file, bump.line, bump.image, bump.from_version, bump.to_version, bump.policy
            );
            if let Some(evidence) = &bump.evidence {
                line.push_str(&format!(": {evidence}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut message = String::new();
    let mut rest = template;
    // One pass over the template, so a value containing `{…}` is never expanded again.
    while let Some(start) = rest.find('{') {
        message.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find('}') else {
            message.push_str(after);
            rest = "";
            break;
        };
        let value = match &after[1..end] {
            "summary" => summary(bumps),
            "changes" => changes.clone(),
            "policy" => distinct(|b| &b.policy),
            "image" => distinct(|b| &b.image),
            "from" => distinct(|b| &b.from_version),
            "to" => distinct(|b| &b.to_version),
            _ => after[..=end].to_string(),
        };
        message.push_str(&value);
        rest = &after[end + 1..];
    }
    message.push_str(rest);
    let mut message = message.trim_end().to_string();
    message.push_str("\n\n");
    let policies: BTreeSet<&str> = bumps.iter().map(|b| b.policy.as_str()).collect();
    for policy in policies {
        message.push_str(&format!("{TRAILER_POLICY}: {policy}\n"));
    }
    for bump in bumps {
        message.push_str(&format!(
            "{TRAILER_BUMP}: {} {} {} -> {}\n",
            bump.file, bump.image, bump.from_version, bump.to_version
        ));
    }
    let promoted: BTreeSet<String> = bumps
        .iter()
        .filter_map(|bump| {
            let evidence = bump.evidence.as_ref()?;
            Some(format!("{} {} {evidence}", bump.image, bump.to_version))
        })
        .collect();
    for line in promoted {
        message.push_str(&format!("{TRAILER_PROMOTION}: {line}\n"));
    }
    message
}

/// `bump IMAGE FROM → TO`, `bump IMAGE to TO`, or `bump N images`.
fn summary(bumps: &[Bump]) -> String {
    let images: BTreeSet<&str> = bumps.iter().map(|b| b.image.as_str()).collect();
    if images.len() != 1 {
        return format!("bump {} images", images.len());
    }
    let image = images.into_iter().next().unwrap_or_default();
    let froms: BTreeSet<&str> = bumps.iter().map(|b| b.from_version.as_str()).collect();
    let tos: BTreeSet<&str> = bumps.iter().map(|b| b.to_version.as_str()).collect();
    match (froms.len(), tos.len()) {
        (1, 1) => format!(
            "bump {image} {} → {}",
            bumps[0].from_version, bumps[0].to_version
        ),
        (_, 1) => format!("bump {image} to {}", bumps[0].to_version),
        _ => format!("bump {image} ({} changes)", bumps.len()),
    }
}

/// A parsed `Tagwatch-Bump` trailer value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BumpTrailer {
    pub file: String,
    pub image: String,
    pub from: String,
    pub to: String,
}

/// Reads `FILE IMAGE FROM -> TO` (the file may contain spaces; the other parts cannot).
pub(crate) fn parse_bump_trailer(value: &str) -> Option<BumpTrailer> {
    let tokens: Vec<&str> = value.split(' ').collect();
    let n = tokens.len();
    if n < 5 || tokens[n - 2] != "->" {
        return None;
    }
    Some(BumpTrailer {
        file: tokens[..n - 4].join(" "),
        image: tokens[n - 4].to_string(),
        from: tokens[n - 3].to_string(),
        to: tokens[n - 1].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(file: &str, line: usize, image: &str, from: &str, to: &str) -> Bump {
        Bump {
            repository: "prod".into(),
            file: file.into(),
            line,
            policy: "api".into(),
            image: image.into(),
            from: format!("{image}:{from}"),
            to: format!("{image}:{to}"),
            from_version: from.into(),
            to_version: to.into(),
            group: "prod".into(),
            target: 0,
            evidence: None,
            next: None,
            edit: crate::manifest::Bump {
                name: None,
                tag: Some(to.into()),
                digest: crate::manifest::DigestChange::Keep,
            },
        }
    }

    #[test]
    fn one_change_message_with_trailers() {
        let bumps = [bump(
            "apps/api.yaml",
            9,
            "ghcr.io/acme/api",
            "1.0.0",
            "1.1.0",
        )];
        insta::assert_snapshot!(render_message(
            "chore(images): {summary}\n\n{changes}",
            &bumps
        ));
    }

    #[test]
    fn several_images_and_every_variable() {
        let bumps = [
            bump("apps/api.yaml", 9, "ghcr.io/acme/api", "1.0.0", "1.1.0"),
            bump("apps/web.yaml", 12, "ghcr.io/acme/web", "2.0.0", "2.3.1"),
        ];
        insta::assert_snapshot!(render_message(
            "deploy: {summary} [{policy}] {image} {from} -> {to} {unknown}\n\n{changes}",
            &bumps
        ));
    }

    #[test]
    fn a_value_with_braces_is_not_expanded_again() {
        let bumps = [bump("{summary}.yaml", 1, "ghcr.io/acme/api", "1", "2")];
        let message = render_message("{changes}", &bumps);
        assert!(message.starts_with("- {summary}.yaml:1 "), "{message}");
    }

    #[test]
    fn bump_trailer_round_trips_with_spaces_in_the_file() {
        let bumps = [bump(
            "my apps/api.yaml",
            3,
            "ghcr.io/acme/api",
            "1.0.0",
            "1.1.0",
        )];
        let message = render_message("{summary}", &bumps);
        let value = message
            .lines()
            .find_map(|line| line.strip_prefix("Tagwatch-Bump: "))
            .unwrap();
        assert_eq!(
            parse_bump_trailer(value),
            Some(BumpTrailer {
                file: "my apps/api.yaml".into(),
                image: "ghcr.io/acme/api".into(),
                from: "1.0.0".into(),
                to: "1.1.0".into(),
            })
        );
        assert_eq!(parse_bump_trailer("nonsense"), None);
    }
}
