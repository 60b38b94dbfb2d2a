//! Carrying out the bumps of one file with `manifest`'s edits, and reading the result back: the new
//! content is accepted only when it re-discovers the same targets, and each bumped target's new text is
//! taken from that second discovery (so `plan` shows exactly what `run` writes).

use std::path::Path;

use crate::manifest::{self, Discovery};

/// The bumped file: new bytes and, per bumped target index, the reference as now written.
#[derive(Debug)]
pub(crate) struct Rewritten {
    pub after: Vec<u8>,
    pub written: Vec<(usize, String)>,
}

/// Applies `bumps` (target index in `discovery`, bump) to `bytes`.
pub(crate) fn rewrite(
    path: &Path,
    bytes: &[u8],
    discovery: &Discovery,
    bumps: &[(usize, manifest::Bump)],
) -> Result<Rewritten, String> {
    let mut edits = Vec::new();
    for (index, bump) in bumps {
        let target = &discovery.targets[*index];
        let target_edits =
            manifest::edits_for(target, bump, discovery.quote_style).map_err(|error| {
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
        return Err("the rewritten file would not read back the same; left alone".to_string());
    }
    let written = bumps
        .iter()
        .map(|(index, _)| (*index, check.targets[*index].written.clone()))
        .collect();
    Ok(Rewritten { after, written })
}
