//! `tagwatch set IMAGE=REF [PATH ...] [--dry-run]` (README.md "Using it"): bump every reference to IMAGE under the
//! paths, byte-exactly. Plans every file first (in parallel), then writes; each write is atomic. Output
//! is printed in path order whatever the parallelism.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::commands::{EXIT_FAILURE, EXIT_USAGE};
use crate::manifest::assignment::{Assignment, rewrite_file};
use crate::manifest::files;

/// What planning one file produced.
#[derive(Default)]
struct Plan {
    /// Lines for stderr (warnings, notes, errors), in order.
    messages: Vec<String>,
    failures: usize,
    /// References to the image in this file (bumped, already at REF, held, or failed).
    matched: usize,
    change: Option<Planned>,
}

/// One file whose content changes.
struct Planned {
    path: PathBuf,
    after: Vec<u8>,
    /// `FILE:LINE: from -> to` for each bumped target.
    changes: Vec<String>,
    /// The unified diff, for `--dry-run`.
    diff: Option<String>,
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
        Ok(collected) => {
            for path in &collected.not_yaml {
                eprintln!(
                    "warning: {}: not a .yaml/.yml file, skipped",
                    path.display()
                );
            }
            collected.files
        }
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::from(error));
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };

    let plans = parallel_map(&files, |path| plan_file(path, &assignment, dry_run));
    let mut failures = 0usize;
    let mut matched = 0usize;
    let mut planned = Vec::new();
    for plan in plans {
        for message in &plan.messages {
            eprintln!("{message}");
        }
        failures += plan.failures;
        matched += plan.matched;
        planned.extend(plan.change);
    }
    // README.md "Using it": `set` that matches no reference exits 1 and says so.
    if matched == 0 {
        let under: Vec<String> = paths
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        eprintln!(
            "error: no reference to {} under {} ({} YAML file(s) read); nothing changed",
            assignment.image,
            under.join(", "),
            files.len()
        );
        return Ok(ExitCode::from(EXIT_FAILURE));
    }

    let written = if dry_run {
        vec![None; planned.len()]
    } else {
        parallel_map(&planned, |file| {
            files::write_atomic(&file.path, &file.after)
                .err()
                .map(|error| format!("error: {:#}", anyhow::Error::from(error)))
        })
    };
    let mut stdout = std::io::stdout().lock();
    let (mut references, mut changed_files) = (0, 0);
    for (file, error) in planned.iter().zip(written) {
        if let Some(error) = error {
            eprintln!("{error}");
            failures += 1;
            continue;
        }
        match &file.diff {
            Some(diff) => stdout.write_all(diff.as_bytes())?,
            None => {
                for change in &file.changes {
                    writeln!(stdout, "{change}")?;
                }
            }
        }
        references += file.changes.len();
        changed_files += 1;
    }
    let verb = if dry_run { "would change" } else { "changed" };
    let summary = format!(
        "{verb} {references} reference(s) to {} in {changed_files} file(s)",
        assignment.image
    );
    // With --dry-run stdout is the diff alone, so it can be piped to `git apply`.
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

/// Runs `work` over `items` on all cores, returning results in the order of `items`.
fn parallel_map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || items.len() < 2 {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&work).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a planning thread panicked"))
            .collect()
    })
}

fn plan_file(path: &Path, assignment: &Assignment, dry_run: bool) -> Plan {
    let mut plan = Plan::default();
    let bytes = match files::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            plan.messages
                .push(format!("error: {:#}", anyhow::Error::from(error)));
            plan.failures = 1;
            return plan;
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
        // A whole-file warning already names the file.
        if warning.line == 0 {
            plan.messages.push(format!("warning: {}", warning.message));
        } else {
            plan.messages.push(format!(
                "warning: {}: {}",
                at(warning.line),
                warning.message
            ));
        }
    }
    for (line, written) in &rewrite.held {
        plan.messages.push(format!(
            "note: {}: `{written}` is held by a `tagwatch: hold` marker; left alone",
            at(*line)
        ));
    }
    for (line, message) in &rewrite.errors {
        plan.messages
            .push(format!("error: {}: {message}", at(*line)));
    }
    plan.failures = rewrite.errors.len();
    plan.matched = rewrite.matched;
    if !rewrite.errors.is_empty() {
        // A file is written whole or not at all: say that the rest of it was not written either.
        let refused = rewrite.errors.iter().filter(|(line, _)| *line != 0).count();
        let why = if refused > 0 {
            let others = match rewrite.withheld {
                0 => String::new(),
                n => format!("; its {n} other bumpable reference(s) were not written either"),
            };
            format!("{refused} reference(s) could not be bumped{others}")
        } else {
            format!(
                "none of its {} bumpable reference(s) were written",
                rewrite.withheld
            )
        };
        plan.messages.push(format!(
            "error: {}: left unchanged: {why} (a file is written whole or not at all)",
            path.display()
        ));
        return plan;
    }
    if rewrite.changes.is_empty() {
        return plan;
    }
    let mut changes = Vec::new();
    for change in &rewrite.changes {
        if change.requoted {
            plan.messages.push(format!(
                "note: {}: quoted the new value so YAML reads it as a string",
                at(change.line)
            ));
        }
        changes.push(format!(
            "{}: {} -> {}",
            at(change.line),
            change.from,
            change.to
        ));
    }
    let diff = dry_run.then(|| unified_diff(path, &bytes, &rewrite.after));
    plan.change = Some(Planned {
        path: path.to_path_buf(),
        after: rewrite.after,
        changes,
        diff,
    });
    plan
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
