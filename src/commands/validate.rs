//! `tagwatch validate`: load the config and every policy, print each problem as `FILE:LINE:COL:
//! FIELD: message`, exit 2 if there is any.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::Cli;
use crate::config::Config;
use crate::environment::Environment;

use super::EXIT_USAGE;

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let environment = Environment::from_process();
    let mut stdout = std::io::stdout().lock();
    match Config::load(cli.config.as_deref(), &environment) {
        Ok(config) => {
            let file = config.file.as_ref().map_or_else(
                || "no config file (empty config)".to_string(),
                |f| f.display().to_string(),
            );
            writeln!(
                stdout,
                "{file}: ok ({} registries, {} repositories, {} policies)",
                config.registries.len(),
                config.repositories.len(),
                config.policies.len()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            for diagnostic in &diagnostics.0 {
                writeln!(stdout, "{diagnostic}")?;
            }
            let count = diagnostics.0.len();
            eprintln!(
                "error: {count} problem{} found",
                if count == 1 { "" } else { "s" }
            );
            Ok(ExitCode::from(EXIT_USAGE))
        }
    }
}
