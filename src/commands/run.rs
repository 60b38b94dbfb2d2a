//! `tagwatch run --once` (README.md "Using it"): one full reconcile of every repository — plan, rewrite, commit,
//! push or open/update pull requests — then print what was done. One failing repository or registry
//! does not stop the others; the exit code is 1 when anything failed.

use std::io::Write as _;
use std::process::ExitCode;

use chrono::Utc;

use crate::cli::Cli;
use crate::commands::plan::{bump_text, setup};
use crate::commands::report::report_failures;

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let (runtime, context) = match setup(cli, "run")? {
        Ok(setup) => setup,
        Err(code) => return Ok(code),
    };
    let outcomes = runtime.block_on(context.run_all(Utc::now()));
    let mut stdout = std::io::stdout().lock();
    for outcome in &outcomes {
        let Some(Ok(applied)) = &outcome.applied else {
            continue;
        };
        for bump in &applied.bumps {
            writeln!(stdout, "{}", bump_text(bump))?;
        }
        let mut summary = format!(
            "{}: {} bump(s), {} commit(s), {} push(es)",
            outcome.repository,
            applied.bumps.len(),
            applied.commits.len(),
            applied.pushes
        );
        if applied.rejected > 0 {
            summary.push_str(&format!(", {} rejected push(es) retried", applied.rejected));
        }
        for pull_request in &applied.pull_requests {
            summary.push_str(&format!(", pull request {}", pull_request.url));
        }
        for url in &applied.closed {
            summary.push_str(&format!(", closed {url}"));
        }
        writeln!(stdout, "{summary}")?;
    }
    Ok(report_failures(cli, &outcomes))
}
