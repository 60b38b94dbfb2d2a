//! `tagwatch plan [--output text|json] [--at TIME]` (README.md "Using it"): fetch repositories and registries, print every bump,
//! change nothing (the cached clones are reset to the remote, never pushed).
//!
//! JSON lines: a bump is exactly `{"repo","file","line","policy","image","from","to"}`; a target a policy
//! owns that is left alone is a line with the same keys plus `"status"` (`held`, `rollback` with
//! `"reverted"`, `waiting` with `"until"`, `newer`, `ambiguous` with `"policies"`), so a consumer that reads only bumps can skip every
//! line that has a `status`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::cli::{Cli, OutputFormat};
use crate::commands::report::{load_for_repositories, report_failures};
use crate::environment::Environment;
use crate::reconcile::{Bump, Context, Note, Status};
use crate::registry::RegistryClient;

pub fn run(cli: &Cli, output: OutputFormat, at: Option<DateTime<Utc>>) -> anyhow::Result<ExitCode> {
    let (runtime, context) = match setup(cli, "plan")? {
        Ok(setup) => setup,
        Err(code) => return Ok(code),
    };
    let now = at.unwrap_or_else(Utc::now);
    let outcomes = runtime.block_on(context.plan_all(now));
    // Buffered: stdout is line-buffered, so a plan of 18,000 bumps would cost 18,000 `write` calls.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for outcome in &outcomes {
        let Ok(plan) = &outcome.plan else { continue };
        for bump in &plan.bumps {
            match output {
                OutputFormat::Json => writeln!(stdout, "{}", bump_json(bump))?,
                OutputFormat::Text => writeln!(stdout, "{}", bump_text(bump))?,
            }
        }
        for note in plan
            .notes
            .iter()
            .filter(|note| note.status != Status::Current)
        {
            match output {
                OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string(note)?)?,
                OutputFormat::Text => writeln!(stdout, "{}", note_text(note))?,
            }
        }
    }
    stdout.flush()?;
    drop(stdout);
    let bumps: usize = outcomes
        .iter()
        .filter_map(|outcome| outcome.plan.as_ref().ok())
        .map(|plan| plan.bumps.len())
        .sum();
    let summary = format!(
        "{bumps} bump(s) planned in {} repositor{}",
        outcomes.len(),
        if outcomes.len() == 1 { "y" } else { "ies" }
    );
    match cli.log_format {
        crate::cli::LogFormat::Text => eprintln!("{summary}"),
        crate::cli::LogFormat::Json => tracing::info!(bumps, "{summary}"),
    }
    let code = report_failures(cli, &outcomes);
    // The process exits next: the plans (≈ 100,000 allocations for 18,000 bumps) are left to the
    // exit instead of being freed one by one on the main thread (≈ 30 ms).
    std::mem::forget(outcomes);
    Ok(code)
}

/// Loads the config and builds the controller context: `Err(code)` when there is nothing to reconcile
/// or the config is invalid.
pub(crate) fn setup(
    cli: &Cli,
    command: &str,
) -> anyhow::Result<Result<(tokio::runtime::Runtime, Context<RegistryClient>), ExitCode>> {
    let environment = Environment::from_process();
    let config = match load_for_repositories(cli, command, &environment) {
        Ok(config) => config,
        Err(code) => return Ok(Err(code)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = RegistryClient::new(config.registries.clone(), &environment)
        .context("setting up the registry client")?;
    Ok(Ok((runtime, Context::new(config, environment, client))))
}

/// README.md "Using it"'s JSON line for a bump, keys in the documented order.
#[derive(serde::Serialize)]
struct BumpLine<'a> {
    repo: &'a str,
    file: &'a str,
    line: usize,
    policy: &'a str,
    image: &'a str,
    from: &'a str,
    to: &'a str,
    /// Promotion: a better version still soaking upstream (docs/promotion.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<&'a crate::reconcile::Upcoming>,
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
        next: bump.next.as_ref(),
    })
    .expect("a bump serializes")
}

pub(crate) fn bump_text(bump: &Bump) -> String {
    let mut text = format!(
        "{} {}:{} {} -> {} [{}]",
        bump.repository, bump.file, bump.line, bump.from, bump.to, bump.policy
    );
    if let Some(evidence) = &bump.evidence {
        text.push_str(&format!(" ({evidence})"));
    }
    if let Some(next) = &bump.next {
        text.push_str(&format!(
            "; then {} at {}",
            next.to,
            next.until.to_rfc3339()
        ));
    }
    text
}

fn note_text(note: &Note) -> String {
    let at = format!("{} {}:{} {}", note.repo, note.file, note.line, note.from);
    let policy = note.policy.as_deref().unwrap_or("-");
    match &note.status {
        Status::Current => format!("{at} is current [{policy}]"),
        Status::Held => format!("{at} held by `# tagwatch: hold`"),
        Status::Newer => {
            format!("{at} left alone: newer than what policy {policy} chooses (never downgrade)")
        }
        Status::Rollback { reverted } => format!(
            "{at} held: a human rolled it back from {reverted}; waits for a tag newer than {reverted} [{policy}]"
        ),
        Status::Ambiguous { policies } => format!(
            "{at} left alone: several policies track this image ({}); a `# tagwatch: POLICY` marker must choose",
            policies.join(", ")
        ),
        Status::Soaking { until } => {
            let to = note.to.as_deref().unwrap_or("?");
            format!(
                "{at} -> {to} soaks upstream; ready at {} [{policy}]",
                until.to_rfc3339()
            )
        }
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
