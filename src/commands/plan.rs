//! `tagwatch plan [--output text|json]` (SPEC §2): fetch repositories and registries, print every bump,
//! change nothing (the cached clones are reset to the remote, never pushed).
//!
//! JSON lines: a bump is exactly `{"repo","file","line","policy","image","from","to"}`; a target a policy
//! owns that is left alone is a line with the same keys plus `"status"` (`held`, `rollback` with
//! `"reverted"`, `waiting` with `"until"`, `newer`), so a consumer that reads only bumps can skip every
//! line that has a `status`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use crate::cli::{Cli, OutputFormat};
use crate::commands::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::Config;
use crate::environment::Environment;
use crate::reconcile::{Bump, Note, Reconciler, RepositoryOutcome, Status};
use crate::registry::RegistryClient;

pub fn run(cli: &Cli, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let (runtime, reconciler) = match setup(cli)? {
        Ok(setup) => setup,
        Err(code) => return Ok(code),
    };
    let outcomes = runtime.block_on(reconciler.plan_all());
    let mut stdout = std::io::stdout().lock();
    for outcome in &outcomes {
        let Ok(plan) = &outcome.plan else { continue };
        for bump in &plan.bumps {
            match output {
                OutputFormat::Json => writeln!(stdout, "{}", bump_json(bump))?,
                OutputFormat::Text => writeln!(stdout, "{}", bump_text(bump))?,
            }
        }
        for note in &plan.notes {
            match output {
                OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string(note)?)?,
                OutputFormat::Text => writeln!(stdout, "{}", note_text(note))?,
            }
        }
    }
    let bumps: usize = outcomes
        .iter()
        .filter_map(|outcome| outcome.plan.as_ref().ok())
        .map(|plan| plan.bumps.len())
        .sum();
    eprintln!(
        "{bumps} bump(s) planned in {} repositor{}",
        outcomes.len(),
        if outcomes.len() == 1 { "y" } else { "ies" }
    );
    Ok(report_failures(&outcomes))
}

/// Loads the config and builds the reconciler: `Err(code)` when the config is invalid.
pub(crate) fn setup(
    cli: &Cli,
) -> anyhow::Result<Result<(tokio::runtime::Runtime, Reconciler<RegistryClient>), ExitCode>> {
    let environment = Environment::from_process();
    let config = match Config::load(cli.config.as_deref(), &environment) {
        Ok(config) => config,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(Err(ExitCode::from(EXIT_USAGE)));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = RegistryClient::new(config.registries.clone(), &environment)
        .context("setting up the registry client")?;
    Ok(Ok((
        runtime,
        Reconciler::new(config, environment, client, Utc::now()),
    )))
}

/// Prints every failure on stderr; exit 1 when there was any.
pub(crate) fn report_failures(outcomes: &[RepositoryOutcome]) -> ExitCode {
    let mut failures = 0;
    for outcome in outcomes {
        match &outcome.plan {
            Err(error) => eprintln!("error: {}", error_chain(error)),
            Ok(plan) => {
                for problem in &plan.problems {
                    eprintln!("error: repository {}: {problem}", outcome.repository);
                }
            }
        }
        match &outcome.applied {
            Some(Err(error)) => eprintln!("error: {}", error_chain(error)),
            Some(Ok(applied)) => {
                for problem in &applied.problems {
                    eprintln!("error: repository {}: {problem}", outcome.repository);
                }
            }
            None => {}
        }
        failures += outcome.failures();
    }
    if failures > 0 {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// An error with its chain of causes, on one line.
fn error_chain(error: &crate::reconcile::ReconcileError) -> String {
    let mut chain = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain.join(": ")
}

/// SPEC §2's JSON line for a bump, keys in the documented order.
#[derive(serde::Serialize)]
struct BumpLine<'a> {
    repo: &'a str,
    file: &'a str,
    line: usize,
    policy: &'a str,
    image: &'a str,
    from: &'a str,
    to: &'a str,
}

fn bump_json(bump: &Bump) -> String {
    serde_json::to_string(&BumpLine {
        repo: &bump.repository,
        file: &bump.file,
        line: bump.line,
        policy: &bump.policy,
        image: &bump.image,
        from: &bump.from,
        to: &bump.to,
    })
    .expect("a bump serializes")
}

pub(crate) fn bump_text(bump: &Bump) -> String {
    format!(
        "{} {}:{} {} -> {} [{}]",
        bump.repository, bump.file, bump.line, bump.from, bump.to, bump.policy
    )
}

fn note_text(note: &Note) -> String {
    let at = format!("{} {}:{} {}", note.repo, note.file, note.line, note.from);
    let policy = note.policy.as_deref().unwrap_or("-");
    match &note.status {
        Status::Held => format!("{at} held by `# tagwatch: hold`"),
        Status::Newer => {
            format!("{at} left alone: newer than what policy {policy} chooses (never downgrade)")
        }
        Status::Rollback { reverted } => format!(
            "{at} held: a human rolled it back from {reverted}; waits for a tag newer than {reverted} [{policy}]"
        ),
        Status::Waiting { until } => {
            let to = note.to.as_deref().unwrap_or("?");
            match until {
                Some(until) => format!(
                    "{at} -> {to} waits for its window; lands at {} [{policy}]",
                    until.to_rfc3339()
                ),
                None => {
                    format!("{at} -> {to} waits for a window that never opens again [{policy}]")
                }
            }
        }
    }
}
