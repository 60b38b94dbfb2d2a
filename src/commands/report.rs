//! The edge where reconcile's problems are rendered: each once, on stderr, with its chain of causes and
//! a `hint:` line where a fix is known; and the config that `plan`, `run` and `daemon` need.

use std::process::ExitCode;

use crate::cli::Cli;
use crate::commands::{EXIT_FAILURE, EXIT_USAGE, say_error};
use crate::config::Config;
use crate::environment::Environment;
use crate::reconcile::{Outcome, Problem, Scope};

/// Loads the config for a command that needs repositories: `Err(code)` (2) when there is no config
/// file, no repository, or the config is invalid — each said on stderr.
pub(crate) fn load_for_repositories(
    cli: &Cli,
    command: &str,
    environment: &Environment,
) -> Result<Config, ExitCode> {
    let config = match Config::load(cli.config.as_deref(), environment) {
        Ok(config) => config,
        Err(diagnostics) => {
            match cli.log_format {
                crate::cli::LogFormat::Text => eprintln!("{diagnostics}"),
                crate::cli::LogFormat::Json => {
                    for diagnostic in &diagnostics.0 {
                        tracing::error!(problem = %diagnostic, "invalid config");
                    }
                }
            }
            return Err(ExitCode::from(EXIT_USAGE));
        }
    };
    if config.file.is_none() {
        say_error(
            cli,
            &format!(
                "`tagwatch {command}` needs a config file with repositories: there is no {} here \
                 (pass --config FILE)",
                crate::cli::DEFAULT_CONFIG_FILE
            ),
        );
        return Err(ExitCode::from(EXIT_USAGE));
    }
    if config.repositories.is_empty() {
        say_error(
            cli,
            &format!(
                "`tagwatch {command}` needs repositories: {} lists none",
                config
                    .file
                    .as_deref()
                    .map(|file| file.display().to_string())
                    .unwrap_or_default()
            ),
        );
        return Err(ExitCode::from(EXIT_USAGE));
    }
    Ok(config)
}

/// Prints every problem on stderr; exit 1 when there was any.
pub(crate) fn report_failures(cli: &Cli, outcomes: &[Outcome]) -> ExitCode {
    let mut failures = 0;
    for outcome in outcomes {
        for problem in outcome.problems() {
            match cli.log_format {
                crate::cli::LogFormat::Text => eprintln!("{}", render(problem)),
                crate::cli::LogFormat::Json => tracing::error!(
                    repository = %problem.repository,
                    scope = %problem.scope,
                    class = %problem.class(),
                    error = %crate::reconcile::chain(problem.error.as_ref()),
                    hint = hint(problem.error.as_ref()).unwrap_or(""),
                    "failed"
                ),
            }
        }
        failures += outcome.failures();
    }
    if failures > 0 {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// `error: repository NAME: SCOPE: error: cause: cause` and any `hint:` line.
pub(crate) fn render(problem: &Problem) -> String {
    let mut text = format!("error: repository {}", problem.repository);
    if problem.scope != Scope::Repository {
        text.push_str(&format!(": {}", problem.scope));
    }
    text.push_str(": ");
    text.push_str(&crate::reconcile::chain(problem.error.as_ref()));
    if let Some(hint) = hint(problem.error.as_ref()) {
        text.push_str("\nhint: ");
        text.push_str(hint);
    }
    text
}

/// The first known fix along the chain of causes.
fn hint(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(error) = error.downcast_ref::<crate::registry::RegistryError>()
            && let Some(hint) = error.hint()
        {
            return Some(hint);
        }
        if let Some(error) = error.downcast_ref::<crate::forge::ForgeError>()
            && let Some(hint) = error.hint()
        {
            return Some(hint);
        }
        current = error.source();
    }
    None
}
