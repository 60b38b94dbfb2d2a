//! `tagwatch status [--output json]` (README.md "Using it"): what a running daemon knows, asked over its HTTP API at
//! `daemon.listen`; without a running daemon, the last report kept in `daemon.stateDir`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::{Cli, OutputFormat};
use crate::commands::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::Config;
use crate::daemon::state::{State, StateError};
use crate::daemon::status::Report;
use crate::environment::Environment;

/// How long to wait for a running daemon's answer before reading the state directory instead.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(cli: &Cli, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let environment = Environment::from_process();
    let config = match Config::load_with(
        cli.config.as_deref(),
        &environment,
        crate::config::SecretCheck::Skip,
    ) {
        Ok(config) => config,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let address = config.daemon.listen;
    let asked = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(ASK_TIMEOUT)
            .no_proxy()
            .build()?;
        client
            .get(format!("http://{address}/api/v1/status"))
            .send()
            .await?
            .error_for_status()?
            .json::<Report>()
            .await
    });
    let (report, source) = match asked {
        Ok(report) => (report, format!("the daemon at {address}")),
        Err(error) => {
            tracing::info!(error = %error, "no daemon answered; reading the state directory");
            let directory = config.daemon.state_dir.clone();
            match State::open(&directory) {
                Err(StateError::Busy { path }) => {
                    eprintln!(
                        "error: a daemon holds {} but does not answer at {address}",
                        path.display()
                    );
                    return Ok(ExitCode::from(EXIT_FAILURE));
                }
                Err(error) => return Err(error.into()),
                Ok(state) => match state.report()? {
                    Some(value) => (
                        serde_json::from_value::<Report>(value)
                            .context("the kept status report does not decode")?,
                        format!(
                            "the state kept in {} (no daemon answered)",
                            directory.display()
                        ),
                    ),
                    None => {
                        eprintln!(
                            "error: no daemon answers at {address} and {} holds no status yet",
                            directory.display()
                        );
                        return Ok(ExitCode::from(EXIT_FAILURE));
                    }
                },
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    match output {
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string(&report)?)?,
        OutputFormat::Text => {
            writeln!(
                stdout,
                "from {source}{}",
                if report.ready { "" } else { " (not ready)" }
            )?;
            writeln!(stdout, "policies:")?;
            for policy in &report.policies {
                writeln!(
                    stdout,
                    "  {} {} -> {} (checked {})",
                    policy.name,
                    policy.image,
                    policy.tag.as_deref().unwrap_or("?"),
                    policy.checked_at.as_deref().unwrap_or("never")
                )?;
            }
            writeln!(stdout, "targets:")?;
            for target in &report.targets {
                let mut line = format!(
                    "  {} {}:{} {} {}",
                    target.repository, target.file, target.line, target.current, target.state
                );
                if let Some(to) = &target.to {
                    line.push_str(&format!(" -> {to}"));
                }
                if let Some(until) = &target.until {
                    line.push_str(&format!(" until {until}"));
                }
                writeln!(stdout, "{line}")?;
            }
            if !report.pull_requests.is_empty() {
                writeln!(stdout, "pull requests:")?;
                for pull_request in &report.pull_requests {
                    writeln!(
                        stdout,
                        "  {} {} {}",
                        pull_request.repository, pull_request.group, pull_request.url
                    )?;
                }
            }
            if !report.errors.is_empty() {
                writeln!(stdout, "errors:")?;
                for error in &report.errors {
                    writeln!(
                        stdout,
                        "  {} (since {}): {}",
                        error.scope, error.since, error.message
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
