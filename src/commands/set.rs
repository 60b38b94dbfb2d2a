//! `tagwatch set IMAGE=REF [PATH ...] [--dry-run]` (SPEC §2): bump every reference to IMAGE under the
//! paths, byte-exactly. Plans every file first, then writes; each write is atomic.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::commands::{EXIT_FAILURE, EXIT_USAGE};
use crate::manifest::assignment::{Assignment, rewrite_file};
use crate::manifest::files;

/// One file whose content changes.
struct Planned {
    path: PathBuf,
    before: Vec<u8>,
    after: Vec<u8>,
    /// `LINE: from -> to` for each bumped target.
    changes: Vec<String>,
}

pub fn run(assignment: &str, paths: &[PathBuf], dry_run: bool) -> anyhow::Result<ExitCode> {
    let assignment = match Assignment::parse(assignment) {
        Ok(assignment) => assignment,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let default = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let files = match files::collect(paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::from(error));
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };

    let mut failures = 0usize;
    let mut planned = Vec::new();
    for path in &files {
        match plan_file(path, &assignment) {
            Ok(Some(file)) => planned.push(file),
            Ok(None) => {}
            Err(count) => failures += count,
        }
    }

    let mut stdout = std::io::stdout().lock();
    let mut references = 0;
    for file in &planned {
        if dry_run {
            write!(
                stdout,
                "{}",
                unified_diff(&file.path, &file.before, &file.after)
            )?;
        } else if let Err(error) = files::write_atomic(&file.path, &file.after) {
            eprintln!("error: {:#}", anyhow::Error::from(error));
            failures += 1;
            continue;
        }
        if !dry_run {
            for change in &file.changes {
                writeln!(stdout, "{}:{change}", file.path.display())?;
            }
        }
        references += file.changes.len();
    }
    let verb = if dry_run { "would change" } else { "changed" };
    let summary = format!(
        "{verb} {references} reference(s) to {} in {} file(s)",
        assignment.image,
        planned.len()
    );
    if dry_run {
        eprintln!("{summary}");
    } else {
        writeln!(stdout, "{summary}")?;
    }
    if failures > 0 {
        eprintln!("error: {failures} problem(s); see above");
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(ExitCode::SUCCESS)
}

/// Plans one file: `Ok(None)` when nothing changes, `Err(n)` with the number of problems (the file is
/// then left alone entirely).
fn plan_file(path: &Path, assignment: &Assignment) -> Result<Option<Planned>, usize> {
    let bytes = match files::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::from(error));
            return Err(1);
        }
    };
    let rewrite = rewrite_file(path, &bytes, assignment);
    let at = |line: usize| {
        if line == 0 {
            path.display().to_string()
        } else {
            format!("{}:{line}", path.display())
        }
    };
    for warning in &rewrite.warnings {
        if warning.line == 0 {
            eprintln!("warning: {}", warning.message);
        } else {
            eprintln!("warning: {}: {}", at(warning.line), warning.message);
        }
    }
    for (line, written) in &rewrite.held {
        eprintln!(
            "note: {}: `{written}` is held by a `tagwatch: hold` marker; left alone",
            at(*line)
        );
    }
    for (line, message) in &rewrite.errors {
        eprintln!("error: {}: {message}", at(*line));
    }
    if !rewrite.errors.is_empty() {
        return Err(rewrite.errors.len());
    }
    if rewrite.changes.is_empty() {
        return Ok(None);
    }
    let changes = rewrite
        .changes
        .iter()
        .map(|change| {
            if change.requoted {
                eprintln!(
                    "note: {}: quoted the new value so YAML reads it as a string",
                    at(change.line)
                );
            }
            format!("{}: {} -> {}", change.line, change.from, change.to)
        })
        .collect();
    Ok(Some(Planned {
        path: path.to_path_buf(),
        before: bytes,
        after: rewrite.after,
        changes,
    }))
}

fn unified_diff(path: &Path, before: &[u8], after: &[u8]) -> String {
    let (before, after) = (
        String::from_utf8_lossy(before),
        String::from_utf8_lossy(after),
    );
    let name = path.display().to_string();
    similar::TextDiff::from_lines(before.as_ref(), after.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}
