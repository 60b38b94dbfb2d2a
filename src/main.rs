//! The `tagwatch` binary: parse the command line, set up logging, run one subcommand, map the outcome to
//! an exit code. Errors are printed once here, with their chain of causes.

use std::process::ExitCode;

use clap::Parser;
use tagwatch::cli::{Cli, LogFormat};
use tagwatch::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}

fn init_tracing(cli: &Cli) {
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAGWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
