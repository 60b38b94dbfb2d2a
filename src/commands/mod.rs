//! One file per subcommand. Each returns the process exit code (README.md "Using it": 0 success, 1 some work failed,
//! 2 usage or validation error); errors that end a command early are reported once, by `main`.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub mod daemon;
pub mod plan;
mod report;
pub mod resolve;
pub mod rollback;
pub mod run;
pub mod schema;
mod set;
pub mod status;
pub mod validate;

/// Exit code when some work failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage and validation errors.
pub const EXIT_USAGE: u8 = 2;

/// Reports an error on stderr once: `error: …` lines, or one JSON event per line with
/// `--log-format json` (so every line is JSON, the final error included).
pub fn say_error(cli: &Cli, text: &str) {
    match cli.log_format {
        crate::cli::LogFormat::Json => {
            for line in text.lines() {
                tracing::error!(error = %line, "failed");
            }
        }
        crate::cli::LogFormat::Text => eprintln!("error: {text}"),
    }
}

/// Runs the subcommand named on the command line.
pub fn dispatch(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Validate => validate::run(cli),
        Command::Resolve {
            policy,
            tags_file,
            output,
        } => resolve::run(cli, policy, tags_file.as_deref(), *output),
        Command::Schema { dir } => schema::run(dir),
        Command::Plan { output, at } => plan::run(cli, *output, *at),
        Command::Run { once: _ } => run::run(cli),
        Command::Daemon => daemon::run(cli),
        Command::Rollback {
            image,
            repository,
            to,
        } => rollback::run(cli, image, repository.as_deref(), to.as_deref()),
        Command::Status { output } => status::run(cli, *output),
        Command::Set {
            assignment,
            paths,
            dry_run,
        } => set::run(assignment, paths, *dry_run),
    }
}
