//! `tagwatch rollback IMAGE [--repository NAME] [--to REF]` (README.md "Using it"): undo the latest bump of IMAGE;
//! prints the commit id (push mode) or the pull request's address (pull-request mode) per repository.
//! Exit 1 when there is no bump to undo or a target changed since; 2 for an unknown image or repository.

use std::io::Write as _;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::commands::plan::setup;
use crate::commands::{EXIT_FAILURE, EXIT_USAGE, say_error};

pub fn run(
    cli: &Cli,
    image: &str,
    repository: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let image = match crate::reference::normalize_name(image) {
        Ok(image) => image,
        Err(error) => {
            say_error(cli, &format!("{image:?} is not an image name: {error}"));
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let (runtime, context) = match setup(cli, "rollback")? {
        Ok(setup) => setup,
        Err(code) => return Ok(code),
    };
    match runtime.block_on(context.rollback(&image, repository, to)) {
        Ok(done) => {
            let mut stdout = std::io::stdout().lock();
            for rolled_back in done {
                writeln!(
                    stdout,
                    "{}: {} (reverts {})",
                    rolled_back.repository,
                    rolled_back.written,
                    &rolled_back.reverted[..rolled_back.reverted.len().min(12)]
                )?;
                for (file, bumped, restored) in &rolled_back.changes {
                    writeln!(stdout, "  {file}: {image} {bumped} -> {restored}")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            say_error(cli, &crate::reconcile::chain(&error));
            Ok(ExitCode::from(if error.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            }))
        }
    }
}
